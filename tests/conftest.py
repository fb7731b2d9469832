"""Shared fixtures.

Every test starts with a fresh pipeline that has no sinks, and with its own
eventblocks home (so no test reads or writes the user's ``~/.eventblocks``).

``store_url`` runs a test on SQLite, PostgreSQL and MariaDB. The server URLs come
from ``EVENTBLOCKS_TEST_POSTGRES_URL`` and ``EVENTBLOCKS_TEST_MYSQL_URL`` (defaults:
the local servers of DESIGN.md section 8). An unreachable server skips its tests
locally; with ``CI=true`` it fails them, so CI cannot pass without the services.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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
