"""What sinks receive: one immutable batch, whose events are built only when a
sink reads them. The store, file and HTTP sinks write from the drafts, and what
they write is what the built events say."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import RFC_4122, UUID

import pytest
from opentelemetry.sdk.trace import TracerProvider

from blocks import Block
from emitters import (
    Emitter,
    Event,
    MemoryEmitter,
    configure,
    emit_event,
    flow_run,
    flush,
    register_secret,
)
from emitters._pipeline import batch as batch_module
from emitters._pipeline.batch import EventBatch, JsonEncoder, items_of, materialize
from emitters._pipeline.build import EventBuilder
from emitters._pipeline.record import CALLS, new_call, new_outcome
from emitters.file import FileEmitter
from emitters.sql import SQLEventStore
from emitters.sql._tables import RowEncoder

SECRET = "pw-batch-5d1e77"


class BatchLedger(Block):
    """A block whose calls make every kind of event the pipeline drafts."""

    region: str = "eu-west-1"

    def post(self, amount: float) -> float:
        if amount < 0:
            raise ValueError(f"refused {amount} with {SECRET} \u2028 é \x01")
        return amount

    def transfer(self, other: BatchLedger) -> float:
        return other.post(1.5)


class Keep(Emitter):
    """Keeps the batches as they arrive, unread; it says it reads drafts, as
    the store, file and HTTP sinks do, so the batches hold them."""

    _eventblocks_reads_drafts = True

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[Sequence[Event]] = []

    def emit_batch(self, events: Sequence[Event]) -> None:
        self.batches.append(events)


class Read(Emitter):
    """Reads the events of each batch, as any sink written against the
    ``Emitter`` API does, and keeps them."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.events: list[Event] = []

    def emit_batch(self, events: Sequence[Event]) -> None:
        self.events.extend(events)


def _calls() -> None:
    """Plain, failed, nested calls, in a run, under a span, and an emit_event."""
    ledger, other = BatchLedger(), BatchLedger(region="us-east-1")
    tracer = TracerProvider().get_tracer("test")
    with flow_run("batch-run", labels={"team": "payments"}):
        for i in range(300):
            ledger.post(float(i))
        with pytest.raises(ValueError, match="refused -1"):
            ledger.post(-1)
        ledger.transfer(other)
        with tracer.start_as_current_span("outer"):
            ledger.post(2.0)
    ledger.post(3.0)  # outside any run
    emit_event("ledger.closed", {"id": "ledger.1"}, payload={"rows": 3, "t": "é"})


def test_every_sink_writes_what_the_built_events_say(tmp_path: Path) -> None:
    """The file's lines are byte for byte model_dump_json() of the events a
    memory sink got, the store reads back the same events, no secret anywhere."""
    register_secret(SECRET)
    memory = MemoryEmitter()
    path = tmp_path / "events.jsonl"
    store = SQLEventStore(f"sqlite:///{tmp_path / 'events.db'}")
    configure(emitters=[memory, FileEmitter(path), store])
    _calls()
    assert flush(10)
    events = memory.events
    assert len(events) == 2 * 305 + 1
    lines = path.read_bytes().splitlines()
    assert lines == [e.model_dump_json().encode() for e in events]
    stored = store.events(limit=None)
    assert [e.model_dump() for e in stored] == [e.model_dump() for e in events]
    failed = [e for e in events if e.event.endswith(".failed")]
    assert len(failed) == 1
    assert failed[0].payload["error"]["message"].startswith("refused -1")
    assert SECRET not in path.read_text()
    assert all(SECRET not in e.model_dump_json() for e in stored)
    callers = [e for e in events if e.related_by_role("caller")]
    assert len(callers) == 2  # the nested call's started and succeeded
    # The store wrote the calls from drafts even beside a sink that reads
    # events: their rows name shared parts; emit_event's row holds its own.
    with store.engine.connect() as conn:
        named = conn.exec_driver_sql(
            "SELECT count(*) FROM eventblocks_events WHERE parts IS NOT NULL"
        ).scalar()
    assert named == 2 * 305


def test_drafts_become_the_same_rows_as_built_events() -> None:
    """The store's encoder gives the same rows from drafts as from their events."""
    keep = Keep()
    configure(emitters=[keep])
    _calls()
    assert flush(10)
    items = [item for batch in keep.batches for item in items_of(batch)]
    assert sum(type(item) is tuple for item in items) == 2 * 305
    drafted = RowEncoder().rows(items)
    built = RowEncoder().rows(materialize(items))
    assert (drafted.link_rows, drafted.runs) == (built.link_rows, built.runs)
    assert built.part_rows == []
    assert {row[12] for row in built.rows} == {None}
    # Calls of one method in one run share their parts: one row each, named.
    parts = {key: (labels, related) for key, _, labels, related in drafted.part_rows}
    assert len(parts) == len(drafted.part_rows) < 10
    resolved = [
        row if row[12] is None else (*row[:9], *parts[row[12]], row[11], None)
        for row in drafted.rows
    ]
    assert resolved == built.rows


def _a_draft() -> Any:
    """The draft of the ``started`` event of one real call."""
    keep = Keep()
    configure(emitters=[keep])
    BatchLedger().post(1.0)
    assert flush(10)
    return next(i for i in items_of(keep.batches[0]) if type(i) is tuple)


def test_json_encoder_writes_times_and_ids_as_pydantic_does() -> None:
    """Whole seconds, microseconds, the epoch's first day and a large payload."""
    _, wall, name, described, _, _ = _a_draft()
    variants = [
        (1, 1_796_407_699_000_000_000, name, described, None, None),
        (2**127 + 5, 1_796_407_699_120_000_000, name, described, {}, 99),
        (6, 99_000_001_000, described[4], described, {"duration_ms": 1e-05}, 0),
        (7, wall, described[3], described, {"k": [1, 2.5e300, "x" * 70_000]}, 2),
    ]
    encoded = JsonEncoder().lines(variants)
    assert encoded == [e.model_dump_json().encode() for e in materialize(variants)]


def test_event_times_are_their_drafts_nanoseconds_cut_to_the_microsecond() -> None:
    """Built events read their time from the draft's nanoseconds, whatever the
    order: across seconds, days, years and back again."""
    _, wall, name, described, _, _ = _a_draft()
    walls = [
        wall,
        1_796_407_699_000_000_000,  # a whole second
        1_796_407_699_999_999_999,  # its last nanosecond
        1_796_407_700_000_000_999,  # the next second, under a microsecond in
        1_796_407_699_000_000_999,  # back to the second before
        951_868_799_999_999_000,  # 2000-02-29T23:59:59.999999
        951_868_800_000_001_000,  # 2000-03-01T00:00:00.000001
        1_798_761_599_500_000_000,  # the last second of 2026
        1_798_761_600_000_000_000,  # the first of 2027
        0,  # the epoch
        253_402_300_799_999_999_000,  # 9999-12-31T23:59:59.999999
    ]
    drafts = [(i + 1, w, name, described, None, None) for i, w in enumerate(walls)]
    expected = [
        datetime.fromtimestamp(w // 1_000_000_000, UTC).replace(
            microsecond=w % 1_000_000_000 // 1000
        )
        for w in walls
    ]
    occurred = [event.occurred for event in materialize(drafts)]
    assert occurred == expected
    assert all(t.tzinfo is UTC and t.fold == 0 for t in occurred)
    assert occurred[5].isoformat() == "2000-02-29T23:59:59.999999+00:00"


def test_events_are_built_once_and_only_for_sinks_that_read_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Sinks that write rows and JSON never build events; sinks that read events
    share the same objects, built once per batch; with no sink that writes from
    drafts, the events are built straight from the records."""
    built: list[int] = []
    real = batch_module.materialize

    def counting(items: Sequence[Any]) -> list[Event]:
        built.append(len(items))
        return real(items)

    monkeypatch.setattr(batch_module, "materialize", counting)
    store = SQLEventStore(f"sqlite:///{tmp_path / 'events.db'}")
    kept = MemoryEmitter()
    configure(emitters=[store, FileEmitter(tmp_path / "events.jsonl"), kept])
    for i in range(100):
        BatchLedger().post(float(i))
    assert flush(10)
    assert built == []
    assert len(store.events(limit=None)) == 200
    assert [e.id for e in kept.events] == [e.id for e in store.events(limit=None)]

    first, second = Read("first"), Read("second")
    configure(emitters=[first, second, store])
    for i in range(100):
        BatchLedger().post(float(i))
    assert flush(10)
    assert sum(built) == 200
    assert len(first.events) == 200
    assert all(a is b for a, b in zip(first.events, second.events, strict=True))

    only = Read("only")
    configure(emitters=[only])
    for i in range(100):
        BatchLedger().post(float(i))
    assert flush(10)
    assert sum(built) == 200  # no drafts were made to be built
    assert [e.event for e in only.events[:2]] == [
        "block.batch-ledger.post.started",
        "block.batch-ledger.post.succeeded",
    ]
    # An outcome shares the id object of the started event it follows.
    assert only.events[1].follows is only.events[0].id


def test_a_batch_is_immutable_and_joins_in_order() -> None:
    """No sink can change what the others read; joined batches keep the order
    and what was built already."""
    keep = Keep()
    configure(emitters=[keep])
    for i in range(10):
        BatchLedger().post(float(i))
    assert flush(10)
    batch = keep.batches[0]
    assert isinstance(batch, EventBatch)
    for change in ("clear", "append", "extend", "__setitem__", "__delitem__"):
        assert not hasattr(batch, change)
    with pytest.raises(AttributeError):
        batch.items = ()  # type: ignore[method-assign]
    events = list(batch)
    half = len(events) // 2
    first = EventBatch(batch.items()[:half])
    second = EventBatch.of_events(events[half:])
    joined = EventBatch.join([first, second])
    assert [e.id for e in joined] == [e.id for e in events]
    assert EventBatch.join([second, second]).items() == tuple(events[half:]) * 2
    # Built as far as they were: drafts stay drafts for the sinks that write
    # from them, and events already built are not built again.
    assert EventBatch.join([first, second]).items()[:half] == batch.items()[:half]
    built = EventBatch(batch.items())
    built.events()
    rejoined = EventBatch.join([built, built])
    assert rejoined.items() == batch.items() * 2
    assert rejoined.events()[0] is built.events()[0]
    payloads = [json.loads(e.model_dump_json())["payload"] for e in joined]
    assert payloads == [e.payload for e in events]


def test_block_call_ids_are_ordered_uuid7_that_carry_their_time() -> None:
    """A burst of calls gets unique UUIDv7 ids in the order of the events, each
    holding the millisecond its event occurred (or a later one, when the
    millisecond's 12-bit counter ran out)."""
    memory = MemoryEmitter()
    configure(emitters=[memory])
    ledger = BatchLedger()
    for i in range(5_000):
        ledger.post(float(i))
    assert flush(10)
    events = list(memory.events)
    ids = [e.id for e in events]
    assert len(events) == 10_000
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert {(i.version, i.variant) for i in ids} == {(7, RFC_4122)}
    for event in events:
        id_ms = event.id.int >> 80
        occurred_ms = int(event.occurred.timestamp() * 1000)
        assert occurred_ms <= id_ms <= occurred_ms + 5, event


def test_ids_stay_ordered_when_a_millisecond_runs_out_of_ids() -> None:
    """12,000 events of one millisecond: the counter (4,096 ids, from a random
    start below 2,048) runs out, and the ids go on in the next milliseconds,
    unique, ordered and well formed."""
    block = BatchLedger()
    now = time.perf_counter_ns()
    records: list[tuple[Any, ...]] = []
    for _ in range(6_000):
        call = new_call(block, "post", None, None, None, now)
        records += [call, new_outcome(call, now, None, None)]
    drafts = EventBuilder().build(records)
    ids = [draft[0] for draft in drafts]
    assert len(set(ids)) == 12_000
    assert ids == sorted(ids)
    milliseconds = sorted({i >> 80 for i in ids})
    assert 3 <= len(milliseconds) <= 6
    assert milliseconds == list(range(milliseconds[0], milliseconds[-1] + 1))
    assert milliseconds[0] == drafts[0][1] // 1_000_000
    assert {(UUID(int=i).version, UUID(int=i).variant) for i in ids} == {(7, RFC_4122)}


def test_outcomes_follow_their_started_events_however_records_interleave() -> None:
    """An outcome that comes right after its started record takes its id from
    there; one that comes later (overlapping calls, a nested call, the next
    batch) finds it in the call table. Either way it follows the right event,
    a nested call names its caller's, and every call leaves the table."""
    block, other = BatchLedger(), BatchLedger(region="us-east-1")
    now = time.perf_counter_ns()
    a = new_call(block, "post", None, None, None, now)
    b = new_call(other, "post", None, None, None, now + 1)
    c = new_call(block, "post", None, None, None, now + 2)
    late = new_call(block, "post", None, None, None, now + 3)
    first_batch = [
        a,
        new_outcome(a, now + 5, None, None),  # right after its started record
        b,
        c,
        new_outcome(b, now + 7, None, None),  # overlapping calls
        new_outcome(c, now + 8, None, None),
        late,  # its outcome comes with the next batch
    ]
    nested = new_call(block, "transfer", None, None, None, now + 9)
    inner = new_call(other, "post", None, None, nested, now + 10)
    second_batch = [
        new_outcome(late, now + 11, None, None),
        nested,
        inner,
        new_outcome(inner, now + 12, None, None),
        new_outcome(nested, now + 13, None, None),
    ]
    builder = EventBuilder()
    drafts = builder.build(first_batch) + builder.build(second_batch)
    started = {d[0]: d for d in drafts if d[2].endswith(".started")}
    outcomes = [d for d in drafts if not d[2].endswith(".started")]
    assert len(started) == 6
    assert len(outcomes) == 6
    order = [d[2].rsplit(".", 2)[1] for d in outcomes]
    assert order == ["post"] * 4 + ["post", "transfer"]
    ids_by_call: dict[int, int] = {}
    for record, draft in zip(first_batch + second_batch, drafts, strict=True):
        if record[0] == 0:  # a started record
            ids_by_call[record[1]] = draft[0]
        else:
            assert draft[5] == ids_by_call[record[1][1]], draft[2]
    inner_started = started[ids_by_call[inner[1]]]
    callers = [r.id for r in inner_started[3][1] if r.role == "caller"]
    assert callers == [f"event.{UUID(int=ids_by_call[nested[1]])}"]
    for call in (a, b, c, late, nested, inner):
        key = call[1]
        assert key not in CALLS.sources
        assert key not in CALLS.started
        assert CALLS.finished_id(key) == ids_by_call[key]
