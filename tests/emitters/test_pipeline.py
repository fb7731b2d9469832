"""The pipeline: configure, flush, stats, isolation of sinks, processors, shutdown."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from emitters import (
    DropEvent,
    Emitter,
    Event,
    MemoryEmitter,
    configure,
    emit_event,
    event_filter,
    flush,
    sampler,
    shutdown,
    stats,
)
from emitters.testing import capture_events


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _emit(n: int, name: str = "tick") -> list[Event]:
    return [emit_event(name, {"id": "clock"}, payload={"i": i}) for i in range(n)]


def _delta(before: dict[str, Any], after: dict[str, Any], key: str) -> int:
    return int(after[key]) - int(before[key])


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


class BlockingEmitter(Emitter):
    """A sink whose emit_batch waits until the test releases it."""

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.release = threading.Event()
        self.entered = threading.Event()
        self.events: list[Event] = []

    def emit_batch(self, events: Sequence[Event]) -> None:
        self.entered.set()
        self.release.wait(10)
        self.events.extend(events)


class FailingEmitter(Emitter):
    """A sink whose emit_batch always raises."""

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.calls = 0

    def emit_batch(self, events: Sequence[Event]) -> None:
        self.calls += 1
        raise RuntimeError("sink is down")


class ClosingEmitter(MemoryEmitter):
    """A memory sink that counts its close calls."""

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def blocking() -> Iterator[BlockingEmitter]:
    """A blocking sink that is always released at the end of the test."""
    sink = BlockingEmitter(name=_unique("blocking"))
    try:
        yield sink
    finally:
        sink.release.set()


# -- configure ------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, -1, "10", 1.5, True])
def test_configure_rejects_a_bad_buffer_budget(size: object) -> None:
    """configure raises ValueError naming max_buffer_bytes for a non-positive int."""
    with pytest.raises(ValueError, match="max_buffer_bytes"):
        configure(emitters=[], max_buffer_bytes=size)  # type: ignore[arg-type]


def test_configure_rejects_a_non_callable_processor() -> None:
    """configure raises TypeError naming processors for a non-callable."""
    with pytest.raises(TypeError, match="processors"):
        configure(emitters=[], processors=[42])  # type: ignore[list-item]


def test_configure_rejects_an_object_without_emit_batch() -> None:
    """configure raises TypeError naming emit_batch for a non-sink object."""
    with pytest.raises(TypeError, match="emit_batch"):
        configure(emitters=[object()])  # type: ignore[list-item]


def test_configure_rejects_two_emitters_with_the_same_name() -> None:
    """Two sinks with one name raise ValueError naming the name."""
    with pytest.raises(ValueError, match="MemoryEmitter"):
        configure(emitters=[MemoryEmitter(), MemoryEmitter()])
    with pytest.raises(ValueError, match="same-name"):
        configure(
            emitters=[MemoryEmitter(name="same-name"), MemoryEmitter(name="same-name")]
        )
    configure(emitters=[MemoryEmitter(name="a"), MemoryEmitter(name="b")])


def test_rejected_configure_keeps_the_previous_configuration() -> None:
    """A configure call that fails validation leaves the working one in place."""
    memory = MemoryEmitter()
    configure(emitters=[memory])
    with pytest.raises(ValueError, match="max_buffer_bytes"):
        configure(emitters=[], max_buffer_bytes=0)
    emit_event("x", {"id": "r"})
    assert flush()
    assert [e.event for e in memory.events] == ["x"]


def test_configure_replaces_the_configuration() -> None:
    """After configure() again, the old sinks receive nothing more."""
    old, new = MemoryEmitter(name="old"), MemoryEmitter(name="new")
    configure(emitters=[old])
    emit_event("first", {"id": "r"})
    configure(emitters=[new])
    emit_event("second", {"id": "r"})
    assert flush()
    assert [e.event for e in old.events] == ["first"]
    assert [e.event for e in new.events] == ["second"]


def test_configure_replaces_processors_too() -> None:
    """A new configure() without processors no longer runs the old ones."""
    memory = MemoryEmitter()
    configure(emitters=[memory], processors=[lambda e: None])
    emit_event("dropped", {"id": "r"})
    assert flush()
    configure(emitters=[memory])
    emit_event("kept", {"id": "r"})
    assert flush()
    assert [e.event for e in memory.events] == ["kept"]


def test_configure_does_not_close_a_sink_it_keeps() -> None:
    """A sink present in the new configuration is not closed by configure()."""
    sink = ClosingEmitter(name=_unique("kept"))
    configure(emitters=[sink])
    configure(emitters=[sink, MemoryEmitter()])
    assert sink.closed == 0
    emit_event("x", {"id": "r"})
    assert flush()
    assert [e.event for e in sink.events] == ["x"]


def test_configure_closes_a_sink_it_drops() -> None:
    """A sink left out of the new configuration is closed exactly once."""
    sink = ClosingEmitter(name=_unique("dropped"))
    configure(emitters=[sink])
    configure(emitters=[])
    assert sink.closed == 1


# -- flush and stats --------------------------------------------------------------


def test_flush_delivers_every_event_in_order() -> None:
    """flush() returns True once every emitted event reached the memory sink."""
    memory = MemoryEmitter()
    configure(emitters=[memory])
    returned = _emit(2000)
    assert flush() is True
    assert memory.events == returned
    assert [e.payload["i"] for e in memory.events] == list(range(2000))


def test_flush_with_no_sinks_returns_true() -> None:
    """flush() on a pipeline without sinks returns True promptly."""
    _emit(10)
    assert flush(5.0) is True


def test_stats_keys_and_counts() -> None:
    """stats() counts emitted and delivered per sink name; nothing dropped."""
    a, b = MemoryEmitter(name=_unique("a")), MemoryEmitter(name=_unique("b"))
    configure(emitters=[a, b])
    before = stats()
    assert {"emitted", "dropped", "delivered", "failed"} <= set(before)
    _emit(25)
    assert flush()
    after = stats()
    assert isinstance(after["emitted"], int)
    assert isinstance(after["dropped"], int)
    assert _delta(before, after, "emitted") == 25
    assert _delta(before, after, "dropped") == 0
    assert after["delivered"][a.name] == 25
    assert after["delivered"][b.name] == 25
    assert after["failed"][a.name] == 0
    assert after["failed"][b.name] == 0


def test_stats_are_cumulative_across_configurations() -> None:
    """Counts of a replaced configuration stay in stats()."""
    name = _unique("sink")
    configure(emitters=[MemoryEmitter(name=name)])
    _emit(3)
    assert flush()
    configure(emitters=[MemoryEmitter(name=name)])
    _emit(2)
    assert flush()
    assert stats()["delivered"][name] == 5


def test_stats_count_failures_per_sink() -> None:
    """A sink that raises has its events counted as failed, not delivered."""
    bad = FailingEmitter(name=_unique("bad"))
    good = MemoryEmitter(name=_unique("good"))
    configure(emitters=[bad, good])
    _emit(7)
    assert flush() is False  # the bad sink failed
    result = stats()
    assert result["failed"][bad.name] == 7
    assert result["delivered"].get(bad.name, 0) == 0
    assert result["delivered"][good.name] == 7
    assert result["failed"][good.name] == 0
    assert len(good.events) == 7


def test_stats_count_filtered_events() -> None:
    """Events a processor drops are counted as filtered and not delivered."""
    memory = MemoryEmitter(name=_unique("m"))
    configure(
        emitters=[memory],
        processors=[lambda e: None if e.payload["i"] % 2 else e],
    )
    before = stats()
    _emit(10)
    assert flush()
    after = stats()
    assert _delta(before, after, "filtered") == 5
    assert after["delivered"][memory.name] == 5
    assert _delta(before, after, "dropped") == 0


def _stall(sink: BlockingEmitter) -> None:
    """Get one event into the sink's hands, so that it is stuck in emit_batch."""
    with capture_events():  # drains the dispatcher on exit
        emit_event("stall", {"id": "r"})
    assert _wait_until(sink.entered.is_set)


def test_a_full_buffer_sheds_oldest_events_counts_and_records_the_loss(
    blocking: BlockingEmitter,
) -> None:
    """Past its byte budget the buffer drops the oldest events, counts each, and
    hands the sinks a pipeline.events-lost record; flush() then says False once."""
    configure(
        emitters=[blocking],
        max_buffer_bytes=64 * 1024,
        flush_interval=60.0,  # the dispatcher sleeps until it is asked to drain
    )
    _stall(blocking)
    before = stats()
    n = 6000
    returned = _emit(n)
    mid = stats()
    emitted_mid = _delta(before, mid, "emitted")
    assert _delta(before, mid, "dropped") > 0
    blocking.release.set()
    assert flush(10) is False  # something queued since the last flush was lost
    assert flush(10) is True  # and nothing since
    after = stats()
    dropped = _delta(before, after, "dropped")
    ticks = [e for e in blocking.events if e.event == "tick"]
    # A record per run and minute each time the dispatcher reports: the loss may
    # straddle a minute, or be reported by more than one batch.
    lost = [e for e in blocking.events if e.event == "pipeline.events-lost"]
    assert lost
    # The calls, and the loss records the dispatcher made by then (the pipeline's
    # own events are counted as emitted too).
    assert n <= emitted_mid <= n + len(lost)
    assert sum(e.payload["lost"] for e in lost) == dropped
    assert all(e.payload["failures"] == 0 for e in lost)
    assert len(ticks) + dropped == n
    # What was kept arrived in order, and the newest events are among it (the
    # dispatcher may have handed the first ones to the sink before the buffer
    # filled up).
    order = {event.id: i for i, event in enumerate(returned)}
    positions = [order[e.id] for e in ticks]
    assert positions == sorted(positions)
    assert positions[-1] == n - 1


def test_overload_sheds_while_the_sink_is_stalled(blocking: BlockingEmitter) -> None:
    """A stalled sink and a tiny budget: emitting returns while the sink is still
    stuck (it never waits for it), and every event is delivered or counted."""
    configure(emitters=[blocking], max_buffer_bytes=16 * 1024)
    _stall(blocking)
    before = stats()
    _emit(20_000)
    # Still stuck: the calls above came back without the sink taking anything.
    assert not blocking.release.is_set()
    during = stats()
    assert _delta(before, during, "dropped") > 0
    blocking.release.set()
    assert flush(10) is False
    after = stats()
    # Minus the stall event, emitted before the first snapshot, delivered after.
    delivered = after["delivered"][blocking.name] - before["delivered"][blocking.name]
    delivered -= 1
    assert delivered + _delta(before, after, "dropped") == _delta(
        before, after, "emitted"
    )


def test_a_sink_cannot_alter_what_another_receives() -> None:
    """Each sink gets the same immutable batch: clearing it is refused."""

    class Clearing(Emitter):
        def __init__(self) -> None:
            super().__init__()
            self.errors: list[str] = []

        def emit_batch(self, events: Sequence[Event]) -> None:
            try:
                events.clear()  # type: ignore[attr-defined]
            except AttributeError as exc:
                self.errors.append(str(exc))

    clearing, memory = Clearing(), MemoryEmitter()
    configure(emitters=[clearing, memory])
    _emit(10)
    assert flush(10)
    assert [e.payload["i"] for e in memory.events] == list(range(10))
    assert clearing.errors


# -- sink isolation -----------------------------------------------------------------


def test_failing_sink_never_raises_into_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sink that raises is caught: emit_event returns, flush reports it."""
    caplog.set_level(logging.WARNING, logger="emitters")
    bad = FailingEmitter(name=_unique("bad"))
    configure(emitters=[bad])
    event = emit_event("x", {"id": "r"})
    assert event.event == "x"
    assert flush() is False
    assert bad.calls >= 1


def test_failing_sink_is_logged_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Repeated failures of one sink produce a single warning on 'emitters'."""
    caplog.set_level(logging.WARNING, logger="emitters")
    bad = FailingEmitter(name=_unique("flaky"))
    configure(emitters=[bad])
    for _ in range(5):
        _emit(3)
        assert flush() is False
    assert bad.calls >= 5
    records = [
        r for r in caplog.records if r.name == "emitters" and bad.name in r.getMessage()
    ]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert "RuntimeError" in records[0].getMessage()
    assert "sink is down" in records[0].getMessage()


def test_hung_sink_does_not_delay_another_sink(blocking: BlockingEmitter) -> None:
    """A sink that hangs delays only itself; flush times out and returns False."""
    memory = MemoryEmitter(name=_unique("fast"))
    configure(emitters=[blocking, memory])
    _emit(10)
    assert _wait_until(lambda: len(memory.events) == 10)
    assert _wait_until(blocking.entered.is_set)
    assert blocking.events == []
    start = time.monotonic()
    result = flush(timeout=0.5)
    elapsed = time.monotonic() - start
    assert result is False
    assert elapsed < 5.0
    _emit(5)
    assert _wait_until(lambda: len(memory.events) == 15)
    blocking.release.set()
    assert flush(10) is True
    assert len(blocking.events) == 15


def test_disabled_pipeline_returns_events_but_delivers_nothing() -> None:
    """configure(enabled=False): emit_event returns an Event, no sink gets it."""
    memory = MemoryEmitter(name=_unique("m"))
    configure(emitters=[memory], enabled=False)
    before = stats()
    with capture_events() as captured:
        event = emit_event("x", {"id": "r"}, payload={"a": 1})
    assert isinstance(event, Event)
    assert event.payload == {"a": 1}
    assert flush()
    assert memory.events == []
    assert captured == []
    assert _delta(before, stats(), "emitted") == 0


# -- processors ---------------------------------------------------------------------


def test_processors_run_in_order_and_see_earlier_changes() -> None:
    """Processors run in the given order, each on the previous one's result."""
    calls: list[tuple[str, tuple[str, ...]]] = []

    def first(event: Event) -> Event:
        calls.append(("first", tuple(event.payload)))
        return event.model_copy(update={"payload": {**event.payload, "first": 1}})

    def second(event: Event) -> Event:
        calls.append(("second", tuple(event.payload)))
        return event.model_copy(update={"payload": {**event.payload, "second": 2}})

    memory = MemoryEmitter()
    configure(emitters=[memory], processors=[first, second])
    emit_event("x", {"id": "r"}, payload={"orig": 0})
    assert flush()
    assert calls == [("first", ("orig",)), ("second", ("orig", "first"))]
    assert memory.events[0].payload == {"orig": 0, "first": 1, "second": 2}


def test_drop_event_drops_without_error(caplog: pytest.LogCaptureFixture) -> None:
    """Raising DropEvent drops the event, counts it filtered, logs nothing."""
    caplog.set_level(logging.WARNING, logger="emitters")
    later: list[str] = []

    def drop_secret(event: Event) -> Event:
        if event.event == "secret.thing":
            raise DropEvent
        return event

    def record(event: Event) -> Event:
        later.append(event.event)
        return event

    memory = MemoryEmitter()
    configure(emitters=[memory], processors=[drop_secret, record])
    before = stats()
    emit_event("secret.thing", {"id": "r"})
    emit_event("public.thing", {"id": "r"})
    assert flush()
    after = stats()
    assert [e.event for e in memory.events] == ["public.thing"]
    assert later == ["public.thing"]
    assert _delta(before, after, "filtered") == 1
    assert _delta(before, after, "processor_errors") == 0
    assert [r for r in caplog.records if r.name == "emitters"] == []


def test_processor_returning_none_drops_the_event() -> None:
    """A processor that returns None drops the event; later ones do not see it."""
    seen: list[str] = []

    def none_for_debug(event: Event) -> Event | None:
        return None if event.event.startswith("debug.") else event

    def record(event: Event) -> Event:
        seen.append(event.event)
        return event

    memory = MemoryEmitter()
    configure(emitters=[memory], processors=[none_for_debug, record])
    emit_event("debug.noise", {"id": "r"})
    emit_event("info.signal", {"id": "r"})
    assert flush()
    assert [e.event for e in memory.events] == ["info.signal"]
    assert seen == ["info.signal"]


def test_sampler_zero_drops_everything_and_one_keeps_everything() -> None:
    """sampler(0.0) keeps no event and sampler(1.0) keeps every event."""
    none_kept, all_kept = MemoryEmitter(name="none"), MemoryEmitter(name="all")
    configure(emitters=[none_kept], processors=[sampler(0.0)])
    _emit(100)
    assert flush()
    configure(emitters=[all_kept], processors=[sampler(1.0)])
    returned = _emit(100)
    assert flush()
    assert none_kept.events == []
    assert all_kept.events == returned


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_sampler_rejects_a_rate_out_of_range(rate: float) -> None:
    """sampler raises ValueError for a rate outside 0.0 to 1.0."""
    with pytest.raises(ValueError, match="rate"):
        sampler(rate)


def test_sampler_keeps_a_started_event_and_its_outcome_together() -> None:
    """sampler(0.5) keeps or drops each started event together with its outcome."""
    memory = MemoryEmitter()
    configure(emitters=[memory], processors=[sampler(0.5)])
    pairs = []
    for i in range(300):
        started = emit_event("job.started", {"id": "job"}, payload={"i": i})
        outcome = emit_event("job.succeeded", {"id": "job"}, follows=started.id)
        pairs.append((started.id, outcome.id))
    assert flush()
    kept = {e.id for e in memory.events}
    for started_id, outcome_id in pairs:
        assert (started_id in kept) == (outcome_id in kept)
    kept_pairs = sum(1 for s, _ in pairs if s in kept)
    assert 0 < kept_pairs < 300
    for event in memory.events:
        if event.follows is not None:
            assert event.follows in kept


def test_event_filter_include_and_exclude_globs() -> None:
    """event_filter keeps names matching include and not matching exclude."""
    memory = MemoryEmitter()
    configure(
        emitters=[memory],
        processors=[
            event_filter(include=["block.s3-bucket.*", "job.*"], exclude="*.started")
        ],
    )
    names = [
        "block.s3-bucket.read_path.started",
        "block.s3-bucket.read_path.succeeded",
        "block.secret.get.succeeded",
        "job.started",
        "job.failed",
        "other",
    ]
    for name in names:
        emit_event(name, {"id": "r"})
    assert flush()
    assert [e.event for e in memory.events] == [
        "block.s3-bucket.read_path.succeeded",
        "job.failed",
    ]


def test_event_filter_without_patterns_keeps_everything() -> None:
    """event_filter() with no include or exclude passes every event through."""
    keep = event_filter()
    event = emit_event("anything.at.all", {"id": "r"})
    assert keep(event) is event
    only_exclude = event_filter(exclude=["*.debug"])
    assert only_exclude(event) is event
    debug = emit_event("x.debug", {"id": "r"})
    assert only_exclude(debug) is None


def test_raising_processor_drops_the_event_and_counts_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A processor that raises drops its event, counts processor_errors, logs."""
    caplog.set_level(logging.WARNING, logger="emitters")

    def broken(event: Event) -> Event:
        if event.payload["i"] == 1:
            raise KeyError("oops")
        return event

    memory = MemoryEmitter()
    configure(emitters=[memory], processors=[broken])
    before = stats()
    _emit(3)
    assert flush()
    after = stats()
    assert [e.payload["i"] for e in memory.events] == [0, 2]
    assert _delta(before, after, "processor_errors") == 1
    messages = [r.getMessage() for r in caplog.records if r.name == "emitters"]
    assert any("KeyError" in m for m in messages)


def test_processor_error_is_not_counted_as_filtered() -> None:
    """stats()['filtered'] counts only deliberate drops, not processor errors."""

    def broken(event: Event) -> Event:
        raise RuntimeError("broken processor")

    configure(emitters=[MemoryEmitter()], processors=[broken])
    before = stats()
    _emit(4)
    assert flush()
    after = stats()
    assert _delta(before, after, "processor_errors") == 4
    assert _delta(before, after, "filtered") == 0


# -- shutdown ----------------------------------------------------------------------


def test_shutdown_delivers_queued_events_and_closes_sinks() -> None:
    """shutdown() delivers what was queued before it and closes the sinks."""
    sink = ClosingEmitter(name=_unique("closing"))
    configure(emitters=[sink])
    returned = _emit(5)
    assert shutdown() is True
    assert sink.events == returned
    assert sink.closed >= 1


def test_shutdown_closes_each_sink_exactly_once() -> None:
    """shutdown() calls Emitter.close() exactly once per sink."""
    sink = ClosingEmitter(name=_unique("closing"))
    other = ClosingEmitter(name=_unique("other"))
    configure(emitters=[sink, other])
    assert shutdown() is True
    assert sink.closed == 1
    assert other.closed == 1


def test_nothing_is_delivered_after_shutdown_until_configure() -> None:
    """After shutdown(), emit_event delivers nothing until configure() is called."""
    sink = ClosingEmitter(name=_unique("closing"))
    configure(emitters=[sink])
    assert shutdown() is True
    before = stats()
    with capture_events() as captured:
        event = emit_event("after.shutdown", {"id": "r"})
    assert isinstance(event, Event)
    assert flush()
    assert captured == []
    assert sink.events == []
    assert _delta(before, stats(), "emitted") == 0
    fresh = MemoryEmitter()
    configure(emitters=[fresh])
    emit_event("after.configure", {"id": "r"})
    assert flush()
    assert [e.event for e in fresh.events] == ["after.configure"]
    assert sink.events == []


def test_second_shutdown_is_harmless() -> None:
    """A second shutdown() returns True and does not close the sinks again."""
    sink = ClosingEmitter(name=_unique("closing"))
    configure(emitters=[sink])
    assert shutdown()
    closed = sink.closed
    assert shutdown() is True
    assert sink.closed == closed


# -- the Emitter base ---------------------------------------------------------------


def test_emitter_name_defaults_to_the_class_name() -> None:
    """An Emitter's name is its class name unless name= is given."""
    assert MemoryEmitter().name == "MemoryEmitter"
    assert FailingEmitter().name == "FailingEmitter"
    assert MemoryEmitter(name="primary").name == "primary"
    assert "primary" in repr(MemoryEmitter(name="primary"))


def test_emitter_name_is_the_stats_key() -> None:
    """stats() counts a sink under its name= when given."""
    name = _unique("custom")
    configure(emitters=[MemoryEmitter(name=name)])
    _emit(2)
    assert flush()
    assert stats()["delivered"][name] == 2


def test_emitter_is_a_context_manager_that_closes() -> None:
    """Leaving a with block calls close() once and returns the emitter on entry."""
    sink = ClosingEmitter()
    with sink as entered:
        assert entered is sink
        assert sink.closed == 0
    assert sink.closed == 1


def test_emitter_closes_when_the_with_body_raises() -> None:
    """close() runs even when the with body raises, and the error propagates."""
    sink = ClosingEmitter()
    with pytest.raises(RuntimeError, match="inside"), sink:
        raise RuntimeError("inside")
    assert sink.closed == 1


def test_emitter_base_defaults() -> None:
    """The base flush() returns True and close() does nothing harmful."""

    class Minimal(Emitter):
        def emit_batch(self, events: Sequence[Event]) -> None:
            """Discard the batch."""

    sink = Minimal()
    assert sink.flush() is True
    assert sink.flush(0.1) is True
    sink.close()
    assert sink.name == "Minimal"


def test_emitter_without_emit_batch_cannot_be_instantiated() -> None:
    """Emitter is abstract: a subclass must implement emit_batch."""

    class Incomplete(Emitter):
        pass

    with pytest.raises(TypeError, match="emit_batch"):
        Incomplete()  # type: ignore[abstract]


class _Answering(Emitter):
    """A sink whose flush answers False, or raises."""

    def __init__(self, *, raises: bool = False) -> None:
        super().__init__()
        self.raises = raises

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Accept the batch."""

    def flush(self, timeout: float | None = None) -> bool:
        """Report that the events are not durable yet."""
        if self.raises:
            raise OSError("disk gone")
        return False


@pytest.mark.parametrize("raises", [False, True])
def test_flush_reports_a_sink_that_could_not_flush(raises: bool) -> None:
    """flush() is False when a sink's flush returns False or raises."""
    configure(emitters=[_Answering(raises=raises)])
    emit_event("job.step", {"id": "job.1"})
    assert flush(5) is False
    configure(emitters=[MemoryEmitter()])
    emit_event("job.step", {"id": "job.1"})
    assert flush(5) is True


class _Busy(Emitter):
    """A sink stuck in a wait that only close() ends."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.closed = threading.Event()

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Wait until closed, as a sink waiting out a retry would."""
        self.entered.set()
        self.closed.wait(30)

    def close(self) -> None:
        """Wake the waiting delivery."""
        self.closed.set()


def test_shutdown_closes_a_sink_that_is_still_busy() -> None:
    """A sink busy past the timeout is still closed, so that it can stop waiting."""
    sink = _Busy()
    configure(emitters=[sink])
    emit_event("job.step", {"id": "job.1"})
    assert sink.entered.wait(5)
    started = time.monotonic()
    assert shutdown(timeout=0.3) is False
    assert sink.closed.is_set()
    assert time.monotonic() - started < 5
