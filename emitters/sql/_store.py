"""The SQL event store: a sink that writes events through SQLAlchemy, and queries.

With nothing configured, events go to this store on the home database (SQLite in
``EVENTBLOCKS_HOME``, or ``EVENTBLOCKS_DATABASE_URL``), so ``eventblocks events``
shows what a script just did. PostgreSQL and MySQL/MariaDB work by URL.

Writes are idempotent: an event whose id is already stored is skipped, so a batch
delivered twice stores each event once. On SQLite, several processes can write at
once: each batch is one ``BEGIN IMMEDIATE`` transaction that waits for the lock,
and a batch that still finds the database busy is tried again rather than lost.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    StatementError,
)

from emitters._emitter import Emitter, PartialDelivery
from emitters._engine import (
    READ_ONLY,
    engine_for,
    mask_url,
    max_statement_bytes,
    prepare,
)
from emitters._model import Event
from emitters._pipeline.batch import items_of
from emitters._settings import database_url
from emitters.sql._queries import (
    BlockRunSummary,
    BlockSummary,
    CallRecord,
    Moment,
    TimelineRow,
    block_events,
    block_summaries,
    event_filters,
    moment_micros,
    parse_block,
)
from emitters.sql._queries import runs_for_block as _runs_for_block
from emitters.sql._queries import timeline as _timeline
from emitters.sql._queries import timeline_rows as _timeline_rows
from emitters.sql._run_queries import RunLookupError, find_run, get_run, list_runs
from emitters.sql._runs import (
    RunFailure,
    RunSummary,
    SummaryWriter,
    rebuild_summaries,
    summaries_missing,
    tally,
)
from emitters.sql._tables import (
    EncodedBatch,
    RowEncoder,
    event_from_row,
    event_links,
    event_parts,
    events_table,
    metadata,
    run_blocks_table,
    runs_table,
    select_events,
    upgrade_event_tables,
)

__all__ = [
    "BlockRunSummary",
    "BlockSummary",
    "CallRecord",
    "RunFailure",
    "RunLookupError",
    "RunSummary",
    "SQLEventStore",
    "TimelineRow",
]

# URLs whose tables exist in this process.
_ready: set[str] = set()
_ready_lock = threading.Lock()
# How long a batch keeps trying a busy SQLite database, beyond its busy timeout.
_BUSY_ATTEMPTS = 8


def _is_busy(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


def _refused_data(exc: StatementError) -> bool:
    """Whether the database refused the values, not the connection or the statement.

    Such a batch is worth storing event by event; a lost connection or a missing
    table is not.
    """
    return isinstance(exc, DataError | IntegrityError)


# Room for the statement around a row's values.
_HEADROOM = 64 * 1024
# Strings shorter than this are never what makes a row too large.
_LARGE_TEXT = 64 * 1024


def _row_bytes(row: tuple[Any, ...]) -> int:
    """Return about how many bytes ``row`` takes in an INSERT, escapes included."""
    total = 0
    for value in row:
        if isinstance(value, str):
            if len(value) < _LARGE_TEXT:
                total += len(value)
                continue
            # Quotes and backslashes are escaped in the statement's text.
            total += len(value.encode()) + value.count('"') + value.count("\\")
        elif isinstance(value, bytes):
            total += 2 * len(value)
    return total


def _create_tables(conn: Connection) -> None:
    metadata.create_all(conn, checkfirst=True)
    upgrade_event_tables(conn)
    if summaries_missing(conn):
        rebuild_summaries(conn)


def _tables_problem(conn: Connection) -> str | None:
    """Say why a store opened read-only cannot be read as it is, or None.

    A reader cannot create the tables nor bring an earlier version's up to date.
    """
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names())
    if events_table.name not in present:
        return f"it holds no event store (no table {events_table.name})"
    for table in metadata.sorted_tables:
        if table.name not in present:
            return f"its event store lacks the table {table.name}"
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        missing = [c.name for c in table.columns if c.name not in columns]
        if missing:
            return f"its table {table.name} lacks the column {missing[0]}"
    if summaries_missing(conn):
        return "its run summaries are not built yet"
    return None


class _SqliteInsert:
    """Multi-row ``INSERT ... ON CONFLICT DO NOTHING`` statements for SQLite.

    One statement carries many rows: the driver then releases the GIL once per
    statement instead of once per row, which keeps the writing thread from
    queueing for the GIL behind the threads that produce events.
    """

    def __init__(
        self, table: str, columns: tuple[str, ...], key: str | None = None
    ) -> None:
        self._head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        self._row = "(" + ", ".join("?" for _ in columns) + ")"
        self._key = key
        # SQLite before 3.32 allows 999 parameters per statement, later 32766.
        limit = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
        self._chunk = max(1, min(500, limit // len(columns)))
        self._sql: dict[tuple[int, bool], str] = {}

    def _statement(self, rows: int, returning: bool) -> str:
        sql = self._sql.get((rows, returning))
        if sql is None:
            values = ", ".join([self._row] * rows)
            tail = f" RETURNING {self._key}" if returning else ""
            sql = self._sql[rows, returning] = (
                f"{self._head}{values} ON CONFLICT DO NOTHING{tail}"
            )
        return sql

    def __call__(
        self, conn: Connection, rows: list[tuple[Any, ...]], keys: bool = False
    ) -> set[str] | None:
        """Insert ``rows``.

        Returns:
            None when every row was inserted; else the keys of those inserted
            (when the table has a key), which takes a second try with ``keys``:
            raises :class:`_KeysWanted` the first time.
        """
        step = self._chunk
        added: set[str] = set()
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            result = conn.exec_driver_sql(
                self._statement(len(chunk), keys),
                tuple(itertools.chain.from_iterable(chunk)),
            )
            if keys:
                # From the driver's cursor: SQLAlchemy's rows cost more.
                cursor = result.cursor
                assert cursor is not None
                added.update(itertools.chain.from_iterable(cursor.fetchall()))
                result.close()
            elif self._key is not None and result.rowcount != len(chunk):
                raise _KeysWanted
        return added if keys else None


class _KeysWanted(Exception):
    """Some rows of a batch were stored already: write it again, learning which
    were new (rare: a batch delivered twice)."""


class _CoreInsert:
    """An insert through SQLAlchemy Core, for the other databases."""

    def __init__(
        self, statement: Any, columns: tuple[str, ...], new_keys: str | None = None
    ) -> None:
        self._statement = statement
        self._columns = columns
        self._new_keys = new_keys

    def __call__(
        self, conn: Connection, rows: list[tuple[Any, ...]], keys: bool = False
    ) -> set[str] | None:
        """Insert ``rows``; for events, return the keys really inserted.

        PostgreSQL says which rows it inserted (``RETURNING``). MySQL cannot with
        ``ON DUPLICATE KEY``: the keys already stored are read first, in the same
        transaction (a copy of the batch written at that very moment by another
        connection may then be counted twice in the run summaries).
        """
        columns = self._columns
        params = [dict(zip(columns, r, strict=True)) for r in rows]
        if self._new_keys == "returning":
            return set(conn.execute(self._statement, params).scalars())
        if self._new_keys == "select":
            ids = [r[0] for r in rows]
            t = events_table.c
            stored: set[str] = set()
            for start in range(0, len(ids), 1000):
                stored.update(
                    conn.execute(
                        sa.select(t.id).where(t.id.in_(ids[start : start + 1000]))
                    ).scalars()
                )
            conn.execute(self._statement, params)
            return {i for i in ids if i not in stored}
        conn.execute(self._statement, params)
        return None


class _UnnestInsert:
    """PostgreSQL through psycopg: every row of a batch in one small statement.

    ``INSERT ... SELECT * FROM unnest(%s::text[], %s::bigint[], ...)`` sends one
    array per column. A statement with a placeholder per value, as a multi-row
    ``VALUES`` has, is parsed again by psycopg on every batch (it caches only
    small statements): that parsing cost more than the database's own work, and
    held the store to a fifth of the rate of the driver's ``executemany``.
    """

    def __init__(self, table: sa.Table, key: str | None = None) -> None:
        self._key = key
        casts = ", ".join(
            f"%b::{'bigint' if isinstance(c.type, sa.BigInteger) else 'text'}[]"
            for c in table.columns
        )
        columns = ", ".join(c.name for c in table.columns)
        tail = f" RETURNING {key}" if key is not None else ""
        self._sql = (
            f"INSERT INTO {table.name} ({columns}) SELECT * FROM unnest({casts}) "
            f"ON CONFLICT DO NOTHING{tail}"
        )
        self._width = len(table.columns)

    def __call__(
        self, conn: Connection, rows: list[tuple[Any, ...]], keys: bool = False
    ) -> set[str] | None:
        """Insert ``rows``; for events, return the keys really inserted."""
        if not rows:
            return set() if self._key is not None else None
        columns = tuple(list(column) for column in zip(*rows, strict=True))
        result = conn.exec_driver_sql(self._sql, columns)
        if self._key is None:
            return None
        cursor = result.cursor
        assert cursor is not None
        return set(itertools.chain.from_iterable(cursor.fetchall()))


class SQLEventStore(Emitter):
    """Stores events in a SQL database, and answers questions about them.

    Args:
        url: A SQLAlchemy database URL; None uses the home database (the
            ``EVENTBLOCKS_DATABASE_URL`` setting, or SQLite in the home folder).
        name: The name it is counted under in ``stats()``.
        read_only: Only read: create no table and write nothing. A SQLite file
            is opened read-only (``mode=ro``), PostgreSQL and MySQL/MariaDB
            sessions refuse writes. The queries work as usual; storing events
            and :meth:`prune` raise ``PermissionError``. The first query raises
            ``LookupError`` when the database holds no event store written by
            this version (the message says why).

    Example:
        ```python
        # not run
        store = SQLEventStore()
        for call in store.timeline(run_id):
            print(call.block, call.method, call.outcome, call.duration_ms)
        ```
    """

    # A store that fell behind catches up in fewer, larger transactions.
    join_batches_up_to = 4096
    # It writes rows straight from the pipeline's drafts of events.
    _eventblocks_reads_drafts = True

    def __init__(
        self,
        url: str | None = None,
        *,
        name: str | None = None,
        read_only: bool = False,
    ) -> None:
        super().__init__(name=name)
        self.url: str = url if url is not None else database_url()
        """The database URL (see :attr:`display_url` for one safe to show)."""
        self.read_only: bool = read_only
        """Whether the store only reads (see the class's docstring)."""
        self._checked = False
        self._encoder = RowEncoder()
        self._write_lock = threading.Lock()
        self._statements: tuple[Any, Any, Any] | None = None
        self._summaries: SummaryWriter | None = None

    @property
    def display_url(self) -> str:
        """The database URL with its password masked."""
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"<SQLEventStore {self.display_url}>"

    # -- connection --------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The engine for :attr:`url`, with the event tables created (checked, for
        a read-only store)."""
        if self.read_only:
            engine = engine_for(self.url, read_only=True)
            if not self._checked:
                self._check(engine)
            return engine
        engine = engine_for(self.url)
        if self.url not in _ready:
            self._prepare(engine)
        return engine

    def _check(self, engine: Engine) -> None:
        with engine.connect() as conn:
            problem = _tables_problem(conn)
        if problem is not None:
            raise LookupError(
                f"Cannot read events from {self.display_url}: {problem}. Point it at "
                "the database that scripts write events to; a store written by an "
                "earlier version is brought up to date by opening it once for "
                "writing (eventblocks runs ls does)."
            )
        self._checked = True

    def _refuse_writes(self, what: str) -> None:
        if self.read_only:
            raise PermissionError(
                f"This SQLEventStore on {self.display_url} is read-only; it "
                f"cannot {what}."
            )

    def _prepare(self, engine: Engine) -> None:
        with _ready_lock:
            if self.url not in _ready:
                prepare(engine, _create_tables)
                _ready.add(self.url)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn.execution_options(**{READ_ONLY: True})

    # -- the sink ----------------------------------------------------------------

    def _insert_statements(self, engine: Engine) -> tuple[Any, Any, Any]:
        """Return, per table (events, links, parts), how to insert rows,
        skipping keys already stored."""
        if self._statements is not None:
            return self._statements
        backend = engine.dialect.name
        statements: list[Any] = []
        for table, key in (
            (events_table, "id"),
            (event_links, "event_id"),
            (event_parts, "id"),
        ):
            columns = tuple(c.name for c in table.columns)
            events = table is events_table
            if backend == "sqlite":
                returning = "id" if events else None
                statements.append(_SqliteInsert(table.name, columns, returning))
                continue
            new_keys: str | None = None
            if backend == "postgresql" and engine.dialect.driver == "psycopg":
                statements.append(_UnnestInsert(table, "id" if events else None))
                continue
            if backend == "postgresql":
                stmt: Any = postgresql.insert(table).on_conflict_do_nothing()
                if events:
                    stmt, new_keys = stmt.returning(table.c.id), "returning"
            elif backend in ("mysql", "mariadb"):
                stmt = mysql.insert(table)
                stmt = stmt.on_duplicate_key_update({key: stmt.inserted[key]})
                new_keys = "select" if events else None
            else:
                stmt = table.insert()
            statements.append(_CoreInsert(stmt, columns, new_keys))
        self._statements = (statements[0], statements[1], statements[2])
        self._summaries = SummaryWriter(engine.dialect)
        return self._statements

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Store the batch in one transaction; events already stored are skipped.

        Raises:
            PartialDelivery: The database refused some events (each was then
                tried alone); the others are stored.
        """
        if not events:
            return
        self._refuse_writes("store events")
        with self._write_lock:
            batch = self._encoder.rows(items_of(events))
        limit = max_statement_bytes(self.engine)
        if limit is not None:
            too_large = [
                row for row in batch.rows if _row_bytes(row) > limit - _HEADROOM
            ]
            too_large += [
                row for row in batch.part_rows if _row_bytes(row) > limit - _HEADROOM
            ]
            if too_large:
                self._write_without(batch, too_large, limit)
                return
        self._store_rows(batch)

    def _write_without(
        self, batch: EncodedBatch, too_large: list[tuple[Any, ...]], limit: int
    ) -> None:
        """Store the batch but the events the server cannot take in one packet.

        Sending them would cost the whole batch (MySQL and MariaDB drop the
        connection): they are counted failed alone.

        Raises:
            PartialDelivery: Always; it counts the events stored.
        """
        skipped = {row[0] for row in too_large}
        rows = batch.rows
        kept = [row for row in rows if row[0] not in skipped and row[12] not in skipped]
        stored = len(kept)
        if kept:
            try:
                self._store_rows(
                    EncodedBatch(
                        kept,
                        [link for link in batch.link_rows if link[0] not in skipped],
                        batch.runs,
                        [part for part in batch.part_rows if part[0] not in skipped],
                    )
                )
            except PartialDelivery as part:
                stored = part.delivered
        raise PartialDelivery(
            stored,
            f"{len(rows) - len(kept)} of {len(rows)} events are larger than the server "
            f"accepts in one statement (max_allowed_packet = {limit} bytes on "
            f"{self.display_url}); they were not stored",
        )

    def _store_rows(self, batch: EncodedBatch) -> None:
        """Store encoded rows, event by event if the database refuses some."""
        try:
            self._write(batch)
        except StatementError as exc:
            if not _refused_data(exc) or len(batch.rows) == 1:
                raise
            self._write_one_by_one(batch)

    def _write(self, batch: EncodedBatch) -> None:
        rows, link_rows, runs, part_rows = batch
        engine = self.engine
        insert_events, insert_links, insert_parts = self._insert_statements(engine)
        summaries = self._summaries
        assert summaries is not None
        keys = False
        for attempt in range(_BUSY_ATTEMPTS):
            try:
                with engine.begin() as conn:
                    if part_rows:
                        insert_parts(conn, part_rows)
                    added = insert_events(conn, rows, keys)
                    if link_rows:
                        insert_links(conn, link_rows)
                    if added is not None and len(added) == len(rows):
                        added = None  # every event is new
                    counts = tally(rows, link_rows, runs, added)
                    if counts:
                        summaries.write(conn, counts)
                return
            except _KeysWanted:
                keys = True  # rolled back; once more, learning which are new
            except OperationalError as exc:
                # SQLite's busy timeout ran out under another process's long write:
                # wait and try again rather than lose the batch.
                if not _is_busy(exc) or attempt == _BUSY_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * 2**attempt * (1 + random.random()))

    def _write_one_by_one(self, batch: EncodedBatch) -> None:
        """Store each event in a transaction of its own, so that one the database
        refuses costs only itself."""
        rows, link_rows, runs, part_rows = batch
        links: dict[str, list[tuple[Any, ...]]] = {}
        for link in link_rows:
            links.setdefault(link[0], []).append(link)
        parts = {part[0]: part for part in part_rows}
        refused: list[str] = []
        for done, row in enumerate(rows):
            part = parts.get(row[12])
            try:
                self._write(
                    EncodedBatch(
                        [row], links.get(row[0], []), runs, [part] if part else []
                    )
                )
            except StatementError as exc:
                if not _refused_data(exc):
                    # The database went away: what was stored so far counts.
                    stored = done - len(refused)
                    if not stored:
                        raise
                    raise PartialDelivery(
                        stored,
                        f"stored {stored} of {len(rows)} events one by one, then "
                        f"{type(exc.orig or exc).__name__}",
                    ) from exc
                refused.append(f"{type(exc.orig or exc).__name__} for event {row[0]}")
        if refused:
            raise PartialDelivery(
                len(rows) - len(refused),
                f"the database refused {len(refused)} of {len(rows)} events "
                f"({', '.join(refused[:3])}{', ...' if len(refused) > 3 else ''})",
            )

    # -- queries -----------------------------------------------------------------

    def events(
        self,
        *,
        block: str | None = None,
        resource_id: str | None = None,
        flow_run: str | None = None,
        name: str | None = None,
        failed: bool | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        limit: int | None = 100,
        order: Literal["asc", "desc"] = "asc",
    ) -> list[Event]:
        """Return stored events, oldest first (or newest first with ``order="desc"``).

        Args:
            block: ``"slug/name"`` of a saved block (or a bare slug for every block
                of that type): events where it is the resource or a related
                ``nested-block``.
            resource_id: Events about this resource id.
            flow_run: Events of this flow run id.
            name: A glob on the event name, such as ``block.s3-bucket.*``.
            failed: True keeps only ``*.failed`` events; False leaves them out.
            since: From this moment (an aware datetime, or a timedelta ago).
            until: Before this moment.
            limit: At most this many events (None: all of them).
            order: ``"asc"`` or ``"desc"`` by time.

        Raises:
            ValueError: An argument is malformed; the message names it.
        """
        if order not in ("asc", "desc"):
            raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ValueError(f"limit must be a positive integer or None, not {limit!r}")
        where = event_filters(
            block=None,
            resource_id=resource_id,
            flow_run=flow_run,
            name=name,
            failed=failed,
            since=since,
            until=until,
        )
        t = events_table.c
        ordering = (
            (t.occurred_us, t.id)
            if order == "asc"
            else (t.occurred_us.desc(), t.id.desc())
        )
        if block is not None:
            parse_block(block)
            with self._reading() as conn:
                rows = block_events(conn, block, where, limit, order == "desc")
                return [event_from_row(row) for row in rows]
        query = select_events().where(*where).order_by(*ordering)
        if limit is not None:
            query = query.limit(limit)
        with self._reading() as conn:
            return [event_from_row(row) for row in conn.execute(query)]

    def runs_for_block(self, block: str) -> list[BlockRunSummary]:
        """Return the flow runs that used a block document, first used first.

        Counts every event where the document is the resource or a related
        ``nested-block`` (so an ``S3Bucket`` call counts for its credentials too).
        Calls made outside any flow run are summed under ``flow_run_id=None``
        (a document only saved or loaded outside one makes no row).

        Args:
            block: ``"slug/name"``, such as ``"database-credentials/prod"``.

        Raises:
            ValueError: ``block`` is not of that form.
        """
        parse_block(block)
        with self._reading() as conn:
            return _runs_for_block(conn, block)

    def timeline(self, flow_run_id: str) -> list[CallRecord]:
        """Return the flow run's method calls in the order they started.

        Each call pairs a ``started`` event with its ``succeeded`` or ``failed``
        outcome: its duration, and on failure the error type and message.
        """
        if not isinstance(flow_run_id, str) or not flow_run_id:
            raise ValueError(f"flow_run_id must be a run id, not {flow_run_id!r}")
        with self._reading() as conn:
            return _timeline(conn, flow_run_id.removeprefix("flow-run."))

    def timeline_rows(self, flow_run_id: str) -> list[TimelineRow]:
        """Return the same calls as :meth:`timeline`, in the same order, as plain
        tuples (:data:`emitters.sql.TimelineRow`).

        Each is ``(started_us, event_id, block, method, duration_ms, outcome,
        error_type, error_message, caller, task_run_id, task_run_name,
        outcome_event_id)``: ``started_us`` is the start in microseconds since the
        Unix epoch (UTC), the rest are :class:`CallRecord`'s fields. Made for a
        reader that turns thousands of calls into text (the web page's API): it
        skips building a record and a datetime per call.
        ``CallRecord.from_row(row)`` gives the record of one.
        """
        if not isinstance(flow_run_id, str) or not flow_run_id:
            raise ValueError(f"flow_run_id must be a run id, not {flow_run_id!r}")
        with self._reading() as conn:
            return _timeline_rows(conn, flow_run_id.removeprefix("flow-run."))

    def runs(
        self,
        *,
        name: str | None = None,
        failed: bool | None = None,
        since: Moment | None = None,
        source: str | None = None,
        limit: int | None = 50,
        until: Moment | None = None,
    ) -> list[RunSummary]:
        """Return the stored flow runs, the latest started first.

        Reads the run summaries that the store keeps as events are written, never
        the events themselves.

        Args:
            name: A glob on the run name, such as ``nightly-*``.
            failed: True keeps runs with a failed call; False runs without one.
            since: Runs that started from this moment (an aware datetime, or a
                timedelta ago).
            source: Runs from this source: ``eventblocks``, ``prefect``,
                ``airflow`` or ``environment``.
            limit: At most this many runs (None: all of them).
            until: Runs that started before this moment.

        Raises:
            ValueError: An argument is malformed; the message names it.
        """
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ValueError(f"limit must be a positive integer or None, not {limit!r}")
        if name is not None and not name:
            raise ValueError("name must be a non-empty glob such as 'nightly-*'")
        since_us = None if since is None else moment_micros(since, "since")
        until_us = None if until is None else moment_micros(until, "until")
        with self._reading() as conn:
            return list_runs(
                conn,
                name=name,
                failed=failed,
                since_us=since_us,
                until_us=until_us,
                source=source,
                limit=limit,
            )

    def run(self, run_id: str) -> RunSummary | None:
        """Return the summary of the flow run with this exact id, or None."""
        if not isinstance(run_id, str) or not run_id:
            raise ValueError(f"run_id must be a run id, not {run_id!r}")
        with self._reading() as conn:
            return get_run(conn, run_id.removeprefix("flow-run."))

    def find_run(self, ref: str) -> RunSummary:
        """Return the flow run that ``ref`` names, as people name runs.

        ``ref`` is a full run id, the short id that listings show (the last 8
        characters of the id), a unique prefix of the id of at least 6
        characters, or a run name (then the latest run of that name).

        Raises:
            RunLookupError: No run matches, or the id part matches several
                runs; the message says what was tried and names the candidates
                (so do its attributes).
        """
        if not isinstance(ref, str):
            raise ValueError(f"ref must be a string, not {type(ref).__name__}")
        with self._reading() as conn:
            return find_run(conn, ref)

    def event(self, event_id: str | UUID) -> Event | None:
        """Return the stored event with this id, or None.

        Args:
            event_id: The event's UUID, or its text in any form ``uuid.UUID``
                reads (with or without hyphens).

        Raises:
            ValueError: ``event_id`` is not a UUID.
        """
        if not isinstance(event_id, UUID):
            try:
                event_id = UUID(str(event_id))
            except ValueError:
                raise ValueError(
                    f"event_id must be an event's UUID, not {event_id!r}"
                ) from None
        with self._reading() as conn:
            row = conn.execute(
                select_events().where(events_table.c.id == event_id.hex)
            ).first()
        return None if row is None else event_from_row(row)

    def outcome_of(self, started: Event) -> Event | None:
        """Return the ``succeeded`` or ``failed`` event of a call, or None.

        Args:
            started: The call's ``started`` event (as :meth:`event` returns it).

        The outcome is looked for from the call's start on, among the events of
        its flow run (of its resource, outside any run): the next few rows, for
        any call but a long one in a busy run.
        """
        t = events_table.c
        runs = started.related_by_role("flow-run")
        scope = (
            t.flow_run_id == runs[0].id.removeprefix("flow-run.")
            if runs
            else t.resource_id == started.resource.id
        )
        query = (
            select_events()
            .where(
                scope,
                t.occurred_us >= moment_micros(started.occurred, "occurred"),
                t.follows == started.id.hex,
            )
            .limit(1)
        )
        with self._reading() as conn:
            row = conn.execute(query).first()
        return None if row is None else event_from_row(row)

    def blocks(self) -> list[BlockSummary]:
        """Return every block the stored events involve, by type and name.

        Read from the summaries the store keeps as events are written. A saved
        document is one entry (``slug/name``), and so are all the unsaved blocks
        of a type (``slug``). A document counts for the calls of the blocks that
        hold it (an ``S3Bucket`` call counts for its credentials too).
        """
        with self._reading() as conn:
            return block_summaries(conn)

    def prune(self, older_than: Moment) -> int:
        """Delete events that occurred before ``older_than``; return how many.

        The summary of a run (and of a block's use in it) goes with its last
        event; a run partly pruned keeps its summary as it was.

        Args:
            older_than: An aware datetime, or a timedelta (``timedelta(days=30)``
                keeps the last 30 days).
        """
        self._refuse_writes("prune events")
        cutoff = moment_micros(older_than, "older_than")
        t = events_table.c
        old = sa.select(t.id).where(t.occurred_us < cutoff)
        with self.engine.begin() as conn:
            conn.execute(event_links.delete().where(event_links.c.event_id.in_(old)))
            result = conn.execute(events_table.delete().where(t.occurred_us < cutoff))
            conn.execute(runs_table.delete().where(runs_table.c.last_us < cutoff))
            # The parts of runs pruned whole that no event names any more (a
            # run still writing keeps its summary, so its parts stay; so do the
            # few of calls outside any run, one per call site).
            p = event_parts.c
            named = sa.select(t.parts).where(t.parts.is_not(None)).distinct()
            conn.execute(
                event_parts.delete().where(
                    p.flow_run_id.is_not(None),
                    p.flow_run_id.not_in(sa.select(runs_table.c.id)),
                    p.id.not_in(named),
                )
            )
            conn.execute(
                run_blocks_table.delete().where(run_blocks_table.c.last_us < cutoff)
            )
            return int(result.rowcount or 0)
