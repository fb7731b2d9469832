"""Relayed events: emit_event with a given id and time, related_runs and
observed_event_id, a relayed event stored once by the SQL store, and a run's first
failure among calls and infrastructure events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Literal
from uuid import UUID

import pytest

from emitters import (
    Event,
    MemoryEmitter,
    Resource,
    configure,
    emit_event,
    flow_run,
    flush,
    observed_event_id,
    related_runs,
)
from emitters._sdk import first_failure
from emitters.sql import CallRecord, SQLEventStore

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


def _infra(at: datetime, state: str) -> Event:
    return Event(
        id=observed_event_id("kubernetes.pod", "p-1", state),
        occurred=at,
        event=f"infra.kubernetes.pod.{state}",
        resource=Resource(id="kubernetes.pod.p-1", name="p-1"),
    )


def _record(at: datetime, outcome: Literal["succeeded", "failed"]) -> CallRecord:
    return CallRecord(
        event_id=f"call-{at.second}",
        block="s3-bucket/raw",
        method="read_path",
        started=at,
        duration_ms=5.0,
        outcome=outcome,
        error_type="NoSuchKey" if outcome == "failed" else None,
        error_message=None,
        caller=None,
    )


def test_first_failure_is_the_first_failed_call_unless_the_infra_failed_before() -> (
    None
):
    """A run's first failure: the infrastructure's when it occurred before the
    first failed call started (in any order given), else that call's."""
    t0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    calls = [
        _record(t0 + timedelta(seconds=1), "succeeded"),
        _record(t0 + timedelta(seconds=5), "failed"),
        _record(t0 + timedelta(seconds=6), "failed"),
    ]
    running = _infra(t0, "running")  # not a failure
    evicted = _infra(t0 + timedelta(seconds=3), "evicted")
    late = _infra(t0 + timedelta(seconds=9), "oom-killed")
    assert first_failure([], []) is None
    assert first_failure(calls[:1], [running]) is None
    assert first_failure(calls, [running, late]) == "call-5"
    assert first_failure(calls, [late, evicted, running]) == str(evicted.id)
    assert first_failure(calls[:1], [late]) == str(late.id)
    # At the very moment the call started, the call is the first.
    at_once = _infra(t0 + timedelta(seconds=5), "failed")
    assert first_failure(calls, [at_once]) == "call-5"
