"""Run summaries in the SQL event store: kept as events are written, found by name,
short id or prefix, and built for stores of an earlier version (three backends)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from blocks import Block
from emitters import (
    Event,
    RelatedResource,
    Resource,
    configure,
    flow_run,
    flush,
    observed_event_id,
    related_runs,
)
from emitters._ids import uuid7_from_ns
from emitters.sql import RunFailure, RunSummary, SQLEventStore
from emitters.sql._runs import rebuild_summaries
from emitters.sql._tables import RowEncoder

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DOC = uuid.UUID("00000000-0000-4000-8000-0000000b0c4e")
CREDS = uuid.UUID("00000000-0000-4000-8000-00000000c0de")
# Two UUIDv7 run ids of the same minute: they share their first characters.
RUN_A = str(uuid7_from_ns(int(T0.timestamp() * 1e9)))
RUN_B = str(uuid7_from_ns(int((T0 + timedelta(seconds=30)).timestamp() * 1e9)))
RUN_P = "3f2b8c1e-9d4a-4c55-8e21-7a6b5c4d3e2f"  # a Prefect flow run id (UUIDv4)


def _ev(
    at: datetime,
    name: str,
    run: RelatedResource | None,
    *,
    task: RelatedResource | None = None,
    payload: dict[str, Any] | None = None,
    follows: uuid.UUID | None = None,
    resource: Resource | None = None,
    nested: bool = False,
) -> Event:
    related = [r for r in (run, task) if r is not None]
    if nested:
        related.append(
            RelatedResource(
                id=f"block-document.{CREDS}",
                role="nested-block",
                name="prod",
                labels={"block-type": "aws-credentials"},
            )
        )
    return Event(
        id=uuid7_from_ns(int(at.timestamp() * 1e9)),
        occurred=at,
        event=name,
        resource=resource
        or Resource(
            id=f"block-document.{DOC}", name="raw", labels={"block-type": "s3-bucket"}
        ),
        related=tuple(related),
        payload=payload or {},
        follows=follows,
    )


def _call(
    at: datetime,
    method: str,
    run: RelatedResource | None,
    error: str | None = None,
    **kw: Any,
) -> list[Event]:
    started = _ev(at, f"block.s3-bucket.{method}.started", run, **kw)
    payload: dict[str, Any] = {"duration_ms": 10.0}
    if error:
        payload["error"] = {"type": error, "message": "boom"}
    end = at + timedelta(milliseconds=10)
    phase = "failed" if error else "succeeded"
    outcome = _ev(
        end,
        f"block.s3-bucket.{method}.{phase}",
        run,
        payload=payload,
        follows=started.id,
        **kw,
    )
    return [started, outcome]


def _run(run_id: str, name: str, **labels: str) -> RelatedResource:
    return RelatedResource(
        id=f"flow-run.{run_id}", role="flow-run", name=name, labels=labels
    )


A = _run(RUN_A, "nightly-etl", team="data")
B = _run(RUN_B, "nightly-etl", team="data")
P = _run(RUN_P, "orders-flow", source="prefect", deployment="orders/prod")
TASK = RelatedResource(id="task-run.t-1", role="task-run", name="extract")


def _events() -> list[Event]:
    events = []
    events += _call(T0, "read_path", A, nested=True)
    events += _call(T0 + timedelta(seconds=1), "write_path", A, task=TASK)
    events += _call(T0 + timedelta(seconds=30), "read_path", B, error="NoSuchKey")
    events += _call(
        T0 + timedelta(seconds=31), "list_objects", B, error="builtins.KeyError"
    )
    events += _call(T0 + timedelta(seconds=32), "read_path", B)
    events += _call(T0 + timedelta(minutes=5), "read_path", P, nested=True)
    events += _call(T0 + timedelta(minutes=6), "read_path", None)
    return events


EVENTS = _events()


@pytest.fixture
def store(store_url: str) -> SQLEventStore:
    """A store holding the three runs, written in two batches."""
    store = SQLEventStore(store_url)
    store.emit_batch(EVENTS[:5])
    store.emit_batch(EVENTS[5:])
    return store


def test_run_summaries_hold_each_runs_counts_and_first_failure(
    store: SQLEventStore,
) -> None:
    """runs() lists the latest first, with counts, labels, source, first failure."""
    runs = store.runs()
    assert [r.id for r in runs] == [RUN_P, RUN_B, RUN_A]
    p, b, a = runs
    assert isinstance(b, RunSummary)
    assert (a.name, a.source, a.labels) == (
        "nightly-etl",
        "eventblocks",
        {"team": "data"},
    )
    assert (a.calls, a.failures, a.first_failure) == (2, 0, None)
    assert a.started == T0
    assert a.last_event == T0 + timedelta(seconds=1, milliseconds=10)
    assert a.duration == timedelta(seconds=1, milliseconds=10)
    assert a.short_id == uuid.UUID(RUN_A).hex[-8:]
    assert (b.calls, b.failures) == (3, 2)
    assert b.first_failure == RunFailure(
        block="s3-bucket/raw",
        method="read_path",
        error_type="NoSuchKey",
        occurred=T0 + timedelta(seconds=30, milliseconds=10),
    )
    assert (b.events_lost, b.infrastructure_events) == (0, 0)
    assert (p.source, p.labels) == ("prefect", {"deployment": "orders/prod"})
    assert store.run(RUN_B) == b
    assert store.run("flow-run." + RUN_B) == b
    assert store.run("no-such-run") is None


def test_an_event_stored_twice_counts_once(store: SQLEventStore) -> None:
    """Replaying batches, or a batch holding an event twice, changes no count."""
    before = store.runs()
    store.emit_batch(EVENTS)
    store.emit_batch(EVENTS[4:6] + EVENTS[4:6])
    assert store.runs() == before
    blocks = store.runs_for_block("s3-bucket/raw")
    store.emit_batch(EVENTS[:3])
    assert store.runs_for_block("s3-bucket/raw") == blocks
    # A new event of a known run is merged into its summary.
    late = _call(T0 + timedelta(seconds=5), "read_path", A, error="Late")
    store.emit_batch(late + late)
    a = store.run(RUN_A)
    assert a is not None
    assert (a.calls, a.failures) == (3, 1)
    assert a.first_failure is not None
    assert a.first_failure.error_type == "Late"
    assert a.last_event == T0 + timedelta(seconds=5, milliseconds=10)


def test_runs_filters(store: SQLEventStore) -> None:
    """name glob, failed, since, source and limit each narrow the list."""
    assert [r.id for r in store.runs(name="nightly-*")] == [RUN_B, RUN_A]
    assert [r.id for r in store.runs(name="orders?flow")] == [RUN_P]
    assert [r.id for r in store.runs(failed=True)] == [RUN_B]
    assert [r.id for r in store.runs(failed=False)] == [RUN_P, RUN_A]
    assert [r.id for r in store.runs(source="prefect")] == [RUN_P]
    assert [r.id for r in store.runs(since=T0 + timedelta(seconds=10))] == [
        RUN_P,
        RUN_B,
    ]
    assert [r.id for r in store.runs(limit=1)] == [RUN_P]
    with pytest.raises(ValueError, match="limit"):
        store.runs(limit=0)
    with pytest.raises(ValueError, match="since"):
        store.runs(since=datetime(2026, 1, 1))  # naive


def test_find_run_by_each_form(store: SQLEventStore) -> None:
    """Full id, short id, unique prefix and name each find the run."""
    b = store.run(RUN_B)
    assert b is not None
    assert store.find_run(RUN_B) == b
    assert store.find_run(b.short_id) == b
    assert store.find_run(b.short_id.upper()) == b
    assert store.find_run(RUN_P[:6]).id == RUN_P
    assert store.find_run("nightly-etl") == b  # the latest of that name
    assert store.find_run("orders-flow").id == RUN_P


def test_find_run_errors_name_what_was_tried_and_the_candidates(
    store: SQLEventStore,
) -> None:
    """An ambiguous prefix lists the runs; no match lists the forms tried."""
    shared = RUN_A[:8]
    assert RUN_B.startswith(shared)
    with pytest.raises(LookupError, match="ambiguous") as ambiguous:
        store.find_run(shared)
    assert RUN_A in str(ambiguous.value)
    assert RUN_B in str(ambiguous.value)
    with pytest.raises(LookupError) as missing:
        store.find_run("nightly-elt")
    message = str(missing.value)
    assert "tried: full id, short id, id prefix, run name" in message
    assert "Did you mean 'nightly-etl'" in message
    with pytest.raises(LookupError, match="needs 6 characters"):
        store.find_run("3f2b")


def test_block_queries_read_the_summaries_and_indexes(store: SQLEventStore) -> None:
    """runs_for_block and events(block=...) agree with the events themselves."""
    runs = store.runs_for_block("s3-bucket/raw")
    assert [(r.flow_run_id, r.calls, r.failures) for r in runs] == [
        (RUN_A, 2, 0),
        (RUN_B, 3, 2),
        (RUN_P, 1, 0),
        (None, 1, 0),
    ]
    assert runs[1].last_error_type == "builtins.KeyError"
    creds = store.runs_for_block("aws-credentials/prod")
    assert [(r.flow_run_id, r.calls) for r in creds] == [(RUN_A, 1), (RUN_P, 1)]
    assert [r.flow_run_id for r in store.runs_for_block("aws-credentials")] == [
        RUN_A,
        RUN_P,
    ]
    latest = store.events(block="aws-credentials/prod", limit=3, order="desc")
    assert [e.id for e in latest] == [EVENTS[11].id, EVENTS[10].id, EVENTS[1].id]
    all_of_it = store.events(block="s3-bucket/raw", limit=None)
    assert [e.id for e in all_of_it] == [e.id for e in EVENTS]
    failed = store.events(block="s3-bucket", failed=True, limit=1)
    assert [e.id for e in failed] == [EVENTS[5].id]


def test_timeline_names_the_task_run_of_each_call(store: SQLEventStore) -> None:
    """A call made in a task run carries its id and name in the timeline."""
    calls = store.timeline(RUN_A)
    assert [(c.method, c.task_run_id, c.task_run_name) for c in calls] == [
        ("read_path", None, None),
        ("write_path", "t-1", "extract"),
    ]


def test_prune_drops_the_summaries_of_runs_it_emptied(store: SQLEventStore) -> None:
    """A run whose events are all pruned leaves the list; the others stay."""
    store.prune(T0 + timedelta(minutes=1))
    assert [r.id for r in store.runs()] == [RUN_P]
    assert [r.flow_run_id for r in store.runs_for_block("s3-bucket/raw")] == [
        RUN_P,
        None,
    ]


_OLD_EVENTS = """CREATE TABLE eventblocks_events (
    id VARCHAR(32) PRIMARY KEY, occurred_us BIGINT NOT NULL,
    event VARCHAR(255) NOT NULL, resource_id VARCHAR(255) NOT NULL,
    resource_name VARCHAR(255), block_type VARCHAR(128), flow_run_id VARCHAR(255),
    flow_run_name VARCHAR(255), follows VARCHAR(32), resource_labels {json} NOT NULL,
    related {json} NOT NULL, payload {json} NOT NULL){options}"""
_OLD_LINKS = """CREATE TABLE eventblocks_event_links (
    event_id VARCHAR(32), resource_id VARCHAR(255), role VARCHAR(64),
    name VARCHAR(255), block_type VARCHAR(128),
    PRIMARY KEY (event_id, resource_id, role)){options}"""
_OLD_INDEX = "CREATE INDEX ix_eventblocks_events_block ON eventblocks_events "
_OLD_LINK_INDEX = "CREATE INDEX ix_eventblocks_event_links_block ON "


def test_a_store_of_the_previous_version_gets_its_summaries(store_url: str) -> None:
    """Old tables with events: opening the store builds what new writes would."""
    backend = sa.make_url(store_url).get_backend_name()
    mysql_like = backend in ("mysql", "mariadb")
    options = " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" if mysql_like else ""
    json_type = "LONGTEXT" if mysql_like else "TEXT"
    rows, link_rows, _, parts = RowEncoder().rows(EVENTS)
    assert parts == []
    assert {row[12] for row in rows} == {None}
    rows = [row[:12] for row in rows]  # the previous version had no parts
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(_OLD_EVENTS.format(json=json_type, options=options))
        conn.exec_driver_sql(_OLD_LINKS.format(options=options))
        conn.exec_driver_sql(_OLD_INDEX + "(block_type, resource_name)")
        conn.exec_driver_sql(
            _OLD_LINK_INDEX + "eventblocks_event_links (block_type, name)"
        )
        conn.execute(
            sa.text(
                "INSERT INTO eventblocks_events VALUES (:a, :b, :c, :d, :e, :f, :g, "
                ":h, :i, :j, :k, :l)"
            ),
            [dict(zip("abcdefghijkl", row, strict=True)) for row in rows],
        )
        conn.execute(
            sa.text("INSERT INTO eventblocks_event_links VALUES (:a, :b, :c, :d, :e)"),
            [dict(zip("abcde", link[:5], strict=True)) for link in link_rows],
        )
    engine.dispose()
    upgraded = SQLEventStore(store_url)
    summaries = upgraded.runs()
    assert [r.id for r in summaries] == [RUN_P, RUN_B, RUN_A]
    b = summaries[1]
    assert (b.calls, b.failures, b.labels, b.source) == (
        3,
        2,
        {"team": "data"},
        "eventblocks",
    )
    assert b.first_failure is not None
    assert b.first_failure.error_type == "NoSuchKey"
    assert summaries[0].source == "prefect"
    creds = upgraded.runs_for_block("aws-credentials/prod")
    assert [(r.flow_run_id, r.calls) for r in creds] == [(RUN_A, 1), (RUN_P, 1)]
    latest = upgraded.events(block="aws-credentials/prod", limit=1, order="desc")
    assert [e.id for e in latest] == [EVENTS[11].id]
    with upgraded.engine.connect() as conn:
        indexes = {
            ix["name"] for ix in sa.inspect(conn).get_indexes("eventblocks_events")
        }
    assert "ix_eventblocks_events_block_time" in indexes
    assert "ix_eventblocks_events_block" not in indexes
    # Writing again on the upgraded store still counts each event once.
    upgraded.emit_batch(EVENTS)
    assert upgraded.runs() == summaries
    # Calls written now share their parts; old and new rows read side by side.
    configure(emitters=[upgraded])
    with flow_run("after-upgrade", labels={"team": "data"}) as run:
        for amount in (1, 2):
            PartsTally().add(amount)
    assert flush(10)
    new = upgraded.events(flow_run=run.id, limit=None)
    assert len(new) == 4
    assert all(e.related_by_role("flow-run")[0].labels["team"] == "data" for e in new)
    assert [c.outcome for c in upgraded.timeline(run.id)] == ["succeeded"] * 2
    assert upgraded.events(resource_id=EVENTS[0].resource.id, limit=1) == [EVENTS[0]]
    with upgraded.engine.connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT count(*) FROM eventblocks_event_parts")
            ).scalar()
            == 1
        )


class PartsTally(Block):
    """A block whose calls share their parts."""

    def add(self, amount: int) -> int:
        return amount


# A pod observer's event of run RUN_P: its labels carry the run's id, not its name.
_POD = Resource(
    id="kubernetes.pod.0c4e", name="orders-flow-abc12", labels={"namespace": "etl"}
)


def _pod_event(at: datetime, phase: str) -> Event:
    return Event(
        id=observed_event_id("kubernetes.pod", "0c4e", phase),
        occurred=at,
        event=f"infra.kubernetes.pod.{phase}",
        resource=_POD,
        related=related_runs({"prefect.io/flow-run-id": RUN_P}),
        payload={"phase": phase},
    )


@pytest.mark.parametrize("together", [False, True], ids=["batches", "one-batch"])
def test_a_runs_real_name_replaces_the_id_an_observer_gave_it(
    store_url: str, together: bool
) -> None:
    """An infrastructure event stored first names the run by its id; the calls'
    name replaces it, in one batch or in later ones, and no id replaces it back."""
    pod = _pod_event(T0 + timedelta(minutes=4), "pending")
    assert pod.related[0].name == RUN_P  # what the observer knows
    calls = _call(T0 + timedelta(minutes=5), "read_path", P)
    later = _pod_event(T0 + timedelta(minutes=7), "succeeded")
    store = SQLEventStore(store_url)
    if together:
        store.emit_batch([pod, *calls, later])
    else:
        store.emit_batch([pod])
        first = store.run(RUN_P)
        assert first is not None
        assert first.name == RUN_P  # all the store knows so far
        store.emit_batch(calls)
        store.emit_batch([later])
    p = store.run(RUN_P)
    assert p is not None
    assert (p.name, p.source, p.labels) == (
        "orders-flow",
        "prefect",
        {"deployment": "orders/prod"},
    )
    assert (p.calls, p.infrastructure_events) == (1, 2)
    assert store.find_run("orders-flow") == p
    # The block's own runs name it too.
    assert [r.flow_run_name for r in store.runs_for_block("s3-bucket/raw")] == [
        "orders-flow"
    ]
    # Built again from the stored events (whatever their order), it is the same.
    with store.engine.begin() as conn:
        rebuild_summaries(conn, page=1)
    assert store.run(RUN_P) == p


def test_a_run_without_a_real_name_keeps_its_id_and_a_missing_name_gives_way(
    store_url: str,
) -> None:
    """A run that only ever has its id as name keeps it; a run stored without a
    name takes the first real one."""
    store = SQLEventStore(store_url)
    unnamed = _run(RUN_A, RUN_A)
    store.emit_batch([_pod_event(T0, "pending"), *_call(T0, "read_path", unnamed)])
    store.emit_batch(_call(T0 + timedelta(seconds=1), "read_path", unnamed))
    a = store.run(RUN_A)
    assert a is not None
    assert a.name == RUN_A
    nameless = RelatedResource(id=f"flow-run.{RUN_B}", role="flow-run", name=None)
    store.emit_batch(_call(T0 + timedelta(seconds=30), "read_path", nameless))
    b = store.run(RUN_B)
    assert b is not None
    assert b.name is None
    store.emit_batch(_call(T0 + timedelta(seconds=31), "read_path", B))
    store.emit_batch(_call(T0 + timedelta(seconds=32), "read_path", nameless))
    b = store.run(RUN_B)
    assert b is not None
    assert (b.name, b.labels) == ("nightly-etl", {"team": "data"})


def test_prune_takes_a_runs_parts_with_its_summary(store_url: str) -> None:
    """A run pruned whole takes its shared parts along; a run still there keeps
    them, and its events read whole."""
    store = SQLEventStore(store_url)
    configure(emitters=[store])
    with flow_run("pruned-run") as old:
        PartsTally().add(1)
    assert flush(10)
    cutoff = datetime.now(UTC)
    with flow_run("kept-run", labels={"team": "ops"}) as kept:
        PartsTally().add(2)
    assert flush(10)

    def parts() -> list[str | None]:
        with store.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.text("SELECT flow_run_id FROM eventblocks_event_parts")
                ).scalars()
            )

    assert sorted(p or "" for p in parts()) == sorted([old.id, kept.id])
    assert store.prune(cutoff) == 2
    assert parts() == [kept.id]
    assert store.run(old.id) is None
    events = store.events(flow_run=kept.id, limit=None)
    assert len(events) == 2
    assert events[0].related_by_role("flow-run")[0].labels == {
        "team": "ops",
        "source": "eventblocks",
    }
