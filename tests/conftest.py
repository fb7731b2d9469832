"""Shared fixtures.

Every test starts with a fresh pipeline that has no sinks, and with its own
eventblocks home (so no test reads or writes the user's ``~/.eventblocks``).

``store_url`` runs a test on SQLite, PostgreSQL and MariaDB. The server URLs come
from ``EVENTBLOCKS_TEST_POSTGRES_URL`` and ``EVENTBLOCKS_TEST_MYSQL_URL`` (defaults:
the local servers of DESIGN.md section 8). An unreachable server skips its tests
locally; with ``CI=true`` it fails them, so CI cannot pass without the services.

``prefect_server`` starts one real ``prefect server start`` on 127.0.0.1 for the
whole run, with a temporary ``PREFECT_HOME``; without Prefect, or when it cannot
start, its tests skip locally and fail with ``CI=true``.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
import sqlalchemy as sa

from emitters import configure

POSTGRES_URL = os.environ.get(
    "EVENTBLOCKS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get(
    "EVENTBLOCKS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


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
    """The test PostgreSQL server's URL, its eventblocks tables dropped first."""
    return _server_url(POSTGRES_URL, "PostgreSQL")


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for the document and event stores, once per backend, emptied
    first."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    if request.param == "postgresql":
        return _server_url(POSTGRES_URL, "PostgreSQL")
    return _server_url(MYSQL_URL, "MariaDB")


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
