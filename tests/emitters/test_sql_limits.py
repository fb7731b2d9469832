"""The event store's limits: what the event model refuses at the door, an event the
database refuses anyway costing only itself, and tables of an earlier version
brought up to date.

Database-specific cases run on SQLite, PostgreSQL and MariaDB (``store_url``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from blocks import Block
from emitters import (
    Emitter,
    Event,
    MemoryEmitter,
    PartialDelivery,
    Resource,
    configure,
    emit_event,
    flow_run,
    flush,
    stats,
)
from emitters._ids import uuid7_from_ns
from emitters.sql import SQLEventStore
from emitters.sql._tables import upgrade_event_tables


def _event(resource_id: str, **payload: object) -> Event:
    return Event(
        id=uuid7_from_ns(time.time_ns()),
        occurred=datetime.now(UTC),
        event="limits.checked",
        resource=Resource(id=resource_id),
        payload=dict(payload),
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: emit_event("e" * 256, {"id": "r"}),
            "event: String should have at most 255",
        ),
        (lambda: emit_event("e\x00", {"id": "r"}), "event name must not contain NUL"),
        (
            lambda: emit_event("e", {"id": "r" * 256}),
            "id: String should have at most 255",
        ),
        (lambda: emit_event("e", {"id": "r", "name": "n" * 256}), "name: String"),
        (lambda: emit_event("e", {"id": "inbox\x00"}), "id: .*must not contain NUL"),
        (
            lambda: emit_event(
                "e", {"id": "r"}, related=[{"id": "x", "role": "r" * 65}]
            ),
            r"related\[0\]: role: String should have at most 64",
        ),
        (lambda: flow_run("etl", id="f" * 247), "flow-run id is 247 characters long"),
        (lambda: flow_run("n" * 256), "flow-run name is 256 characters long"),
        (lambda: flow_run("etl", id="run\x00"), "flow-run id contains a NUL"),
    ],
)
def test_text_no_store_can_hold_is_refused_naming_the_field(
    call: object, message: str
) -> None:
    """Over-long names and ids, and NUL in them, are refused naming the field."""
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_the_longest_run_id_allowed_is_stored(tmp_path: Path) -> None:
    """A run id of 246 characters (its resource id of 255) reaches the store."""
    store = SQLEventStore(f"sqlite:///{tmp_path}/runs.db")
    configure(emitters=[store])
    run_id = "r" * 246
    with flow_run("etl", id=run_id):
        emit_event("limits.checked", {"id": "r"})
    assert flush(10)
    assert [e.event for e in store.events(flow_run=run_id)] == ["limits.checked"]


def test_a_run_id_too_long_in_the_environment_is_ignored_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An over-long EVENTBLOCKS_FLOW_RUN_ID tags nothing and says why."""
    monkeypatch.setenv("EVENTBLOCKS_FLOW_RUN_ID", "e" * 300)
    event = emit_event("limits.checked", {"id": "r"})
    assert event.related_by_role("flow-run") == []
    assert "300 characters long" in caplog.text


def test_an_undecodable_run_id_too_long_once_escaped_is_ignored(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The length limit counts escapes, so no event is lost to an escaped run id."""
    monkeypatch.setenv("EVENTBLOCKS_FLOW_RUN_ID", "r" * 244 + "\udce9")  # 248 escaped
    sink = MemoryEmitter()
    configure(emitters=[sink])
    Limited().check()
    assert flush(10)
    assert [e.related_by_role("flow-run") for e in sink.events] == [[], []]
    assert "248 characters long" in caplog.text
    with pytest.raises(ValueError, match="248 characters long"):
        flow_run("etl", id="r" * 244 + "\udce9")


class Limited(Block):
    """A block with one call."""

    def check(self) -> int:
        """Return a number."""
        return 1


class Unbuildable(Limited):
    """A block that cannot describe itself: its events cannot be built."""

    def __eventblocks_source__(self) -> Any:
        raise RuntimeError("no description")


def test_an_event_that_cannot_be_built_is_counted_and_costs_only_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Events the dispatcher cannot build are dropped and counted; others deliver."""
    sink = MemoryEmitter(name="built")
    configure(emitters=[sink])
    before = stats()
    Limited().check()
    Unbuildable().check()
    Limited().check()
    assert flush(10) is False  # two events were lost
    after = stats()
    assert len(sink.events) == 4
    assert after["build_errors"] - before["build_errors"] == 2
    assert after["dropped"] - before["dropped"] == 2
    assert after["delivered"]["built"] == 4
    assert after["emitted"] - before["emitted"] == 6
    assert "could not build an event (1 so far), dropped: RuntimeError" in caplog.text


_CHECKED_EVENTS = """CREATE TABLE eventblocks_events (
    id VARCHAR(32) PRIMARY KEY, occurred_us BIGINT NOT NULL,
    event VARCHAR(255) NOT NULL,
    resource_id VARCHAR(255) NOT NULL CHECK (length(resource_id) <= 255),
    resource_name VARCHAR(255), block_type VARCHAR(128), flow_run_id VARCHAR(255),
    flow_run_name VARCHAR(255), follows VARCHAR(32), resource_labels TEXT NOT NULL,
    related TEXT NOT NULL, payload TEXT NOT NULL)"""


def _checked_store(tmp_path: Path, cls: type[SQLEventStore] = SQLEventStore) -> Any:
    """A SQLite store whose table refuses resource ids over 255 characters."""
    url = f"sqlite:///{tmp_path / 'checked.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(_CHECKED_EVENTS)
    engine.dispose()
    return cls(url)


def _odd_batch() -> tuple[list[Event], Event]:
    good = [_event("clock", i=i) for i in range(4)]
    odd = Event.model_construct(
        **{
            **_event("x").model_dump(),
            "resource": Resource.model_construct(id="r" * 300),
        }
    )
    return [*good[:2], odd, *good[2:]], odd


def test_a_refused_event_on_sqlite_costs_only_itself(tmp_path: Path) -> None:
    """A CHECK the event breaks: the others of its batch are stored one by one."""
    store = _checked_store(tmp_path)
    batch, odd = _odd_batch()
    with pytest.raises(PartialDelivery, match="refused 1 of 5 events") as caught:
        store.emit_batch(batch)
    assert caught.value.delivered == 4
    assert [e.id for e in store.events(limit=None)] == [
        e.id for e in batch if e is not odd
    ]


class _LosesItsDatabase(SQLEventStore):
    """A store whose database goes away at its ``fail_at``-th write."""

    fail_at = 4

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.writes = 0

    def _write(self, rows: list[Any], *rest: Any) -> None:
        self.writes += 1
        if self.writes == self.fail_at:
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        super()._write(rows, *rest)


def test_losing_the_database_one_by_one_counts_what_was_stored(tmp_path: Path) -> None:
    """The database going away mid-way: what was stored is reported as delivered."""
    store = _checked_store(tmp_path, _LosesItsDatabase)
    batch, _ = _odd_batch()
    # Write 1 is the whole batch (refused), 2 and 3 store an event each, 4 fails.
    with pytest.raises(PartialDelivery, match="stored 2 of 5") as caught:
        store.emit_batch(batch)
    assert caught.value.delivered == 2
    assert isinstance(caught.value.__cause__, OperationalError)
    assert len(store.events(limit=None)) == 2


def test_losing_the_database_before_any_event_raises_its_error(tmp_path: Path) -> None:
    """Nothing stored one by one: the database's own error is raised."""
    store = _checked_store(tmp_path, _LosesItsDatabase)
    store.fail_at = 2
    with pytest.raises(OperationalError):
        store.emit_batch(_odd_batch()[0])
    assert store.events(limit=None) == []


def test_an_event_the_database_refuses_costs_only_itself(store_url: str) -> None:
    """An event the database cannot hold fails alone; its batch is stored."""
    store = SQLEventStore(store_url)
    good = [_event("clock", i=i) for i in range(4)]
    # Built without validation, as a sink may receive from a producer that skipped it.
    odd = Event.model_construct(
        **{
            **_event("x").model_dump(),
            "resource": Resource.model_construct(id="r" * 300),
        }
    )
    batch = [*good[:2], odd, *good[2:]]
    backend = sa.make_url(store_url).get_backend_name()
    if backend == "sqlite":  # SQLite enforces no length: everything is stored
        store.emit_batch(batch)
        assert len(store.events(limit=None)) == 5
        return
    with pytest.raises(PartialDelivery, match="refused 1 of 5 events") as caught:
        store.emit_batch(batch)
    assert caught.value.delivered == 4
    assert [e.id for e in store.events(limit=None)] == [e.id for e in good]


def test_a_partial_delivery_is_counted_as_such_in_stats() -> None:
    """A sink that reports a partial delivery is counted for what it delivered."""

    class HalfSink(Emitter):
        def emit_batch(self, events: Sequence[Event]) -> None:
            raise PartialDelivery(len(events) // 2, "the other half was refused")

    configure(emitters=[HalfSink()], batch_size=10)
    for i in range(10):
        emit_event("limits.checked", {"id": "r"}, payload={"i": i})
    flush(10)
    counts = stats()
    assert counts["delivered"]["HalfSink"] == 5
    assert counts["failed"]["HalfSink"] == 5


_OLD_EVENTS = """CREATE TABLE eventblocks_events (
    id VARCHAR(32) PRIMARY KEY, occurred_us BIGINT NOT NULL,
    event VARCHAR(255) NOT NULL, resource_id VARCHAR(255) NOT NULL,
    resource_name VARCHAR(255), block_type VARCHAR(128), flow_run_id VARCHAR(64),
    flow_run_name VARCHAR(255), follows VARCHAR(32), resource_labels TEXT NOT NULL,
    related TEXT NOT NULL, payload TEXT NOT NULL){options}"""
_OLD_LINKS = """CREATE TABLE eventblocks_event_links (
    event_id VARCHAR(32), resource_id VARCHAR(255), role VARCHAR(64),
    name VARCHAR(255), block_type VARCHAR(128),
    PRIMARY KEY (event_id, resource_id, role)){options}"""


def test_tables_of_an_earlier_version_are_brought_up_to_date(store_url: str) -> None:
    """Old tables take long run ids, big payloads and exact names once opened."""
    backend = sa.make_url(store_url).get_backend_name()
    options = " CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
    options = options if backend in ("mysql", "mariadb") else ""
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(_OLD_EVENTS.format(options=options))
        conn.exec_driver_sql(_OLD_LINKS.format(options=options))
    engine.dispose()
    store = SQLEventStore(store_url)
    run_id = str(uuid.uuid4()) * 5  # 180 characters
    events = [
        _event("inbox", rows=["x" * 70] * 1000),  # 73 kB of JSON
        _event("Inbox"),
        _event("inbox"),
    ]
    configure(emitters=[store])
    with flow_run("etl", id=run_id):
        emit_event("limits.checked", {"id": "r"})
    assert flush(10)
    store.emit_batch(events)
    assert [e.event for e in store.events(flow_run=run_id)] == ["limits.checked"]
    assert store.events(resource_id="inbox", limit=None) == [events[0], events[2]]
    assert store.events(resource_id="Inbox", limit=None) == [events[1]]
    # Upgrading tables already up to date changes nothing.
    with store.engine.begin() as conn:
        upgrade_event_tables(conn)
    assert len(store.events(limit=None)) == 4
