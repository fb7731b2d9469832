"""The SQL event store: writes, idempotency, and the query API on known event sets.

The query tests run on SQLite, PostgreSQL and MariaDB (the ``store_url`` fixture).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from emitters import (
    Event,
    RelatedResource,
    Resource,
    configure,
    emit_event,
    flow_run,
    flush,
    stats,
)
from emitters._ids import uuid7_from_ns
from emitters.sql import BlockRunSummary, CallRecord, SQLEventStore

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
CREDS = uuid.UUID("00000000-0000-4000-8000-00000000c0de")
BUCKET = uuid.UUID("00000000-0000-4000-8000-0000000b0c4e")


def _id(at: datetime) -> uuid.UUID:
    return uuid7_from_ns(int(at.timestamp() * 1e9))


def _run(run_id: str, name: str) -> RelatedResource:
    return RelatedResource(id=f"flow-run.{run_id}", role="flow-run", name=name)


def _bucket_resource() -> Resource:
    return Resource(
        id=f"block-document.{BUCKET}", name="raw", labels={"block-type": "s3-bucket"}
    )


def _creds_resource() -> Resource:
    return Resource(
        id=f"block-document.{CREDS}",
        name="prod",
        labels={"block-type": "aws-credentials"},
    )


def _nested_creds() -> RelatedResource:
    return RelatedResource(
        id=f"block-document.{CREDS}",
        role="nested-block",
        name="prod",
        labels={"field": "credentials", "block-type": "aws-credentials"},
    )


def _call(
    resource: Resource,
    method: str,
    at: datetime,
    ms: float,
    *,
    run: RelatedResource | None,
    error: str | None = None,
    nested: bool = False,
    caller: uuid.UUID | None = None,
) -> list[Event]:
    """A started event and its outcome, as the pipeline builds them."""
    slug = resource.labels["block-type"]
    related = [RelatedResource(id=f"block-type.{slug}", role="block-type", name=slug)]
    if nested:
        related.append(_nested_creds())
    if run is not None:
        related.append(run)
    if caller is not None:
        related.append(RelatedResource(id=f"event.{caller}", role="caller"))
    started = Event(
        id=_id(at),
        occurred=at,
        event=f"block.{slug}.{method}.started",
        resource=resource,
        related=tuple(related),
    )
    payload: dict[str, object] = {"duration_ms": ms}
    if error is not None:
        payload["error"] = {"type": error, "message": f"{error} happened"}
    outcome = Event(
        id=_id(at + timedelta(milliseconds=ms)),
        occurred=at + timedelta(milliseconds=ms),
        event=f"block.{slug}.{method}.{'failed' if error else 'succeeded'}",
        resource=resource,
        related=tuple(related),
        payload=payload,
        follows=started.id,
    )
    return [started, outcome]


RUN_1 = _run("run-1", "nightly")
RUN_2 = _run("run-2", "nightly")
RUN_3 = _run("run-3", "backfill")


def _story() -> list[Event]:
    """Three runs use a bucket whose credentials are a nested document; run 2 fails."""
    bucket, creds = _bucket_resource(), _creds_resource()
    events: list[Event] = []
    # run 1: the bucket reads and writes; its credentials make a client.
    read = _call(bucket, "read_path", T0, 40.0, run=RUN_1, nested=True)
    events += read
    events += _call(
        creds,
        "get_client",
        T0 + timedelta(milliseconds=1),
        5.0,
        run=RUN_1,
        caller=read[0].id,
    )
    events += _call(
        bucket, "write_path", T0 + timedelta(seconds=1), 60.0, run=RUN_1, nested=True
    )
    # run 2, a day later: a read fails, then a list fails differently.
    day = T0 + timedelta(days=1)
    events += _call(
        bucket, "read_path", day, 12.5, run=RUN_2, nested=True, error="NoSuchKey"
    )
    events += _call(
        bucket,
        "list_objects",
        day + timedelta(seconds=2),
        3.0,
        run=RUN_2,
        nested=True,
        error="botocore.exceptions.ClientError",
    )
    # run 3 uses only another block; an unsaved block call happens outside any run.
    other = Resource(id="block.secret", labels={"block-type": "secret"})
    events += _call(other, "get", day + timedelta(days=1), 1.0, run=RUN_3)
    events += _call(creds, "get_client", day + timedelta(days=2), 2.0, run=None)
    return events


STORY = _story()


@pytest.fixture
def store(store_url: str) -> SQLEventStore:
    """A store with the known story written into it."""
    store = SQLEventStore(store_url)
    events = STORY
    store.emit_batch(events[:7])
    store.emit_batch(events[7:])
    return store


def test_events_read_back_equal_to_what_was_written(store: SQLEventStore) -> None:
    """Every stored event comes back equal, field for field, in time order."""
    expected = sorted(STORY, key=lambda e: (e.occurred, e.id))
    assert store.events(limit=None) == expected


def test_a_replayed_batch_stores_nothing_twice(store: SQLEventStore) -> None:
    """Writing the same events again (whole or overlapping) adds no row."""
    events = STORY
    store.emit_batch(events)
    store.emit_batch(events[3:9])
    stored = store.events(limit=None)
    assert len(stored) == len(events)
    assert len({e.id for e in stored}) == len(events)
    assert len(store.events(block="aws-credentials/prod", limit=None)) == 12


def test_events_by_block_include_nested_block_events(store: SQLEventStore) -> None:
    """block= finds events about the document and events that nest it."""
    names = [e.event for e in store.events(block="aws-credentials/prod", limit=None)]
    assert names.count("block.aws-credentials.get_client.started") == 2
    assert names.count("block.s3-bucket.read_path.started") == 2
    assert "block.secret.get.started" not in names
    bucket = store.events(block="s3-bucket/raw", limit=None)
    assert {e.resource.name for e in bucket} == {"raw"}
    assert len(bucket) == 8
    assert store.events(block="s3-bucket/other") == []
    assert len(store.events(block="secret", limit=None)) == 2


def test_events_filters(store: SQLEventStore) -> None:
    """flow_run, resource_id, name globs, failed and time bounds filter as named."""
    run_2 = store.events(flow_run="run-2", limit=None)
    assert len(run_2) == 4
    assert all(e.related_by_role("flow-run") for e in run_2)
    assert [e.event for e in store.events(flow_run="run-2", failed=True)] == [
        "block.s3-bucket.read_path.failed",
        "block.s3-bucket.list_objects.failed",
    ]
    assert len(store.events(flow_run="run-2", failed=False, limit=None)) == 2
    by_resource = store.events(resource_id=f"block-document.{CREDS}", limit=None)
    assert {e.resource.name for e in by_resource} == {"prod"}
    assert len(by_resource) == 4
    reads = store.events(name="block.s3-bucket.read_*", limit=None)
    assert {e.event.split(".")[2] for e in reads} == {"read_path"}
    assert len(reads) == 4
    # '_' and '%' in a glob are literal characters, not LIKE wildcards.
    assert store.events(name="block.s3-bucket.read%path.*") == []
    assert store.events(name="block.s3-bucket.readXpath.*") == []
    assert len(store.events(name="block.*.get?client.*", limit=None)) == 4
    day_2 = store.events(
        since=T0 + timedelta(days=1), until=T0 + timedelta(days=1, hours=1), limit=None
    )
    assert {e.related_by_role("flow-run")[0].name for e in day_2} == {"nightly"}
    assert len(day_2) == 4
    assert store.events(since=timedelta(minutes=5)) == []


def test_events_limit_and_order(store: SQLEventStore) -> None:
    """limit keeps the first events in the order asked for; desc is newest first."""
    everything = store.events(limit=None)
    assert store.events(limit=3) == everything[:3]
    assert store.events(limit=3, order="desc") == everything[::-1][:3]


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"order": "newest"}, "order"),
        ({"limit": 0}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"since": datetime(2026, 1, 1)}, "since"),
        ({"until": "yesterday"}, "until"),
        ({"block": "S3 Bucket/raw"}, "block"),
        ({"block": "s3-bucket/"}, "block"),
        ({"name": ""}, "name"),
    ],
)
def test_events_rejects_bad_arguments(
    store: SQLEventStore, arguments: dict[str, object], named: str
) -> None:
    """A malformed argument is a ValueError that names it."""
    with pytest.raises(ValueError, match=named):
        store.events(**arguments)  # type: ignore[arg-type]


def test_runs_for_block_from_the_credentials_side(store: SQLEventStore) -> None:
    """The credentials' runs count their own calls and the bucket calls nesting them."""
    runs = store.runs_for_block("aws-credentials/prod")
    assert runs == [
        BlockRunSummary(
            flow_run_id="run-1",
            flow_run_name="nightly",
            first_used=T0,
            last_used=T0 + timedelta(seconds=1, milliseconds=60),
            calls=3,
            failures=0,
            last_error_type=None,
        ),
        BlockRunSummary(
            flow_run_id="run-2",
            flow_run_name="nightly",
            first_used=T0 + timedelta(days=1),
            last_used=T0 + timedelta(days=1, seconds=2, milliseconds=3),
            calls=2,
            failures=2,
            last_error_type="botocore.exceptions.ClientError",
        ),
        BlockRunSummary(
            flow_run_id=None,
            flow_run_name=None,
            first_used=T0 + timedelta(days=3),
            last_used=T0 + timedelta(days=3, milliseconds=2),
            calls=1,
            failures=0,
            last_error_type=None,
        ),
    ]
    assert [r.flow_run_id for r in store.runs_for_block("secret/nothing")] == []
    with pytest.raises(ValueError, match="block"):
        store.runs_for_block("no such thing")


def test_timeline_pairs_calls_in_start_order(store: SQLEventStore) -> None:
    """A run's timeline lists each call once, by start, with duration and outcome."""
    calls = store.timeline("run-1")
    assert [(c.block, c.method, c.outcome) for c in calls] == [
        ("s3-bucket/raw", "read_path", "succeeded"),
        ("aws-credentials/prod", "get_client", "succeeded"),
        ("s3-bucket/raw", "write_path", "succeeded"),
    ]
    assert [c.duration_ms for c in calls] == [40.0, 5.0, 60.0]
    assert calls[0].started == T0
    assert calls[1].caller == calls[0].event_id
    assert calls[0].caller is None
    assert store.timeline("flow-run.run-1") == calls
    failed = store.timeline("run-2")
    assert [(c.method, c.outcome, c.error_type) for c in failed] == [
        ("read_path", "failed", "NoSuchKey"),
        ("list_objects", "failed", "botocore.exceptions.ClientError"),
    ]
    assert failed[0].error_message == "NoSuchKey happened"
    assert store.timeline("no-such-run") == []
    with pytest.raises(ValueError, match="flow_run_id"):
        store.timeline("")


@pytest.mark.parametrize("run", ["run-1", "run-2", "flow-run.run-1", "no-such-run"])
def test_timeline_rows_are_the_timelines_calls_as_tuples(
    store: SQLEventStore, run: str
) -> None:
    """The tuples give the same calls in the same order, the start in microseconds."""
    rows = store.timeline_rows(run)
    calls = store.timeline(run)
    assert [CallRecord.from_row(row) for row in rows] == calls
    assert all(type(row) is tuple and len(row) == 12 for row in rows)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert [row[0] for row in rows] == [
        (c.started - epoch) // timedelta(microseconds=1) for c in calls
    ]
    with pytest.raises(ValueError, match="flow_run_id"):
        store.timeline_rows("")


def test_timeline_shows_running_calls_and_calls_missing_their_start(
    store_url: str,
) -> None:
    """A started call without outcome is running; an outcome alone still shows."""
    store = SQLEventStore(store_url)
    bucket = _bucket_resource()
    running = _call(bucket, "read_path", T0, 10.0, run=RUN_1)[0]
    orphan = _call(bucket, "write_path", T0 + timedelta(seconds=5), 250.0, run=RUN_1)
    store.emit_batch([running, orphan[1]])
    calls = store.timeline("run-1")
    assert [(c.method, c.outcome, c.duration_ms) for c in calls] == [
        ("read_path", "running", None),
        ("write_path", "succeeded", 250.0),
    ]
    assert calls[1].started == T0 + timedelta(seconds=5)
    assert calls[1].event_id == str(orphan[1].id)
    assert [CallRecord.from_row(r) for r in store.timeline_rows("run-1")] == calls


def test_prune_deletes_events_older_than_the_cutoff(store: SQLEventStore) -> None:
    """prune removes old events (and their links) and returns how many."""
    assert store.prune(T0 + timedelta(days=1)) == 6
    remaining = store.events(limit=None)
    assert len(remaining) == 8
    assert min(e.occurred for e in remaining) == T0 + timedelta(days=1)
    assert [r.flow_run_id for r in store.runs_for_block("aws-credentials/prod")] == [
        "run-2",
        None,
    ]
    assert store.prune(timedelta(days=1)) == 8
    assert store.events() == []
    with pytest.raises(ValueError, match="older_than"):
        store.prune(datetime(2026, 1, 1))


def test_pipeline_events_reach_the_store(store_url: str) -> None:
    """Events emitted through the pipeline are stored and found by their run."""
    store = SQLEventStore(store_url, name="pipeline-store")
    configure(emitters=[store])
    before = stats()["delivered"].get("pipeline-store", 0)
    with flow_run("etl") as run:
        for n in range(3):
            emit_event("job.step", {"id": "job.1"}, payload={"n": n})
    assert flush(10)
    assert stats()["delivered"]["pipeline-store"] - before == 3
    stored = store.events(flow_run=run.id)
    assert [e.payload["n"] for e in stored] == [0, 1, 2]


def test_a_bad_url_is_a_clear_error_without_the_password() -> None:
    """A malformed URL or a missing driver names the cause and masks the password."""
    password = secrets.token_hex(8)
    store = SQLEventStore(f"nosuchdb://user:{password}@localhost/x")
    with pytest.raises(ValueError, match="nosuchdb") as caught:
        store.events()
    assert password not in str(caught.value)
    assert "localhost" in str(caught.value)
    assert password not in repr(store)
    assert password not in store.display_url


def test_an_unusable_database_is_counted_not_raised(tmp_path: Path) -> None:
    """A store whose database cannot be opened fails its batches in stats() only."""
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    store = SQLEventStore(f"sqlite:///{not_a_folder / 'x.db'}", name="unusable")
    configure(emitters=[store])
    before = stats()["failed"].get("unusable", 0)
    emit_event("job.step", {"id": "job.1"})
    flush(10)
    assert stats()["failed"]["unusable"] - before == 1


WRITER = textwrap.dedent(
    """
    import json, sys
    from emitters import configure, flow_run, flush, stats
    from emitters.sql import SQLEventStore
    from blocks import Block

    class Pump(Block):
        def push(self, n: int) -> int:
            return n

    url, count, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    configure(emitters=[SQLEventStore(url)], batch_size=64)
    pump = Pump()
    with flow_run(tag) as run:
        for n in range(count):
            pump.push(n)
    ok = flush(120)
    print(json.dumps({"run": run.id, "flushed": ok, "stats": stats()}))
    """
)


def test_two_processes_write_one_sqlite_store_at_once(tmp_path: Path) -> None:
    """Two processes writing together store every event, and neither sees an error."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    count = 3000
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, str(count), f"writer-{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "locked" not in err.lower()
        assert err.strip() == ""
        results.append(json.loads(out))
    store = SQLEventStore(url)
    for result in results:
        counters = result["stats"]
        assert result["flushed"] is True
        assert counters["dropped"] == 0
        assert counters["failed"]["SQLEventStore"] == 0
        assert counters["delivered"]["SQLEventStore"] == 2 * count
        assert len(store.events(flow_run=result["run"], limit=None)) == 2 * count
    with sqlite3.connect(tmp_path / "shared.db") as db:
        (total,) = db.execute("select count(*) from eventblocks_events").fetchone()
    assert total == 4 * count


def test_reading_the_sqlite_store_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    """Queries read while another connection holds the write lock."""
    path = tmp_path / "busy.db"
    store = SQLEventStore(f"sqlite:///{path}")
    story = _story()
    store.emit_batch(story)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # holds the write lock until rolled back
    try:
        found: list[int] = []
        reader = threading.Thread(
            target=lambda: found.append(len(store.events(limit=None)))
        )
        reader.start()
        # A query that took the write lock would wait out the 30 s busy timeout.
        reader.join(10)
        assert not reader.is_alive()
        assert found == [len(story)]
    finally:
        writer.rollback()
        writer.close()


def _open_new_store(url: str, start: float) -> str:
    """Open the store at ``url`` (a new file) once ``start`` has passed."""
    from emitters._engine import engine_for

    while time.time() < start:
        pass
    try:
        with engine_for(url).connect() as conn:
            return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar_one())
    except Exception as exc:  # the parent reports what failed
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.slow
def test_processes_opening_a_new_sqlite_file_at_once_all_get_wal(
    tmp_path: Path,
) -> None:
    """Switching a new file to WAL ignores the busy timeout; every opener waits.

    Six processes open the same new file at the same instant, twenty times; the
    first connection of each switches the journal mode. Without a wait around the
    switch, one of them gets "database is locked" in a few of these rounds.
    """
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with context.Pool(6) as pool:
        for round_ in range(20):
            url = f"sqlite:///{tmp_path / f'new-{round_}.db'}"
            start = time.time() + 0.2
            answers = pool.starmap(_open_new_store, [(url, start)] * 6)
            assert answers == ["wal"] * 6, answers
