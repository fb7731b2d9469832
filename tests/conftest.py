"""Shared fixtures, and a database of this run's own on each test server.

Every test starts with a fresh pipeline that has no sinks, and with its own
eventblocks home (so no test reads or writes the user's ``~/.eventblocks``).

``store_url`` runs a test on SQLite, PostgreSQL and MariaDB. The servers are named
by ``EVENTBLOCKS_TEST_POSTGRES_URL`` and ``EVENTBLOCKS_TEST_MYSQL_URL`` (defaults:
``postgresql+psycopg://postgres@127.0.0.1:5432/test`` and
``mysql+pymysql://root@127.0.0.1:3306/test``), as an account that may create
databases. At the start of the run, :func:`pytest_configure` creates a database of
the run's own on each server that answers (``eventblocks_test_<pid>_<random>``)
and points the variable at it, so every test module, fixture and subprocess of
this run uses it; it is dropped when the run ends. Two runs on one machine
therefore never drop each other's tables. A run that is killed leaves its
database behind, named with its process id.

``nats_url`` is the NATS JetStream server of ``EVENTBLOCKS_TEST_NATS_URL``
(default ``nats://127.0.0.1:4222``); tests give each stream a unique name and
delete it.

An unreachable server skips its tests locally; with ``CI=true`` it fails them, so
CI cannot pass without the services. A server that answers but refuses to create
the database stops the run with the reason.

``prefect_server`` starts one real ``prefect server start`` on 127.0.0.1 for the
whole run, with a temporary ``PREFECT_HOME``; without Prefect, or when it cannot
start, its tests skip locally and fail with ``CI=true``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa

from emitters import configure

SERVERS = {
    "EVENTBLOCKS_TEST_POSTGRES_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "EVENTBLOCKS_TEST_MYSQL_URL": "mysql+pymysql://root@127.0.0.1:3306/test",
}
IN_CI = os.environ.get("CI", "").lower() == "true"
# The databases this run created: the variable's name -> (the server's URL, the
# run's database, the variable's value before the run or None).
_created: dict[str, tuple[str, str, str | None]] = {}


def _admin_engine(url: str) -> sa.Engine:
    """An autocommit engine on ``url`` (CREATE and DROP DATABASE need one)."""
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


def _create_run_database(variable: str, server: str, given: str | None) -> None:
    """Create this run's database on ``server`` and point ``variable`` at it."""
    engine = _admin_engine(server)
    try:
        try:
            connection = engine.connect()
        except Exception:  # unreachable: its tests skip, or fail with CI=true
            return
        name = f"eventblocks_test_{os.getpid()}_{secrets.token_hex(4)}"
        with connection:
            try:
                connection.execute(sa.text(f"CREATE DATABASE {name}"))
            except Exception as exc:
                shown = sa.make_url(server).render_as_string(hide_password=True)
                raise pytest.UsageError(
                    f"{variable}: {shown} answers but did not create the test "
                    f"database {name}: {type(exc).__name__}: "
                    f"{str(exc).splitlines()[0]}. The tests need an account that "
                    "may create databases."
                ) from None
    finally:
        engine.dispose()
    _created[variable] = (server, name, given)
    run_url = sa.make_url(server).set(database=name)
    os.environ[variable] = run_url.render_as_string(hide_password=False)


def _drop_run_database(server: str, name: str) -> None:
    """Drop this run's database, ending the connections still open on it."""
    engine = _admin_engine(server)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                return
            ids = conn.execute(
                sa.text(
                    "SELECT id FROM information_schema.processlist "
                    "WHERE db = :name AND id <> CONNECTION_ID()"
                ),
                {"name": name},
            ).scalars()
            for connection_id in list(ids):
                with contextlib.suppress(sa.exc.DBAPIError):  # ended meanwhile
                    conn.execute(sa.text(f"KILL {int(connection_id)}"))
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    finally:
        engine.dispose()


def pytest_configure(config: pytest.Config) -> None:
    """Give this run a database of its own on each test server that answers."""
    for variable, default in SERVERS.items():
        given = os.environ.get(variable)
        # Set even when the server is out of reach, so that every reader of the
        # variable names the same server.
        os.environ[variable] = given or default
        _create_run_database(variable, given or default, given)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Drop the databases this run created, and set the variables back."""
    while _created:
        variable, (server, name, given) = _created.popitem()
        if given is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = given
        _drop_run_database(server, name)


@pytest.fixture(autouse=True)
def fresh_pipeline() -> Iterator[None]:
    """Give each test a pipeline of its own, with no sinks and default options."""
    configure(emitters=[])
    yield
    configure(emitters=[])


@pytest.fixture(autouse=True)
def eventblocks_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point EVENTBLOCKS_HOME at a fresh folder and clear the other settings."""
    home = tmp_path / "eventblocks-home"
    monkeypatch.setenv("EVENTBLOCKS_HOME", str(home))
    for name in ("EVENTBLOCKS_DATABASE_URL", "EVENTBLOCKS_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    return home


def _reset_database(url: str) -> None:
    """Drop eventblocks' tables so a test starts from an empty database."""
    from blocks._documents import store as _store
    from emitters.sql import _store as sql
    from emitters.sql import _tables as _event_tables

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            _store.metadata.drop_all(conn)
            _event_tables.metadata.drop_all(conn)
    finally:
        engine.dispose()
    _store._ready.discard(url)
    sql._ready.discard(url)


def _server_url(url: str, name: str) -> str:
    try:
        _reset_database(url)
    except Exception as exc:  # unreachable, refused, driver missing
        message = f"{name} at {url} is unreachable: {type(exc).__name__}: {exc}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the service must run)")
        pytest.skip(message)
    return url


@pytest.fixture
def postgres_url() -> str:
    """This run's PostgreSQL database's URL, its eventblocks tables dropped first."""
    return _server_url(os.environ["EVENTBLOCKS_TEST_POSTGRES_URL"], "PostgreSQL")


@pytest.fixture
def mysql_url() -> str:
    """This run's MariaDB database's URL, its eventblocks tables dropped first."""
    return _server_url(os.environ["EVENTBLOCKS_TEST_MYSQL_URL"], "MariaDB")


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for the document and event stores, once per backend, emptied
    first."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return request.getfixturevalue("mysql_url")


# -- Prefect ------------------------------------------------------------------


@dataclass(frozen=True)
class PrefectServer:
    """A real ``prefect server start`` on 127.0.0.1, with its own PREFECT_HOME.

    Attributes:
        api_url: The server's API, as ``PREFECT_API_URL`` takes it.
        home: The temporary PREFECT_HOME.
    """

    api_url: str
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        """Return an environment for a process that uses this server.

        It is this process's environment without eventblocks, Prefect or Airflow
        settings, plus the server's and ``extra``.
        """
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("EVENTBLOCKS_", "PREFECT_", "AIRFLOW_CTX_"))
        }
        env.update(
            PREFECT_API_URL=self.api_url,
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_LEVEL="WARNING",
        )
        env.update(extra)
        return env


def _prefect_unavailable(message: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{message} (CI=true: Prefect must run)")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """Start one real Prefect server for the whole test run (it takes seconds)."""
    if importlib.util.find_spec("prefect") is None:
        _prefect_unavailable(
            "Prefect is not installed: pip install 'eventblocks[prefect]'"
        )
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    server = PrefectServer(f"http://127.0.0.1:{port}/api", home)
    log_path = home / "server.log"
    env = server.env(PREFECT_SERVER_UI_ENABLED="false")
    del env["PREFECT_API_URL"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "prefect", "server", "start"),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                _prefect_unavailable(f"prefect server start exited:\n{tail}")
            try:
                if httpx.get(f"{server.api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                _prefect_unavailable(f"prefect server did not answer in 120 s:\n{tail}")
            time.sleep(0.5)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The NATS JetStream server's URL, once it answers on its port."""
    url = os.environ.get("EVENTBLOCKS_TEST_NATS_URL", "nats://127.0.0.1:4222")
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 4222), 2):
            pass
    except OSError as exc:
        message = f"NATS at {url} is unreachable: {type(exc).__name__}: {exc}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the service must run)")
        pytest.skip(message)
    return url
