"""The built-in sinks (MemoryEmitter, ConsoleEmitter) and capture_events."""

from __future__ import annotations

import contextlib
import gc
import io
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from blocks import Block
from emitters import (
    ConsoleEmitter,
    Emitter,
    Event,
    MemoryEmitter,
    Resource,
    configure,
    emit_event,
    flow_run,
    flush,
    stats,
    task_run,
)
from emitters._ids import new_uuid7
from emitters.testing import capture_events


def _event(name: str, **payload: object) -> Event:
    return Event(
        id=new_uuid7(),
        occurred=datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=UTC),
        event=name,
        resource=Resource(id="thing.1"),
        payload=dict(payload),
    )


# -- MemoryEmitter ----------------------------------------------------------------


def test_memory_emitter_keeps_events_in_order() -> None:
    """MemoryEmitter.events lists received events in arrival order."""
    memory = MemoryEmitter()
    first = [_event("a"), _event("b")]
    second = [_event("c")]
    memory.emit_batch(first)
    memory.emit_batch(second)
    assert [e.event for e in memory.events] == ["a", "b", "c"]


def test_memory_emitter_receives_pipeline_events_in_order() -> None:
    """Events emitted in sequence reach the MemoryEmitter in the same order."""
    memory = MemoryEmitter()
    configure(emitters=[memory])
    returned = [emit_event(f"e.{i}", {"id": "r"}) for i in range(50)]
    assert flush()
    assert memory.events == returned


def test_memory_emitter_max_events_keeps_the_newest() -> None:
    """With max_events, only the newest events are kept, oldest first."""
    memory = MemoryEmitter(max_events=3)
    memory.emit_batch([_event(str(i)) for i in range(2)])
    memory.emit_batch([_event(str(i)) for i in range(2, 7)])
    assert [e.event for e in memory.events] == ["4", "5", "6"]
    memory.emit_batch([_event("7")])
    assert [e.event for e in memory.events] == ["5", "6", "7"]


def test_memory_emitter_max_events_through_the_pipeline() -> None:
    """A bounded MemoryEmitter in the pipeline keeps the last max_events."""
    memory = MemoryEmitter(max_events=5)
    configure(emitters=[memory])
    returned = [emit_event("x", {"id": "r"}, payload={"i": i}) for i in range(20)]
    assert flush()
    assert memory.events == returned[-5:]


@pytest.mark.parametrize("bad", [0, -3])
def test_memory_emitter_rejects_a_bad_max_events(bad: int) -> None:
    """max_events below 1 raises ValueError naming max_events."""
    with pytest.raises(ValueError, match="max_events"):
        MemoryEmitter(max_events=bad)


class Till(Block):
    def ring(self, amount: float) -> float:
        if amount < 0:
            raise ValueError(f"negative amount {amount}")
        return amount


def _ring(till: Till, amounts: Sequence[float]) -> None:
    for amount in amounts:
        with contextlib.suppress(ValueError):
            till.ring(amount)


def test_memory_emitter_builds_block_call_events_when_read() -> None:
    """Block calls are kept as parts and read back as the events any other sink
    would build: same names, ids, times, payloads, and an outcome follows its
    started event; each read builds equal events."""
    memory, reading = MemoryEmitter(), MemoryEmitter()
    built: list[Event] = []

    class Built(Emitter):
        def emit_batch(self, events: Sequence[Event]) -> None:
            built.extend(events)

    configure(emitters=[memory, Built()])
    with flow_run("nightly", id="till-run"):
        _ring(Till(), [1.5, -2.0])
    emit_event("till.closed", {"id": "till.1"})
    assert flush(10)
    events = list(memory.events)
    assert events == built
    assert [e.event for e in events] == [
        "block.till.ring.started",
        "block.till.ring.succeeded",
        "block.till.ring.started",
        "block.till.ring.failed",
        "till.closed",
    ]
    assert events[3].follows == events[2].id
    assert events[3].payload["error"]["message"] == "negative amount -2.0"
    assert events[0].related_by_role("flow-run")[0].name == "nightly"
    assert memory.events[0] == events[0]
    assert memory.events[0] is not events[0]
    assert memory.events[-1] is events[-1]  # built already: kept as it came
    assert memory.events == tuple(events)
    assert memory.events != events[:-1]
    assert memory.events != reading.events
    assert reading.events == []
    assert memory.events[1:4] == events[1:4]
    assert memory.events[::2] == events[::2]
    assert len(memory.events) == 5
    assert memory.events
    assert events[2] in memory.events
    assert memory.events.index(events[4]) == 4
    assert repr(memory.events) == repr(events)


def test_memory_emitter_events_are_read_only_and_name_a_bad_index() -> None:
    """The view cannot be changed, and an index out of range says how many
    events are kept."""
    memory = MemoryEmitter()
    configure(emitters=[memory])
    _ring(Till(), [1.0])
    assert flush(10)
    view = memory.events
    for change in ("append", "extend", "clear", "__setitem__", "__delitem__"):
        assert not hasattr(view, change)
    with pytest.raises(
        IndexError, match=r"event index 2 out of range \(2 events kept\)"
    ):
        view[2]
    with pytest.raises(IndexError, match="-3"):
        view[-3]
    with pytest.raises(TypeError):
        view["0"]  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        hash(view)


def test_memory_emitter_keeps_block_calls_out_of_the_collector() -> None:
    """Kept block-call events add nothing the garbage collector tracks (built
    events are three tracked objects each), and max_events trims the oldest."""
    memory = MemoryEmitter()
    bounded = MemoryEmitter(max_events=100, name="bounded")
    configure(emitters=[memory, bounded])
    till = Till()
    _ring(till, [1.0] * 10)
    assert flush(10)
    gc.collect()
    before = len(gc.get_objects())
    _ring(till, [float(i) for i in range(5_000)])
    assert flush(10)
    gc.collect()
    grown = len(gc.get_objects()) - before
    assert len(memory.events) == 10_020
    assert grown < 1_000, f"{grown} more tracked objects for 10,000 kept events"
    assert len(bounded.events) == 100
    assert [e.payload.get("duration_ms") is None for e in bounded.events[:2]] == [
        True,
        False,
    ]
    last = bounded.events[-1]
    assert last.event == "block.till.ring.succeeded"
    assert memory.events[-1].id == last.id


def test_memory_emitter_reads_while_it_receives_trims_and_clears() -> None:
    """Reading while events arrive, the oldest are trimmed and the sink is
    cleared gives whole events in order, never more than max_events, never an
    event twice, and no slice ever fails."""
    memory = MemoryEmitter(max_events=64)
    configure(emitters=[memory], flush_interval=0.01)
    done = threading.Event()
    problems: list[BaseException] = []
    reads = [0]

    def ordered(events: Sequence[Event]) -> None:
        ids = [e.id for e in events]
        assert len(ids) <= 64
        assert len(set(ids)) == len(ids)
        assert ids == sorted(ids)

    def read() -> None:
        try:
            while not done.is_set():
                assert len(memory.events) <= 64
                with contextlib.suppress(IndexError):  # emptied meanwhile
                    assert memory.events[-1].event.startswith("block.till.ring.")
                ordered(list(memory.events))
                ordered(memory.events[5:-5])
                ordered(memory.events[::-1][::-1])
                ordered(memory.events[::3])
                ordered(list(reversed(memory.events))[::-1])
                reads[0] += 1
        except BaseException as exc:  # reported below, on the test's thread
            problems.append(exc)

    def clear() -> None:
        while not done.wait(0.002):
            memory.clear()

    threads = [threading.Thread(target=read), threading.Thread(target=clear)]
    for thread in threads:
        thread.start()
    try:
        _ring(Till(), [float(i) for i in range(3_000)])
        assert flush(10)
    finally:
        done.set()
        for thread in threads:
            thread.join(10)
    assert problems == []
    assert reads[0] > 0
    _ring(Till(), [float(i) for i in range(100)])
    assert flush(10)
    assert len(memory.events) == 64


def test_memory_emitter_gives_each_read_its_own_payload() -> None:
    """Changing the payload of an event read from the sink changes nothing
    kept, and a batch passed as a generator is kept whole."""
    memory = MemoryEmitter()
    configure(emitters=[memory])
    _ring(Till(), [1.0, -1.0])
    assert flush(10)
    failed = memory.events[3]
    failed.payload["error"] = "changed"
    failed.payload["extra"] = 1
    again = memory.events[3]
    assert again.payload["error"]["type"] == "ValueError"
    assert "extra" not in again.payload
    for event in memory.events:
        event.payload["extra"] = 1
    assert all("extra" not in e.payload for e in memory.events)

    other = MemoryEmitter(name="other")
    other.emit_batch(e for e in memory.events)  # type: ignore[arg-type]
    assert other.events == memory.events


def test_memory_emitter_clear_forgets_events() -> None:
    """clear() empties events, and later events are kept again."""
    memory = MemoryEmitter()
    configure(emitters=[memory])
    emit_event("before", {"id": "r"})
    assert flush()
    assert len(memory.events) == 1
    memory.clear()
    assert memory.events == []
    emit_event("after", {"id": "r"})
    assert flush()
    assert [e.event for e in memory.events] == ["after"]


def test_memory_emitter_trims_and_reads_across_batches() -> None:
    """Kept events arrive in batches of three; a bounded emitter trims whole
    batches and part of one, and every kind of read that spans batches gives
    the events an unbounded one keeps, in order."""
    bounded = MemoryEmitter(max_events=7, name="bounded")
    everything = MemoryEmitter(name="everything")
    configure(emitters=[bounded, everything], batch_size=3)
    _ring(Till(), [1.0, 2.0, -3.0, 4.0])
    assert flush(10)
    emit_event("till.counted", {"id": "till.1"})
    _ring(Till(), [5.0, 6.0, 7.0])
    assert flush(10)
    events = list(everything.events)
    assert len(events) == 15
    kept = events[-7:]
    assert bounded.events == kept
    assert len(bounded.events) == 7
    assert bounded.events[0] == kept[0]
    assert bounded.events[-1] == kept[-1]
    assert bounded.events[2:6] == kept[2:6]
    assert bounded.events[::3] == kept[::3]
    assert bounded.events[5:1:-2] == kept[5:1:-2]
    assert list(reversed(bounded.events)) == kept[::-1]
    assert everything.events[4:11] == events[4:11]
    assert [e.event for e in everything.events[5:9]] == [
        "block.till.ring.failed",
        "block.till.ring.started",
        "block.till.ring.succeeded",
        "till.counted",
    ]
    assert everything.events[8] is events[8]  # came built: kept as it came
    with pytest.raises(IndexError, match="7 events kept"):
        bounded.events[7]


# -- ConsoleEmitter ---------------------------------------------------------------


def test_console_emitter_writes_one_line_per_event() -> None:
    """ConsoleEmitter writes exactly one line per event to the given stream."""
    stream = io.StringIO()
    configure(emitters=[ConsoleEmitter(stream)])
    with flow_run("nightly"), task_run("load"):
        emit_event("warehouse.refreshed", {"id": "warehouse.main", "name": "main"})
        emit_event("warehouse.checked", {"id": "warehouse.main"})
    assert flush()
    text = stream.getvalue()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == 2
    first, second = lines
    assert "warehouse.refreshed" in first
    assert "main (warehouse.main)" in first
    assert "flow-run=nightly" in first
    assert "task-run=load" in first
    assert "warehouse.checked" in second
    assert "warehouse.main" in second


def test_console_line_shows_time_duration_and_error() -> None:
    """A failed outcome's line has its time, duration and error type and message."""
    stream = io.StringIO()
    console = ConsoleEmitter(stream)
    event = _event(
        "block.s3-bucket.read_path.failed",
        duration_ms=12.5,
        error={"type": "botocore.exceptions.ClientError", "message": "NoSuchKey"},
    )
    console.emit_batch([event])
    (line,) = stream.getvalue().splitlines()
    assert line.startswith("12:30:15.250")
    assert "block.s3-bucket.read_path.failed" in line
    assert "12.500ms" in line
    assert "botocore.exceptions.ClientError: NoSuchKey" in line


def test_console_line_for_a_failed_outcome_from_the_pipeline() -> None:
    """A failed outcome emitted through the pipeline prints duration and error."""
    stream = io.StringIO()
    configure(emitters=[ConsoleEmitter(stream)])
    started = emit_event("job.started", {"id": "job"})
    emit_event(
        "job.failed",
        {"id": "job"},
        follows=started.id,
        payload={"duration_ms": 3.25, "error": {"type": "ValueError", "message": "x"}},
    )
    assert flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "ms" not in lines[0].split("job.started", 1)[1]
    assert "3.250ms" in lines[1]
    assert "ValueError: x" in lines[1]


def test_console_keeps_a_multiline_error_on_one_line() -> None:
    """An error message with newlines still produces a single line."""
    stream = io.StringIO()
    ConsoleEmitter(stream).emit_batch(
        [
            _event(
                "job.failed",
                duration_ms=1.0,
                error={"type": "RuntimeError", "message": "first\nsecond\n  third"},
            )
        ]
    )
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "RuntimeError: first second third" in lines[0]


def test_console_writes_to_stderr_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ConsoleEmitter() with no stream writes to sys.stderr, not stdout."""
    configure(emitters=[ConsoleEmitter()])
    emit_event(
        "job.failed",
        {"id": "job"},
        payload={"duration_ms": 2.0, "error": {"type": "KeyError", "message": "k"}},
    )
    assert flush()
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert "job.failed" in lines[0]
    assert "2.000ms" in lines[0]
    assert "KeyError: k" in lines[0]


def test_console_flush_returns_true() -> None:
    """ConsoleEmitter.flush flushes its stream and returns True."""
    assert ConsoleEmitter(io.StringIO()).flush() is True


# -- capture_events -----------------------------------------------------------------


def test_capture_sees_events_from_other_threads() -> None:
    """capture_events collects events emitted by other threads inside the scope."""

    def worker(i: int) -> None:
        for j in range(20):
            emit_event("from.thread", {"id": f"thread.{i}"}, payload={"j": j})

    with capture_events() as events:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        emit_event("from.main", {"id": "main"})
    assert len(events) == 81
    assert sum(e.event == "from.thread" for e in events) == 80
    for i in range(4):
        mine = [e.payload["j"] for e in events if e.resource.id == f"thread.{i}"]
        assert mine == list(range(20))


def test_capture_excludes_events_from_before_and_after_the_scope() -> None:
    """Events emitted before the scope started or after it ended are not captured."""
    memory = MemoryEmitter()
    configure(emitters=[memory])
    emit_event("before", {"id": "r"})
    with capture_events() as events:
        inside = emit_event("inside", {"id": "r"})
    emit_event("after", {"id": "r"})
    assert flush()
    assert events == [inside]
    assert [e.event for e in memory.events] == ["before", "inside", "after"]


def test_capture_is_complete_when_the_scope_exits() -> None:
    """The captured list holds every event, in order, right after the scope."""
    with capture_events() as events:
        returned = [emit_event("x", {"id": "r"}, payload={"i": i}) for i in range(500)]
    assert events == returned


def test_nested_captures_both_see_inner_events() -> None:
    """An inner capture sees its events, and the outer one sees all of them."""
    with capture_events() as outer:
        first = emit_event("one", {"id": "r"})
        with capture_events() as inner:
            second = emit_event("two", {"id": "r"})
    assert inner == [second]
    assert outer == [first, second]


class _Gated(Emitter):
    """A sink that holds its first batch until released; joins waiting batches."""

    join_batches_up_to = 1000

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[list[Event]] = []

    def emit_batch(self, events: Sequence[Event]) -> None:
        self.entered.set()
        self.release.wait(10)
        self.calls.append(list(events))


def test_a_sink_that_fell_behind_gets_waiting_batches_joined_in_order() -> None:
    """Batches waiting behind a busy sink arrive joined, in order, up to its limit."""
    sink = _Gated()
    configure(emitters=[sink], batch_size=100, flush_interval=0.01)
    first = emit_event("gate", {"id": "r"})
    assert sink.entered.wait(10)
    emitted = [emit_event("tick", {"id": "r"}, payload={"i": i}) for i in range(2500)]
    time.sleep(0.5)  # let the dispatcher queue them behind the held batch
    sink.release.set()
    assert flush(10)
    received = [e for call in sink.calls for e in call]
    assert received == [first, *emitted]
    assert max(len(call) for call in sink.calls) > 100
    assert all(len(call) <= 1000 for call in sink.calls)
    assert stats()["delivered"]["_Gated"] >= 2501


def test_a_flush_is_not_overtaken_by_joined_batches() -> None:
    """Events emitted after a flush request are not joined into the batch before it."""
    sink = _Gated()
    configure(emitters=[sink], batch_size=100, flush_interval=0.01)
    emit_event("gate", {"id": "r"})
    assert sink.entered.wait(10)
    before = [emit_event("tick", {"id": "r"}, payload={"i": i}) for i in range(300)]
    time.sleep(0.3)
    flushed: list[bool] = []
    waiter = threading.Thread(target=lambda: flushed.append(flush(10)))
    waiter.start()
    time.sleep(0.3)  # the flush request now waits behind the batches above
    after = [emit_event("tock", {"id": "r"}, payload={"i": i}) for i in range(300)]
    time.sleep(0.3)
    sink.release.set()
    waiter.join(10)
    assert flushed == [True]
    assert flush(10)
    names = [[e.event for e in call] for call in sink.calls]
    # No delivery mixes events from before the flush with events from after it.
    assert all(not ({"tick", "gate"} & set(n) and "tock" in n) for n in names)
    assert [e for c in sink.calls for e in c][1:] == [*before, *after]
