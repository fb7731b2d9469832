"""The connectors' open results and the pool: a result gives its connection back
once read to the end, and partly read results are bounded, on PostgreSQL and
MariaDB (sync) and PostgreSQL through asyncpg.

Server URLs come from ``EVENTBLOCKS_TEST_POSTGRES_URL`` and
``EVENTBLOCKS_TEST_MYSQL_URL``; an unreachable server skips locally and fails
with ``CI=true``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from blocks.sql import (
    AsyncSqlAlchemyConnector,
    DatabaseCredentials,
    SqlAlchemyConnector,
    TooManyOpenResultsError,
)
from emitters.testing import capture_events

POSTGRES_URL = os.environ.get(
    "EVENTBLOCKS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get(
    "EVENTBLOCKS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
ROWS = 100


def unreachable(name: str, url: str, exc: Exception) -> None:
    """Skip (locally) or fail (CI) for a server that does not answer."""
    message = f"{name} at {make_url(url).render_as_string()} is unreachable: {exc!r}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: the service must run)")
    pytest.skip(message)


@pytest.fixture(params=["postgresql", "mariadb"])
def table(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A table ``(id int, label varchar)`` of ROWS rows; yields its URL and name."""
    url = POSTGRES_URL if request.param == "postgresql" else MYSQL_URL
    name = f"eb_pool_{secrets.token_hex(5)}"
    admin = sa.create_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(
                sa.text(f"CREATE TABLE {name} (id INTEGER, label VARCHAR(20))")
            )
            conn.execute(
                sa.text(f"INSERT INTO {name} (id, label) VALUES (:id, :label)"),
                [{"id": i, "label": f"row {i}"} for i in range(ROWS)],
            )
    except sa.exc.OperationalError as exc:
        admin.dispose()
        unreachable(request.param, url, exc)
    try:
        yield url, name
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        admin.dispose()


def connector_for(url: str, **fields: Any) -> SqlAlchemyConnector:
    """A connector on ``url`` whose pool waits 3 s, not 30, for a connection."""
    connector = SqlAlchemyConnector(credentials=DatabaseCredentials(url=url), **fields)
    connector.get_engine(pool_timeout=3)
    return connector


def test_a_loop_of_parameterised_fetch_all_holds_no_connection(
    table: tuple[str, str],
) -> None:
    """100 fetch_all calls with other parameters each, no reset_connections():
    every call succeeds and no connection stays checked out."""
    url, name = table
    with connector_for(url) as connector:
        engine = connector.get_engine()
        query = f"SELECT label FROM {name} WHERE id = :id"
        for i in range(100):
            rows = connector.fetch_all(query, {"id": i})
            assert [tuple(row) for row in rows] == [(f"row {i}",)]
            assert engine.pool.checkedout() == 0
        # Prefect's paging: a result read to the end stays read.
        assert connector.fetch_all(query, {"id": 3}) == []
        connector.reset_connections()
        assert len(connector.fetch_all(query, {"id": 3})) == 1


def test_fetch_many_and_fetch_one_release_at_the_end(table: tuple[str, str]) -> None:
    """A page shorter than asked, or fetch_one's None, gives the connection back."""
    url, name = table
    with connector_for(url) as connector:
        engine = connector.get_engine()
        query = f"SELECT id FROM {name} ORDER BY id"
        assert len(connector.fetch_many(query, size=ROWS)) == ROWS
        assert engine.pool.checkedout() == 1  # the end is not known yet
        assert connector.fetch_many(query, size=5) == []
        assert engine.pool.checkedout() == 0
        one = f"SELECT id FROM {name} WHERE id = :id"
        assert connector.fetch_one(one, {"id": 1}) == (1,)
        assert engine.pool.checkedout() == 1
        assert connector.fetch_one(one, {"id": 1}) is None
        assert engine.pool.checkedout() == 0


def test_too_many_partly_read_results_is_a_clear_error(
    table: tuple[str, str],
) -> None:
    """One more partly read result than max_open_results raises at once, naming
    the remedies, and takes no connection; reading one to the end makes room."""
    url, name = table
    with connector_for(url, max_open_results=3) as connector:
        engine = connector.get_engine()
        query = f"SELECT id FROM {name} WHERE id >= :low ORDER BY id"
        for low in range(3):
            assert connector.fetch_one(query, {"low": low}) == (low,)
        with (
            capture_events() as events,
            pytest.raises(TooManyOpenResultsError) as caught,
        ):
            connector.fetch_one(query, {"low": 10})
        message = str(caught.value)
        assert "reset_connections()" in message
        assert "max_open_results=3" in message
        assert engine.pool.checkedout() == 3
        failed = [e for e in events if e.event.endswith(".failed")]
        assert failed
        assert (
            failed[0].payload["error"]["type"] == "blocks.sql.TooManyOpenResultsError"
        )
        assert len(connector.fetch_all(query, {"low": 0})) == ROWS - 1
        assert connector.fetch_one(query, {"low": 10}) == (10,)
        connector.reset_connections()
        assert engine.pool.checkedout() == 0


@pytest.fixture
async def async_table() -> AsyncIterator[tuple[str, str]]:
    """The PostgreSQL table, for asyncpg."""
    url = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg")
    name = f"eb_pool_{secrets.token_hex(5)}"
    admin = create_async_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.execute(
                sa.text(f"CREATE TABLE {name} (id INTEGER, label VARCHAR(20))")
            )
            await conn.execute(
                sa.text(f"INSERT INTO {name} (id, label) VALUES (:id, :label)"),
                [{"id": i, "label": f"row {i}"} for i in range(ROWS)],
            )
    except (OSError, sa.exc.SQLAlchemyError) as exc:
        await admin.dispose()
        unreachable("PostgreSQL", str(url), exc)
    try:
        yield url.render_as_string(hide_password=False), name
    finally:
        async with admin.begin() as conn:
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        await admin.dispose()


async def test_async_loop_of_fetch_all_holds_no_connection(
    async_table: tuple[str, str],
) -> None:
    """The async connector: 100 parameterised fetch_all calls, no reset, succeed;
    partly read results are bounded the same way."""
    url, name = async_table
    connector = AsyncSqlAlchemyConnector(
        credentials=DatabaseCredentials(url=url), max_open_results=2
    )
    try:
        engine = await connector.get_engine(pool_timeout=3)
        query = f"SELECT label FROM {name} WHERE id = :id"
        for i in range(100):
            rows = await connector.fetch_all(query, {"id": i})
            assert [tuple(row) for row in rows] == [(f"row {i}",)]
            assert engine.pool.checkedout() == 0
        assert await connector.fetch_all(query, {"id": 3}) == []
        ordered = f"SELECT id FROM {name} WHERE id >= :low ORDER BY id"
        await connector.fetch_one(ordered, {"low": 0})
        await connector.fetch_one(ordered, {"low": 1})
        with pytest.raises(TooManyOpenResultsError, match="reset_connections"):
            await connector.fetch_one(ordered, {"low": 2})
        await connector.reset_connections()
        assert engine.pool.checkedout() == 0
    finally:
        await connector.close()
