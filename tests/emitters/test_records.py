"""Queued call records stay out of the garbage collector's way, and the table of
calls forgets each call once its outcome left the pipeline."""

from __future__ import annotations

import contextlib
import contextvars
import gc
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import TracerProvider

from blocks import Block
from emitters import (
    Emitter,
    Event,
    MemoryEmitter,
    configure,
    flow_run,
    flush,
    stats,
)
from emitters._pipeline.pipeline import _PIPELINE
from emitters._pipeline.record import CALLS, FINISHED_KEPT

# A budget whose wake-up share no test loop reaches: the dispatcher stays parked
# until flush().
PARKED = 1 << 40


class RecordProbe(Block):
    """A block with a cheap method, one that fails, and one that calls another."""

    def read(self, i: int) -> int:
        if i < 0:
            raise ValueError("negative reading")
        return i

    def read_other(self, other: RecordProbe) -> int:
        return other.read(1)


def _table_sizes() -> tuple[int, int, int, int]:
    return (
        len(CALLS.sources),
        len(CALLS.runs),
        len(CALLS.contexts),
        len(CALLS.started),
    )


def test_waiting_records_are_not_tracked_by_the_garbage_collector() -> None:
    """Records waiting in the queue, in a run, under a span, nested or failed,
    are untracked once the collector has seen them, and build the same events."""
    sink = MemoryEmitter()
    configure(emitters=[sink], flush_interval=60.0, max_buffer_bytes=PARKED)
    assert flush(10)
    gauge, other = RecordProbe(), RecordProbe()
    tracer = TracerProvider().get_tracer("test")
    with flow_run("records"):
        for i in range(100):
            gauge.read(i)
        with tracer.start_as_current_span("outer"):
            gauge.read(1)
        gauge.read_other(other)
        with contextlib.suppress(ValueError):
            gauge.read(-1)
    dispatcher = _PIPELINE.current
    assert dispatcher is not None
    queued = list(dispatcher.buffer.queue)
    assert len(queued) == 2 * 104
    # A tuple is untracked by the first collection that finds its items untracked
    # already; full collections may visit them in any order, and a nested call's
    # outcome is three tuples deep (outcome, call, caller).
    for _ in range(3):
        gc.collect()
    assert [r for r in queued if gc.is_tracked(r)] == []
    assert flush(10)
    names = [e.event for e in sink.events]
    assert names.count("block.record-probe.read.succeeded") == 102
    assert names.count("block.record-probe.read.failed") == 1
    assert any(r.role == "trace" for e in sink.events for r in e.related)
    nested = next(
        e
        for e in sink.events
        if e.event == "block.record-probe.read.started"
        and any(r.role == "caller" for r in e.related)
    )
    outer = next(
        e for e in sink.events if e.event == "block.record-probe.read_other.started"
    )
    assert any(r.id == f"event.{outer.id}" for r in nested.related)


def test_the_call_table_forgets_calls_once_their_outcomes_are_built() -> None:
    """After a flush, the table holds nothing of the calls delivered, and each
    outcome follows its own started event."""
    sink = MemoryEmitter()
    configure(emitters=[sink], flush_interval=60.0, max_buffer_bytes=PARKED)
    assert flush(10)
    before = _table_sizes()
    gauge = RecordProbe()
    with flow_run("table"):
        for i in range(1000):
            gauge.read(i)
        assert len(CALLS.sources) == before[0] + 1000
        assert len(CALLS.runs) == before[1] + 1000
    assert flush(10)
    assert _table_sizes() == before
    started = {e.id for e in sink.events if e.event.endswith(".started")}
    follows = [e.follows for e in sink.events if e.event.endswith(".succeeded")]
    assert len(follows) == 1000
    assert set(follows) == started


def test_the_call_table_forgets_calls_with_no_sink_to_build_for() -> None:
    """With no sink, records are consumed without being built, and forgotten."""
    configure(emitters=[])
    assert flush(10)
    before = _table_sizes()
    gauge = RecordProbe()
    for i in range(500):
        gauge.read(i)
    assert flush(10)
    assert _table_sizes() == before


class StalledSink(Emitter):
    """A sink whose first batch waits until released."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.received: list[Event] = []

    def emit_batch(self, events: Sequence[Event]) -> None:
        self.entered.set()
        self.release.wait(30)
        self.received.extend(events)


def test_the_call_table_forgets_calls_whose_outcome_was_shed() -> None:
    """Calls shed under pressure leave nothing behind in the table."""
    sink = StalledSink()
    configure(emitters=[sink], max_buffer_bytes=64 * 1024)
    assert flush(10)
    before = _table_sizes()
    gauge = RecordProbe()
    with flow_run("shed"):
        gauge.read(0)
        assert sink.entered.wait(10)
        for i in range(20_000):
            gauge.read(i)
    sink.release.set()
    assert flush(30) is False  # events were lost
    assert _table_sizes() == before


class Spawner(Block):
    """A block whose method leaves work behind that runs after it returned."""

    def spawn(self) -> contextvars.Context:
        # The context of this call: what a task or thread started here inherits.
        return contextvars.copy_context()


def test_a_call_made_after_its_caller_left_the_pipeline_still_names_it() -> None:
    """Work left behind by a call (a task, a thread with the call's context) that
    calls a block after the caller's outcome was delivered still names the
    caller's real ``started`` event, and leaves nothing behind in the table."""
    sink = MemoryEmitter()
    configure(emitters=[sink], flush_interval=60.0, max_buffer_bytes=PARKED)
    assert flush(10)
    before = _table_sizes()
    spawner, gauge = Spawner(), RecordProbe()
    with flow_run("late"):
        left_behind = spawner.spawn()
    assert flush(10)  # the caller's outcome is built and forgotten
    for i in range(3):
        left_behind.run(gauge.read, i)
    assert flush(10)
    caller = next(e for e in sink.events if e.event.endswith("spawn.started"))
    late = [e for e in sink.events if e.event.endswith("read.started")]
    assert len(late) == 3
    for event in late:
        roles = {r.role: r.id for r in event.related}
        assert roles.get("caller") == f"event.{caller.id}"
    assert _table_sizes() == before


def test_the_ids_kept_for_late_callers_stay_bounded() -> None:
    """The released calls' ids are kept in two generations of bounded size."""
    sink = MemoryEmitter()
    configure(emitters=[sink], flush_interval=60.0, max_buffer_bytes=PARKED)
    gauge = RecordProbe()
    for i in range(2 * FINISHED_KEPT + 10):
        gauge.read(i)
    assert flush(30)
    assert len(CALLS.finished) < FINISHED_KEPT
    assert len(CALLS.older) == FINISHED_KEPT


def test_a_configuration_replaced_while_its_sink_hung_lets_go_of_its_calls() -> None:
    """Records a replaced configuration could not hand to its hung sink are
    dropped and counted once the sink returns, and the table and the old
    dispatcher's thread let go of them (they used to wait forever)."""
    assert flush(10)
    before = _table_sizes()
    sink = StalledSink()
    configure(emitters=[sink], flush_interval=0.05)
    # Sinks of this class share a name: their counters add up in stats().
    start = stats()
    gauge = RecordProbe()
    gauge.read(0)
    assert sink.entered.wait(10)
    for i in range(5_000):
        gauge.read(i)
    old = _PIPELINE.current
    assert old is not None
    configure(emitters=[MemoryEmitter()])
    assert len(old.buffer.queue) > 0  # still held for the hung sink
    sink.release.set()
    old.thread.join(30)
    assert not old.thread.is_alive()
    assert len(old.buffer.queue) == 0
    (worker,) = old.workers
    assert worker.delivered + worker.dropped == 2 * 5_001
    assert worker.dropped > 0
    # stats() goes on counting what a replaced configuration did after it.
    counted = stats()
    for counter, value in (
        ("dropped_by_emitter", worker.dropped),
        ("delivered", worker.delivered),
    ):
        since = counted[counter][worker.name] - start[counter].get(worker.name, 0)
        assert since == value
    assert flush(10)
    assert _table_sizes() == before
