"""Relayed events: emit_event with a given id and time, related_runs and
observed_event_id, and a relayed event stored once by the SQL store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest

from emitters import (
    MemoryEmitter,
    configure,
    emit_event,
    flow_run,
    flush,
    observed_event_id,
    related_runs,
)
from emitters.sql import SQLEventStore

WHEN = datetime(2026, 3, 1, 12, 0, 5, tzinfo=timezone(timedelta(hours=2)))


def test_given_id_and_time_are_kept_and_context_left_out() -> None:
    """id and occurred are the given ones (in UTC); context=False relates only
    what was given, even inside a flow run."""
    sink = MemoryEmitter()
    configure(emitters=[sink])
    eid = observed_event_id("test", "a")
    with flow_run("observer"):
        event = emit_event(
            "infra.test.changed",
            {"id": "thing.1"},
            related=related_runs({"eventblocks.io/flow-run-id": "r1"}),
            id=str(eid),
            occurred=WHEN,
            context=False,
        )
    assert flush()
    assert event.id == eid
    assert event.occurred == WHEN.astimezone(UTC)
    assert [r.id for r in event.related] == ["flow-run.r1"]
    assert sink.events == [event]


def test_bad_id_and_time_are_refused_naming_the_field() -> None:
    """A malformed id, a naive time or a wrong type names the argument."""
    with pytest.raises(ValueError, match="id must be an event id"):
        emit_event("x.y", {"id": "a"}, id="not-a-uuid")
    with pytest.raises(TypeError, match="id must be a UUID"):
        emit_event("x.y", {"id": "a"}, id=12)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="occurred must be timezone-aware"):
        emit_event("x.y", {"id": "a"}, occurred=datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="occurred must be a datetime"):
        emit_event("x.y", {"id": "a"}, occurred="2026-01-01")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="source"):
        observed_event_id("")


def test_related_runs_reads_eventblocks_then_prefect_labels() -> None:
    """eventblocks' labels win over Prefect's; the task run and source are kept;
    a value that cannot be a run id is ignored."""
    both = related_runs(
        {
            "eventblocks.io/flow-run-id": "f1",
            "eventblocks.io/flow-run-name": "nightly",
            "eventblocks.io/task-run-id": "t1",
            "prefect.io/flow-run-id": "p1",
        }
    )
    assert [(r.id, r.role, r.name, r.labels) for r in both] == [
        ("flow-run.f1", "flow-run", "nightly", {"source": "eventblocks"}),
        ("task-run.t1", "task-run", "t1", {"source": "eventblocks"}),
    ]
    [prefect] = related_runs(
        {"prefect.io/flow-run-id": "p1", "prefect.io/flow-run-name": "brave-fox"}
    )
    assert (prefect.id, prefect.name, prefect.labels) == (
        "flow-run.p1",
        "brave-fox",
        {"source": "prefect"},
    )
    assert related_runs({"eventblocks.io/flow-run-id": "x" * 1000}) == ()
    assert related_runs({"app": "etl"}) == ()


def test_relayed_twice_is_stored_once_and_found_by_flow_run(store_url: str) -> None:
    """The same relayed event emitted twice is one row, found by its flow run, on
    SQLite, PostgreSQL and MariaDB."""
    store = SQLEventStore(store_url)
    configure(emitters=[store])
    for _ in range(2):
        emit_event(
            "infra.test.stopped",
            {"id": "thing.1"},
            related=related_runs({"prefect.io/flow-run-id": "run-9"}),
            id=observed_event_id("test", "stop-1"),
            occurred=WHEN,
            context=False,
        )
        assert flush()
    [event] = store.events(flow_run="run-9")
    assert event.id == UUID(str(observed_event_id("test", "stop-1")))
    assert event.occurred == WHEN
