"""Off switches, and block calls that stay unharmed by failing or hung sinks."""

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Sequence

from blocks import Block
from emitters import Emitter, Event, MemoryEmitter, configure, flush, stats
from emitters.testing import capture_events


class Pump(Block):
    """A block with one cheap method."""

    def run(self, n: int) -> int:
        """Return ``n`` squared."""
        return n * n


class BrokenSink(Emitter):
    """A sink whose every delivery fails."""

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Fail."""
        raise OSError("disk on fire")


class HungSink(Emitter):
    """A sink whose delivery blocks until ``release`` is set."""

    def __init__(self, *, name: str) -> None:
        super().__init__(name=name)
        self.release = threading.Event()
        self.entered = threading.Event()

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Block until released."""
        self.entered.set()
        self.release.wait()


CHILD = textwrap.dedent(
    """
    import inspect

    import blocks
    from emitters.testing import capture_events


    class Probe(blocks.Block):
        def ping(self) -> str:
            return "pong"


    with capture_events() as events:
        result = Probe().ping()
    print(
        blocks.is_instrumented(Probe.ping),
        blocks.is_instrumented(inspect.getattr_static(Probe, "ping")),
        len(events),
        result,
    )
    """
)


def run_child(events_switch: str | None) -> list[str]:
    """Run CHILD in a fresh interpreter and return its printed words."""
    env = {**os.environ}
    env.pop("EVENTBLOCKS_EVENTS", None)
    env.pop("EVENTBLOCKS_EMITTERS", None)
    if events_switch is not None:
        env["EVENTBLOCKS_EVENTS"] = events_switch
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_configure_disabled_emits_nothing_and_returns_results() -> None:
    """configure(enabled=False) turns calls into plain calls that emit nothing."""
    configure(emitters=[], enabled=False)
    with capture_events() as events:
        assert Pump().run(3) == 9
    assert events == []


def test_reenabling_emits_again() -> None:
    """configure(enabled=True) after disabling records calls again."""
    configure(emitters=[], enabled=False)
    with capture_events() as quiet:
        Pump().run(2)
    configure(emitters=[], enabled=True)
    with capture_events() as events:
        assert Pump().run(4) == 16
    assert quiet == []
    assert [e.event for e in events] == [
        "block.pump.run.started",
        "block.pump.run.succeeded",
    ]


def test_events_off_at_import_installs_no_wrapper() -> None:
    """EVENTBLOCKS_EVENTS=off read at import installs no wrapper and emits nothing."""
    assert run_child("off") == ["False", "False", "0", "pong"]


def test_without_the_switch_the_child_process_records_calls() -> None:
    """The same child without EVENTBLOCKS_EVENTS=off installs wrappers and emits."""
    _, installed, count, result = run_child(None)
    assert (installed, count, result) == ("True", "2", "pong")


def test_failing_sink_never_reaches_the_caller_and_is_counted() -> None:
    """A sink whose emit_batch raises is counted in stats; the call returns."""
    name = f"broken-{uuid.uuid4().hex[:8]}"
    configure(emitters=[BrokenSink(name=name)])
    before = stats()["failed"].get(name, 0)
    results = [Pump().run(i) for i in range(5)]
    assert results == [0, 1, 4, 9, 16]
    flush()
    counters = stats()
    assert counters["failed"][name] - before == 10
    assert counters["delivered"][name] == 0


def test_hung_sink_does_not_block_calls_or_other_sinks() -> None:
    """A hung sink blocks neither calls nor, after a second, other sinks; its
    overflow is dropped."""
    name = f"hung-{uuid.uuid4().hex[:8]}"
    hung = HungSink(name=name)
    memory = MemoryEmitter(name=f"memory-{uuid.uuid4().hex[:8]}")
    # Batches of 8: the hung sink's backlog (4 batches) is full after 32 events.
    configure(emitters=[hung, memory], batch_size=8, flush_interval=0.01)
    rounds, calls_per_round = 20, 10
    errors: list[BaseException] = []

    def call_blocks() -> None:
        try:
            block = Pump()
            for r in range(rounds):
                for i in range(calls_per_round):
                    assert block.run(i) == i * i
                # Pace the caller: the point is the hung sink's backlog.
                expected = 2 * calls_per_round * (r + 1)
                deadline = time.monotonic() + 10
                while len(memory.events) < expected and time.monotonic() < deadline:
                    time.sleep(0.001)
        except BaseException as exc:
            errors.append(exc)

    try:
        caller = threading.Thread(target=call_blocks)
        caller.start()
        caller.join(timeout=60)
        assert not caller.is_alive()
        assert errors == []
        assert hung.entered.is_set()
        total = 2 * rounds * calls_per_round
        assert len(memory.events) == total
        assert all(e.event.startswith("block.pump.run.") for e in memory.events)
        counters = stats()
        assert counters["delivered"][memory.name] == total
        assert counters["delivered"][name] == 0
        assert counters["dropped_by_emitter"][name] > 0
        assert counters["dropped"] >= counters["dropped_by_emitter"][name]
    finally:
        hung.release.set()
