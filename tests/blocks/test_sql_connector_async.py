"""AsyncSqlAlchemyConnector on aiosqlite and asyncpg.

The PostgreSQL URL comes from ``EVENTBLOCKS_TEST_POSTGRES_URL`` with its driver
switched to asyncpg; an unreachable server skips locally and fails with
``CI=true``. Tables get random names and are dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from blocks import BlockValidationError
from blocks.sql import AsyncDriver, AsyncSqlAlchemyConnector, DatabaseCredentials
from emitters import Event
from emitters.testing import capture_events

POSTGRES_URL = os.environ.get(
    "EVENTBLOCKS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
ASYNCPG_URL = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg")


async def reachable(url: sa.URL) -> None:
    """Skip (locally) or fail (CI) unless the server at ``url`` answers."""
    engine = create_async_engine(url)
    try:
        async with engine.connect():
            pass
    except Exception as exc:
        message = (
            f"PostgreSQL at {url.render_as_string()} is unreachable through asyncpg: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the service must run)")
        pytest.skip(message)
    finally:
        await engine.dispose()


@dataclass
class Database:
    """One async backend: its admin engine and a table made for the test."""

    backend: str
    credentials: DatabaseCredentials
    admin: AsyncEngine
    table: str

    async def count(self) -> int:
        """Rows in the test table, read on a connection of the test's own."""
        async with self.admin.connect() as conn:
            query = sa.text(f"SELECT COUNT(*) FROM {self.table}")
            return int((await conn.execute(query)).scalar_one())


@pytest.fixture(params=["aiosqlite", "asyncpg"])
async def database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Database]:
    """Async credentials for each backend and a fresh table ``(id varchar, n int)``."""
    if request.param == "aiosqlite":
        path = tmp_path / "test.db"
        credentials = DatabaseCredentials(
            driver=AsyncDriver.SQLITE_AIOSQLITE, database=str(path)
        )
        admin_url = make_url(f"sqlite+aiosqlite:///{path}")
    else:
        await reachable(ASYNCPG_URL)
        credentials = DatabaseCredentials(
            url=ASYNCPG_URL.render_as_string(hide_password=False)
        )
        admin_url = ASYNCPG_URL
    table = f"eb_sql_{secrets.token_hex(6)}"
    admin = create_async_engine(admin_url)
    async with admin.begin() as conn:
        await conn.execute(
            sa.text(f"CREATE TABLE {table} (id VARCHAR(64) PRIMARY KEY, n INTEGER)")
        )
    try:
        yield Database(request.param, credentials, admin, table)
    finally:
        await credentials.aclose()
        async with admin.begin() as conn:
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        await admin.dispose()


@pytest.fixture
async def connector(database: Database) -> AsyncIterator[AsyncSqlAlchemyConnector]:
    """An async connector on the backend's credentials, closed afterwards."""
    async with AsyncSqlAlchemyConnector(credentials=database.credentials) as db:
        yield db


def outcomes(events: list[Event]) -> list[Event]:
    """The outcome events (succeeded or failed), in order."""
    return [e for e in events if not e.event.endswith(".started")]


def nowhere(value: str, events: list[Event]) -> bool:
    """True if ``value`` appears in no event's JSON."""
    return all(value not in e.model_dump_json() for e in events)


async def fill(connector: AsyncSqlAlchemyConnector, table: str, count: int) -> None:
    """Insert rows ``r00``.. with ``n`` = their index."""
    await connector.execute_many(
        f"INSERT INTO {table} (id, n) VALUES (:id, :n)",
        [{"id": f"r{i:02d}", "n": i} for i in range(count)],
    )


async def test_execute_commits_and_records_the_call(
    connector: AsyncSqlAlchemyConnector, database: Database
) -> None:
    """await execute() commits; the event names the database and the verb."""
    with capture_events() as events:
        result = await connector.execute(
            f"INSERT INTO {database.table} (id, n) VALUES (:id, :n)",
            {"id": "a", "n": 1},
        )
    assert result.rowcount == 1
    assert await database.count() == 1
    assert [e.event for e in events] == [
        "block.async-sqlalchemy-connector.execute.started",
        "block.async-sqlalchemy-connector.execute.succeeded",
    ]
    payload = events[1].payload
    expected = "sqlite" if database.backend == "aiosqlite" else "postgresql"
    assert payload["db.system.name"] == expected
    assert payload["db.operation.name"] == "INSERT"
    assert payload["rows_affected"] == 1


async def test_execute_many_and_fetch_calls_page_through_one_result(
    connector: AsyncSqlAlchemyConnector, database: Database
) -> None:
    """execute_many inserts every set; fetch calls continue one result."""
    await fill(connector, database.table, 5)
    query = f"SELECT id, n FROM {database.table} ORDER BY id"
    with capture_events() as events:
        assert await connector.fetch_one(query) == ("r00", 0)
        assert await connector.fetch_many(query, size=2) == [("r01", 1), ("r02", 2)]
        assert await connector.fetch_all(query) == [("r03", 3), ("r04", 4)]
        assert await connector.fetch_many(query) == []
    returned = [e.payload["rows_returned"] for e in outcomes(events)]
    assert returned == [1, 2, 2, 0]
    await connector.reset_connections()
    assert await connector.fetch_one(query) == ("r00", 0)


async def test_get_connection_commits_and_closes(
    connector: AsyncSqlAlchemyConnector, database: Database
) -> None:
    """The default connection runs a transaction committed on a normal exit."""
    async with await connector.get_connection() as conn:
        await conn.execute(
            sa.text(f"INSERT INTO {database.table} (id, n) VALUES ('c', 1)")
        )
    assert await database.count() == 1
    assert conn.closed


async def test_get_connection_without_begin_is_closed_by_close(
    database: Database,
) -> None:
    """begin=False returns an open AsyncConnection; close() closes it."""
    connector = AsyncSqlAlchemyConnector(credentials=database.credentials)
    conn = await connector.get_connection(begin=False)
    assert isinstance(conn, AsyncConnection)
    assert (await conn.execute(sa.text("SELECT 1"))).scalar_one() == 1
    await connector.fetch_one(f"SELECT id FROM {database.table}")
    await connector.close()
    assert conn.closed
    assert len(connector._open) == 0


async def test_close_leaves_no_connection_open(database: Database) -> None:
    """close() returns every DBAPI connection the engine opened."""
    connector = AsyncSqlAlchemyConnector(credentials=database.credentials)
    engine = await connector.get_engine()
    opened: list[Any] = []
    closed: list[Any] = []
    sa.event.listen(engine.sync_engine, "connect", lambda *a: opened.append(a))
    sa.event.listen(engine.sync_engine.pool, "close", lambda *a: closed.append(a))
    await fill(connector, database.table, 2)
    await connector.fetch_one(f"SELECT id FROM {database.table}")
    await connector.get_connection(begin=False)
    await connector.close()
    assert len(opened) >= 2
    assert len(closed) == len(opened)


async def test_a_unique_violation_keeps_the_key_out_of_messages_and_events(
    connector: AsyncSqlAlchemyConnector, database: Database
) -> None:
    """The duplicate key is in no message, chained or not, and in no event."""
    key = f"key-{secrets.token_hex(8)}"
    insert = f"INSERT INTO {database.table} (id, n) VALUES (:id, :n)"
    await connector.execute(insert, {"id": key, "n": 1})
    with capture_events() as events, pytest.raises(sa.exc.IntegrityError) as caught:
        await connector.execute(insert, {"id": key, "n": 2})
    link: BaseException | None = caught.value
    while link is not None:
        assert key not in str(link)
        link = link.__cause__ or link.__context__
    failed = outcomes(events)[0]
    assert failed.payload["error"]["type"] == "sqlalchemy.exc.IntegrityError"
    if database.backend == "asyncpg":
        assert (
            failed.payload["dbapi_error"] == "asyncpg.exceptions.UniqueViolationError"
        )
        assert failed.payload["db.response.status_code"] == "23505"
    else:
        assert failed.payload["dbapi_error"] == "sqlite3.IntegrityError"
    assert nowhere(key, events)


async def test_a_value_the_driver_cannot_send_is_masked(
    connector: AsyncSqlAlchemyConnector, database: Database
) -> None:
    """A bound value echoed by the driver's own error is masked."""
    value = f"v-{secrets.token_hex(8)}"
    with capture_events() as events, pytest.raises(sa.exc.SQLAlchemyError) as caught:
        await connector.fetch_one(
            f"SELECT id FROM {database.table} WHERE n = :n", {"n": [value]}
        )
    assert value not in str(caught.value)
    assert nowhere(value, events)
    assert len(connector._open) == 0


def test_an_async_engine_belongs_to_its_event_loop(tmp_path: Path) -> None:
    """A second event loop gets an engine of its own; the first is not reused."""
    credentials = DatabaseCredentials(
        driver="sqlite+aiosqlite", database=str(tmp_path / "x.db")
    )
    connector = AsyncSqlAlchemyConnector(credentials=credentials)

    async def engine_of_this_loop() -> tuple[AsyncEngine, AsyncEngine]:
        return await connector.get_engine(), await connector.get_engine()

    first, again = asyncio.run(engine_of_this_loop())
    second, _ = asyncio.run(engine_of_this_loop())
    assert first is again
    assert second is not first


def test_the_async_connector_refuses_a_sync_driver(tmp_path: Path) -> None:
    """A sync driver needs SqlAlchemyConnector; the error says so."""
    credentials = DatabaseCredentials(driver="sqlite", database=str(tmp_path / "x"))
    with pytest.raises(BlockValidationError, match="use SqlAlchemyConnector"):
        AsyncSqlAlchemyConnector(credentials=credentials)
