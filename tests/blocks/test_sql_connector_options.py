"""Engine options, get_client, create_url and hashing of the SQL blocks, on
PostgreSQL and MariaDB (sync) and PostgreSQL through asyncpg.

Server URLs come from ``EVENTBLOCKS_TEST_POSTGRES_URL`` and
``EVENTBLOCKS_TEST_MYSQL_URL``; an unreachable server skips locally and fails
with ``CI=true``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url

from blocks import BlockValidationError
from blocks.sql import (
    AsyncSqlAlchemyConnector,
    DatabaseCredentials,
    SqlAlchemyConnector,
)
from emitters.testing import capture_events

POSTGRES_URL = os.environ.get(
    "EVENTBLOCKS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get(
    "EVENTBLOCKS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def reachable(url: str) -> str:
    """Return ``url`` if its server answers; skip (locally) or fail (CI)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect():
            return url
    except Exception as exc:
        message = f"{make_url(url).render_as_string()} is unreachable: {exc!r}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the service must run)")
        pytest.skip(message)
    finally:
        engine.dispose()


@pytest.fixture(params=["postgresql", "mariadb"])
def server(request: pytest.FixtureRequest) -> str:
    """The URL of each server under test."""
    return reachable(POSTGRES_URL if request.param == "postgresql" else MYSQL_URL)


@pytest.fixture
def connector(server: str) -> Iterator[SqlAlchemyConnector]:
    """A connector on the server, closed afterwards."""
    with SqlAlchemyConnector(credentials=DatabaseCredentials(url=server)) as db:
        yield db


def test_engine_options_shape_the_pool(connector: SqlAlchemyConnector) -> None:
    """pool_size, max_overflow, pool_pre_ping and echo reach create_engine; the
    event names the options, not their values."""
    with capture_events() as events:
        engine = connector.get_engine(
            pool_size=2, max_overflow=0, pool_pre_ping=True, echo=False, pool_timeout=1
        )
    assert engine.pool.size() == 2
    assert engine.pool._pre_ping is True
    assert connector.get_engine() is engine
    assert connector.fetch_all("SELECT 1") == [(1,)]
    outcome = next(e for e in events if e.event.endswith("get_engine.succeeded"))
    assert outcome.payload["engine_options"] == [
        "echo",
        "max_overflow",
        "pool_pre_ping",
        "pool_size",
        "pool_timeout",
    ]
    # Two partly read results fill the pool of two; the third waits one second.
    query = "SELECT 1 UNION ALL SELECT 2"
    connector.fetch_one(query, {"a": 1})
    connector.fetch_one(query, {"a": 2})
    with pytest.raises(sa.exc.TimeoutError):
        connector.fetch_one(query, {"a": 3})
    connector.reset_connections()


def test_other_options_need_a_close_first(connector: SqlAlchemyConnector) -> None:
    """Other options for a made engine are refused until close(); forbidden and
    unknown options are errors that leave the block usable."""
    engine = connector.get_engine(pool_size=3)
    with pytest.raises(ValueError, match=r"close\(\)"):
        connector.get_engine(pool_size=4)
    assert connector.get_engine(pool_size=3) is engine
    connector.close()
    assert connector.get_engine(pool_size=4).pool.size() == 4
    with pytest.raises(ValueError, match="hide_parameters"):
        connector.credentials.get_engine(hide_parameters=False)
    connector.close()
    with pytest.raises(TypeError, match="no_such_option"):
        connector.get_engine(no_such_option=1)
    assert connector.get_engine().pool.size() == 4  # the options kept before
    assert connector.fetch_all("SELECT 2") == [(2,)]


def test_get_client_engine_and_connection(connector: SqlAlchemyConnector) -> None:
    """get_client("engine") is the engine, get_client("connection") a connection;
    the events name the client type."""
    with capture_events() as events:
        assert connector.get_client("engine") is connector.get_engine()
        connection = connector.get_client("connection", begin=False)
    kinds = [
        e.payload.get("client_type")
        for e in events
        if e.event.endswith("get_client.succeeded")
    ]
    assert kinds == ["engine", "connection"]
    try:
        assert isinstance(connection, Connection)
        assert connection.execute(sa.text("SELECT 3")).scalar_one() == 3
    finally:
        connection.close()
    with connector.get_client(client_type="connection") as conn:
        assert conn.execute(sa.text("SELECT 4")).scalar_one() == 4
    with pytest.raises(ValueError, match="'engine' or 'connection'"):
        connector.get_client("cursor")  # type: ignore[arg-type]


def test_create_url_and_hashing(server: str) -> None:
    """create_url() is the URL (password masked in its repr, absent from events);
    equal credentials are equal and hash alike."""
    password = f"pw-{secrets.token_hex(8)}"
    parsed = make_url(server)
    fields = {
        "driver": parsed.drivername,
        "username": parsed.username,
        "password": password,
        "host": parsed.host,
        "port": parsed.port,
        "database": parsed.database,
    }
    credentials = DatabaseCredentials(**fields)
    with capture_events() as events:
        url = credentials.create_url()
    assert url.password == password
    assert password not in repr(url)
    assert url.render_as_string(hide_password=False) == parsed.set(
        password=password
    ).render_as_string(hide_password=False)
    assert events
    assert all(password not in e.model_dump_json() for e in events)
    assert events[-1].payload["db.namespace"] == parsed.database
    twin = DatabaseCredentials(**fields)
    other = DatabaseCredentials(**{**fields, "password": password + "x"})
    twin.get_engine().dispose()  # private state differs; equality does not
    assert credentials == twin
    assert hash(credentials) == hash(twin)
    assert credentials != other
    assert len({credentials, twin, other}) == 2
    twin.close()


async def test_async_engine_options_and_get_client() -> None:
    """The async connector takes the same engine options and get_client."""
    url = make_url(reachable(POSTGRES_URL)).set(drivername="postgresql+asyncpg")
    connector = AsyncSqlAlchemyConnector(
        credentials=DatabaseCredentials(url=url.render_as_string(hide_password=False))
    )
    try:
        engine = await connector.get_engine(pool_size=2, pool_pre_ping=True)
        assert engine.pool.size() == 2
        assert await connector.get_client("engine") is engine
        connection = await connector.get_client("connection", begin=False)
        try:
            assert (await connection.execute(sa.text("SELECT 5"))).scalar_one() == 5
        finally:
            await connection.close()
    finally:
        await connector.close()


def test_prefect_connection_info_spelling(server: str) -> None:
    """connection_info (a URL or its parts) and connect_args build the
    credentials, as prefect-sqlalchemy takes them; with credentials, an error."""
    with SqlAlchemyConnector(connection_info=server) as by_url:
        assert by_url.credentials == DatabaseCredentials(url=server)
        assert by_url.fetch_all("SELECT 6") == [(6,)]
    parsed = make_url(server)
    parts = {
        "driver": parsed.drivername,
        "username": parsed.username,
        "host": parsed.host,
        "port": parsed.port,
        "database": parsed.database,
    }
    with SqlAlchemyConnector(
        connection_info=parts, connect_args={"connect_timeout": 5}
    ) as by_parts:
        assert by_parts.credentials.connect_args == {"connect_timeout": 5}
        assert by_parts.fetch_all("SELECT 7") == [(7,)]
    with pytest.raises(BlockValidationError, match="not both"):
        SqlAlchemyConnector(
            credentials=DatabaseCredentials(url=server), connection_info=server
        )
    with pytest.raises(BlockValidationError, match="connect_args goes in"):
        SqlAlchemyConnector(
            connection_info=DatabaseCredentials(url=server), connect_args={"a": 1}
        )


async def test_async_reset_async_connections() -> None:
    """Prefect's reset_async_connections() closes the open results."""
    url = make_url(reachable(POSTGRES_URL)).set(drivername="postgresql+asyncpg")
    connector = AsyncSqlAlchemyConnector(
        connection_info=url.render_as_string(hide_password=False)
    )
    try:
        query = "SELECT 1 UNION ALL SELECT 2"
        assert await connector.fetch_one(query) == (1,)
        engine = await connector.get_engine()
        assert engine.pool.checkedout() == 1
        await connector.reset_async_connections()
        assert engine.pool.checkedout() == 0
        assert await connector.fetch_one(query) == (1,)
    finally:
        await connector.close()
