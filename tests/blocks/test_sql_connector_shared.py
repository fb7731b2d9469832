"""Equal credentials blocks share one engine, on SQLite, PostgreSQL and MariaDB
(sync) and on SQLite and PostgreSQL through asyncio drivers.

The servers are this run's databases (the ``postgres_url`` and ``mysql_url``
fixtures): an unreachable server skips locally and fails with ``CI=true``.
"""

from __future__ import annotations

import gc
import os
import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from blocks import DocumentStore
from blocks.sql import (
    AsyncSqlAlchemyConnector,
    DatabaseCredentials,
    SqlAlchemyConnector,
)
from emitters import flush
from emitters.testing import capture_events

# The server's id of the connection a statement runs on.
CONNECTION_ID = {
    "postgresql": "SELECT pg_backend_pid()",
    "mariadb": "SELECT CONNECTION_ID()",
}


@pytest.fixture(params=["postgresql", "mariadb"])
def server(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Each server under test: its backend name and URL."""
    backend: str = request.param
    fixture = "postgres_url" if backend == "postgresql" else "mysql_url"
    return backend, request.getfixturevalue(fixture)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Each backend under test: its name and URL (SQLite: a file of the test's)."""
    name: str = request.param
    if name == "sqlite":
        return name, f"sqlite:///{tmp_path / 'data.db'}"
    fixture = "postgres_url" if name == "postgresql" else "mysql_url"
    return name, request.getfixturevalue(fixture)


def test_a_loaded_and_a_built_block_share_one_engine(
    backend: tuple[str, str], tmp_path: Path
) -> None:
    """Credentials loaded from a document and equal ones built in code share an
    engine; closing one keeps the other working; the last close disposes it; each
    connector's events name its own credentials."""
    fields = {"url": backend[1]}
    store = DocumentStore(f"sqlite:///{tmp_path}/docs.db")
    saved = DatabaseCredentials(**fields)
    saved.save("shared", store=store)
    loaded = SqlAlchemyConnector(
        credentials=DatabaseCredentials.load("shared", store=store)
    )
    built = SqlAlchemyConnector(credentials=DatabaseCredentials(**fields))
    try:
        assert loaded.credentials == built.credentials
        engine = loaded.get_engine()
        assert built.get_engine() is engine
        with capture_events() as from_loaded:
            assert loaded.fetch_all("SELECT 1") == [(1,)]
        with capture_events() as from_built:
            assert built.fetch_all("SELECT 2") == [(2,)]
        assert from_loaded
        assert from_built
        for event in from_loaded:
            [nested] = event.related_by_role("nested-block")
            assert nested.id == f"block-document.{saved.document_id}"
        for event in from_built:
            assert event.related_by_role("nested-block") == []
        pool = engine.pool
        loaded.close()
        assert built.fetch_all("SELECT 3") == [(3,)]
        assert built.get_engine() is engine
        assert engine.pool is pool  # the other holder's pool was left alone
        assert pool.checkedin() == 1
        built.close()
        assert engine.pool is not pool  # disposed by the last holder
        assert pool.checkedin() == 0
        assert built.get_engine() is not engine  # a new one after the last close
    finally:
        loaded.close()
        built.close()


def test_distinct_credentials_get_distinct_engines(
    backend: tuple[str, str], tmp_path: Path
) -> None:
    """Credentials that differ in any field, a driver argument included, get an
    engine of their own, and so does a copy with a field changed."""
    name, url = backend
    fields = {"url": url}
    first = DatabaseCredentials(**fields)
    timeout = {"timeout": 5} if name == "sqlite" else {"connect_timeout": 5}
    second = DatabaseCredentials(**fields, connect_args=timeout)
    third = DatabaseCredentials(**fields, connect_args=timeout)
    if name == "sqlite":
        moved = f"sqlite:///{tmp_path / 'other.db'}"
    else:
        moved = make_url(url).set(port=1).render_as_string(hide_password=False)
    changed = first.model_copy(update={"url": SecretStr(moved)})
    try:
        engine = first.get_engine()
        assert second.get_engine() is not engine
        assert third.get_engine() is second.get_engine()
        assert changed.get_engine() is not engine
        assert changed.get_engine().url == make_url(moved)
    finally:
        first.close()
        second.close()
        third.close()
        changed.close()


def test_other_options_for_a_shared_engine_are_refused(tmp_path: Path) -> None:
    """An equal block asking a shared engine for other options gets the clear
    ValueError, the same options share it, and no options take it as it is."""
    fields = {"url": f"sqlite:///{tmp_path / 'data.db'}"}
    first = DatabaseCredentials(**fields)
    second = DatabaseCredentials(**fields)
    try:
        engine = first.get_engine(pool_size=3)
        with pytest.raises(ValueError, match=r"every equal credentials block"):
            second.get_engine(pool_size=4)
        assert second.get_engine(pool_size=3) is engine
        assert second.get_engine() is engine
        first.close()
        with pytest.raises(ValueError, match=r"close\(\)"):
            first.get_engine(echo=False)  # second still holds it
        second.close()
        assert first.get_engine(pool_size=4).pool.size() == 4
    finally:
        first.close()
        second.close()


def test_a_collected_holder_lets_go_of_the_engine(tmp_path: Path) -> None:
    """A block dropped without close() no longer holds its engine, so equal
    credentials may make one with other options."""
    fields = {"url": f"sqlite:///{tmp_path / 'data.db'}"}
    DatabaseCredentials(**fields).get_engine(pool_size=2)
    flush()  # the call's records hold the block until they are delivered
    gc.collect()
    credentials = DatabaseCredentials(**fields)
    try:
        assert credentials.get_engine(pool_size=4).pool.size() == 4
    finally:
        credentials.close()


def test_no_secret_in_the_shared_engine_repr(server: tuple[str, str]) -> None:
    """What holds the shared engine shows neither the password nor the URL."""
    password = f"pw-{secrets.token_hex(8)}"
    url = make_url(server[1]).set(password=password)
    credentials = DatabaseCredentials(url=url.render_as_string(hide_password=False))
    try:
        credentials.get_engine()
        held = repr(credentials._engines)
        assert "SharedEngine(key=" in held
        assert password not in held
        assert password not in repr(credentials)
    finally:
        credentials.close()


def test_a_forked_child_opens_its_own_connections(server: tuple[str, str]) -> None:
    """A child forked while the shared pool holds a connection opens its own
    connection instead of reusing the parent's, and the parent's stays usable."""
    backend, url = server
    query = CONNECTION_ID[backend]
    connector = SqlAlchemyConnector(credentials=DatabaseCredentials(url=url))
    twin = SqlAlchemyConnector(credentials=DatabaseCredentials(url=url))
    try:
        [(parent_connection,)] = connector.fetch_all(query)
        assert connector.get_engine().pool.checkedin() == 1
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report its connection's id, or -1
            code = 0
            try:
                [(child_connection,)] = twin.fetch_all(query)
                os.write(write, str(child_connection).encode())
            except BaseException:
                os.write(write, b"-1")
                code = 1
            finally:
                os._exit(code)
        os.close(write)
        with os.fdopen(read) as reader:
            reported = int(reader.read())
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert reported not in (-1, parent_connection)
        connector.reset_connections()  # the same statement pages on otherwise
        assert connector.fetch_all(query) == [(parent_connection,)]
    finally:
        connector.close()
        twin.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_async_connectors_share_the_loop_engine(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Equal async credentials share one engine on a loop; closing one keeps the
    other working; the last close disposes it."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/async.db"
    else:
        parsed = make_url(request.getfixturevalue("postgres_url"))
        url = parsed.set(drivername="postgresql+asyncpg").render_as_string(
            hide_password=False
        )
    first = AsyncSqlAlchemyConnector(credentials=DatabaseCredentials(url=url))
    second = AsyncSqlAlchemyConnector(credentials=DatabaseCredentials(url=url))
    try:
        engine = await first.get_engine()
        assert await second.get_engine() is engine
        assert await first.fetch_all("SELECT 1") == [(1,)]
        pool = engine.pool
        await first.close()
        assert await second.fetch_all("SELECT 2") == [(2,)]
        assert engine.pool is pool
        await second.close()
        assert engine.pool is not pool
        assert pool.checkedin() == 0
    finally:
        await first.close()
        await second.close()
