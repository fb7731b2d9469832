"""Creating the engine for a database URL: drivers, SQLite settings, one per URL.

SQLite runs in WAL mode (``synchronous = NORMAL``) with a busy timeout, and every
transaction starts with ``BEGIN IMMEDIATE``, so several processes can write at
once without "database is locked" errors or lost updates. MySQL and MariaDB run
at READ COMMITTED. A URL without a driver gets the one eventblocks installs
(psycopg 3, PyMySQL); a missing driver is an error that names the extra to install.

Both stores use it: the block documents (``blocks``) and the event store
(:mod:`emitters.sql`), so one process keeps one engine per URL.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import (
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
)

from emitters._secret_names import is_secret_name

__all__ = [
    "CONNECT_TIMEOUT_S",
    "READ_ONLY",
    "STATEMENT_TIMEOUT_S",
    "DatabaseURLError",
    "engine_for",
    "mask_url",
    "max_statement_bytes",
    "prepare",
]

CONNECT_TIMEOUT_S = 10
"""Seconds to wait for a PostgreSQL or MySQL/MariaDB server to accept a session.

A ``connect_timeout`` in the URL's query wins."""

STATEMENT_TIMEOUT_S = 60
"""Seconds one statement may take: PostgreSQL's ``statement_timeout`` (enforced
by the server), MySQL/MariaDB's ``read_timeout`` and ``write_timeout`` (enforced
by the client, so a server that stops answering is given up too). Settings of the
same name in the URL's query win."""


_QUERY_MASK = "***"


class DatabaseURLError(ValueError):
    """A database URL cannot be used: it is malformed or its driver is missing."""


def mask_url(url: str | URL) -> str:
    """Return ``url`` with every password in it shown as ``***``, for messages.

    The user-info password and the values of query options whose names carry
    secrets (``?password=...``, which psycopg reads, ``sslpassword``, ``token``)
    are masked. This is the one way the SDK shows a database URL.
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
        query = {
            name: _QUERY_MASK if is_secret_name(name) else value
            for name, value in parsed.query.items()
        }
        text = parsed.set(query=query).render_as_string(hide_password=True)
        return text.replace("=%2A%2A%2A", f"={_QUERY_MASK}")
    except Exception:
        return "<an unreadable database URL>"


_DRIVER_EXTRAS = {
    "postgresql": ("postgresql+psycopg", "postgres"),
    "mysql": ("mysql+pymysql", "mysql"),
    "mariadb": ("mariadb+pymysql", "mysql"),
}


def _create_engine(url: str, read_only: bool) -> Engine:
    try:
        parsed = make_url(url)
    except Exception:
        raise DatabaseURLError(
            f"{mask_url(url)!s} is not a valid SQLAlchemy database URL; set "
            "EVENTBLOCKS_DATABASE_URL to something like "
            "postgresql+psycopg://user@host/db or sqlite:///path/to/file.db."
        ) from None
    backend = parsed.get_backend_name()
    if parsed.drivername in _DRIVER_EXTRAS:
        parsed = parsed.set(drivername=_DRIVER_EXTRAS[parsed.drivername][0])
    extra = _DRIVER_EXTRAS.get(backend, (None, None))[1]
    try:
        if backend == "sqlite":
            if read_only:
                return _sqlite_reader(parsed)
            return _sqlite_engine(parsed)
        options: dict[str, Any] = {}
        # A server that accepts connections and never answers must not hang the
        # program: every connection and statement is timed out.
        wanted: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
        if backend in ("mysql", "mariadb"):
            # InnoDB's default, REPEATABLE READ, would hide a row another process
            # committed after this transaction's first read.
            options["isolation_level"] = "READ COMMITTED"
            wanted["read_timeout"] = STATEMENT_TIMEOUT_S
            wanted["write_timeout"] = STATEMENT_TIMEOUT_S
        elif backend == "postgresql":
            wanted["options"] = f"-c statement_timeout={STATEMENT_TIMEOUT_S * 1000}"
            if read_only:
                # The server refuses any write in these sessions.
                wanted["options"] += " -c default_transaction_read_only=on"
        connect_args = {k: v for k, v in wanted.items() if k not in parsed.query}
        engine = sa.create_engine(
            parsed,
            hide_parameters=True,
            pool_pre_ping=True,
            connect_args=connect_args,
            **options,
        )
        if read_only and backend in ("mysql", "mariadb"):
            _refuse_writes(engine)
        return engine
    except NoSuchModuleError:
        raise DatabaseURLError(
            f"{mask_url(url)} names a database that SQLAlchemy does not know "
            f"({parsed.drivername!r}); use postgresql, mysql, mariadb or sqlite."
        ) from None
    except ImportError as exc:
        hint = f" Install it with: pip install 'eventblocks[{extra}]'." if extra else ""
        raise DatabaseURLError(
            f"The database driver for {mask_url(url)} is not installed "
            f"({exc.name or exc}).{hint}"
        ) from None


READ_ONLY = "eventblocks_read_only"
"""An execution option: this connection only reads (on SQLite, no write lock)."""


def _refuse_writes(engine: Engine) -> None:
    """Make every session of a MySQL/MariaDB engine refuse writes."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET SESSION TRANSACTION READ ONLY")
        cursor.close()


def _sqlite_reader(parsed: sa.URL) -> Engine:
    """An engine that opens the SQLite file read-only (``mode=ro``).

    Nothing is created: not the file, not its folder, and no table. The journal
    mode is left as the writers set it (WAL), so readers and writers still do not
    wait for each other.
    """
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise DatabaseURLError(
            f"{mask_url(parsed)} is not a SQLite file that can be opened "
            "read-only; give the path of the database file."
        )
    path = Path(database).expanduser().resolve()
    if not path.is_file():
        raise DatabaseURLError(
            f"There is no SQLite database at {path} ({mask_url(parsed)}): nothing "
            "has written events there yet, or the path is wrong."
        )
    target = f"file:{urllib.parse.quote(str(path))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(target, uri=True, timeout=30, check_same_thread=False)

    engine = sa.create_engine("sqlite://", creator=connect, hide_parameters=True)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        # Belt and braces beside mode=ro: SQLite refuses any write statement.
        cursor.execute("PRAGMA query_only = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


_WAL_SWITCH_WAIT_S = 30.0


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Put the database in WAL mode, waiting while another connection switches it.

    Switching a new database's journal mode takes an exclusive lock without
    calling SQLite's busy handler, so when several processes open the same new
    file at once, one of them can get "database is locked" at once, whatever the
    busy timeout. It waits a little and asks again, up to the busy timeout.
    """
    deadline = time.monotonic() + _WAL_SWITCH_WAIT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005 + random.random() * 0.02)


def _sqlite_engine(parsed: sa.URL) -> Engine:
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        parsed,
        hide_parameters=True,
        connect_args={"timeout": 30, "check_same_thread": False},
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" below decide when a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        if parsed.database and parsed.database != ":memory:":
            _use_wal(cursor)
            # In WAL mode NORMAL syncs at checkpoints, not at every commit: a
            # process crash loses nothing, a power cut may lose the last commits,
            # and the database is never corrupted.
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            # A reader in WAL mode neither waits for writers nor holds them up.
            connection.exec_driver_sql("BEGIN")
            return
        # Take the write lock up front: two deferred transactions that both
        # upgrade to writing would make one fail with "database is locked".
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


_engines: dict[tuple[str, bool], Engine] = {}
_engines_lock = threading.Lock()


def _after_fork() -> None:
    # Connections are not shared with a forked child: it opens its own.
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork)


def engine_for(url: str, *, read_only: bool = False) -> Engine:
    """Return the engine for ``url``, created once per process.

    With ``read_only``, a second engine whose sessions cannot write: a SQLite file
    is opened with ``mode=ro`` (and must exist), PostgreSQL sessions start with
    ``default_transaction_read_only``, MySQL/MariaDB sessions are ``READ ONLY``.
    """
    key = (url, read_only)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _create_engine(url, read_only)
        return engine


def prepare(engine: Engine, work: Callable[[Connection], None]) -> None:
    """Run ``work`` (creating tables) in a transaction, looking again after a race.

    Several processes may open a new database at once. MySQL and MariaDB cannot
    create tables inside a transaction, so one of them may find a table created (or
    a row inserted) under its feet: it waits a little and runs ``work`` again, and
    then finds everything in place. The last failure is raised.
    """
    attempts = 20
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                work(conn)
            return
        except (OperationalError, IntegrityError, ProgrammingError) as exc:
            # No statement: the server could not be reached (or timed out), not
            # a race; trying again would only multiply the wait.
            if attempt == attempts - 1 or exc.statement is None:
                raise
            time.sleep(0.02 * (attempt + 1) + random.random() * 0.05)


_packet_sizes: dict[int, int | None] = {}


def max_statement_bytes(engine: Engine) -> int | None:
    """Return the largest statement the server accepts, or None if unlimited.

    MySQL and MariaDB refuse (and drop the connection for) a packet larger than
    their ``max_allowed_packet``; it is read once per engine.
    """
    key = id(engine)
    if key in _packet_sizes:
        return _packet_sizes[key]
    size: int | None = None
    if engine.dialect.name in ("mysql", "mariadb"):
        with engine.connect() as conn:
            size = int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())
    _packet_sizes[key] = size
    return size
