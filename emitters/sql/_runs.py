"""Run summaries: one row per flow run, and one per (block document, run).

They are kept up to date by the transaction that writes a batch of events, from
the events that batch really added (an event stored twice counts once), so that
listing runs, finding one by name or short id, and a block's runs read a few
indexed rows instead of scanning the events. A store written by an earlier
version gets its summaries built from the stored events when it is opened.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect

from emitters._ids import run_short_id as short_id
from emitters._observed import INFRA_PREFIX, infra_failure
from emitters.sql._tables import (
    RunMeta,
    event_columns,
    event_links,
    events_table,
    events_with_parts,
    from_micros,
    run_blocks_table,
    run_meta,
    runs_table,
)

__all__ = [
    "RunFailure",
    "RunSummary",
    "SummaryWriter",
    "Tally",
    "block_label",
    "rebuild_summaries",
    "short_id",
    "summaries_missing",
    "summary_from_row",
    "tally",
]

_NO_RUN = ""  # the run key of calls made outside any flow run


@dataclass(frozen=True, slots=True)
class RunFailure:
    """The first call of a run that failed.

    Attributes:
        block: ``slug/name`` for a saved block, the slug for an unsaved one, or
            the resource id for any other resource.
        method: The method called, such as ``read_path``.
        error_type: The exception's qualified class name, when the event has one.
        occurred: When the failure was recorded (aware, UTC).
    """

    block: str
    method: str
    error_type: str | None
    occurred: datetime


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What the event store knows of one flow run, kept as its events are written.

    Attributes:
        id: The run's id, as the orchestrator or ``flow_run()`` gave it.
        short_id: The last 8 characters of the id (hex digits for a UUID): the
            part that differs between runs of the same minute. Accepted wherever
            the command line takes a run.
        name: The run's name, when its events carried one.
        source: Where the run came from: ``eventblocks`` (``flow_run()``, also
            assumed when the events say nothing), ``prefect``, ``airflow`` or
            ``environment``.
        labels: The run's own labels (``source`` apart).
        started: When the run's first stored event occurred (aware, UTC).
        last_event: When its latest one occurred.
        calls: Method calls started in the run (``*.started`` events).
        failures: Calls that failed (``*.failed`` events).
        first_failure: The earliest failure, or None.
        events_lost: Events of the run known to be lost before they were stored.
        infrastructure_events: Events about the run's infrastructure.
    """

    id: str
    short_id: str
    name: str | None
    source: str
    labels: dict[str, str]
    started: datetime
    last_event: datetime
    calls: int
    failures: int
    first_failure: RunFailure | None
    events_lost: int = 0
    infrastructure_events: int = 0
    duration: timedelta = field(init=False)
    """Time from the first stored event to the last."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "duration", self.last_event - self.started)


def _real_name(name: str | None, run_id: str) -> bool:
    """Whether ``name`` names a run better than its id does.

    Observers of infrastructure know a run's id, not its name, and name it by
    its id; a run's calls carry its real name, which wins whichever came first.
    """
    return name is not None and name != run_id


def block_label(
    resource_id: str, resource_name: str | None, block_type: str | None
) -> str:
    """Return how the timeline names the resource of a call."""
    if block_type:
        if resource_name and resource_id.startswith("block-document."):
            return f"{block_type}/{resource_name}"
        return block_type
    return resource_id


# What the pipeline sends when it had to drop events (emitters._pipeline).
_LOST = "pipeline.events-lost"


def _lost_count(payload_json: str | None) -> int:
    """The ``lost`` count of a ``pipeline.events-lost`` event's payload."""
    try:
        lost = json.loads(payload_json or "{}").get("lost")
    except (ValueError, AttributeError):
        return 0
    return lost if isinstance(lost, int) and lost > 0 else 0


def _error_type(payload_json: str | None) -> str | None:
    if not payload_json:
        return None
    try:
        error = json.loads(payload_json).get("error")
    except (ValueError, AttributeError):
        return None
    if isinstance(error, dict) and isinstance(error.get("type"), str):
        return str(error["type"])[:255]
    return None


@dataclass
class Tally:
    """What a set of new events adds to the summaries, ready to be merged."""

    runs: dict[str, list[Any]] = field(default_factory=dict)
    blocks: dict[tuple[str, str, str], list[Any]] = field(default_factory=dict)
    metas: dict[str, RunMeta] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.runs or self.blocks)


_GROUP = itemgetter(6, 5, 4)  # flow run, block type, document name
_TIME = itemgetter(1)
_NAME = itemgetter(2)


def tally(
    rows: Sequence[Sequence[Any]],
    link_rows: Iterable[Sequence[Any]],
    metas: dict[str, RunMeta],
    new_ids: set[str] | None = None,
) -> Tally:
    """Sum up event rows (in ``EVENT_COLUMNS`` order) for the summaries.

    Only rows whose id is in ``new_ids`` count, when it is given (each once).
    ``link_rows`` are rows of ``eventblocks_event_links`` (``LINK_COLUMNS``
    order). A batch is mostly runs of events of one run and one block, which are
    summed up a group at a time.
    """
    if new_ids is not None:
        kept = []
        for row in rows:
            if row[0] in new_ids:
                new_ids.discard(row[0])  # a batch holding an event twice
                kept.append(row)
        rows = kept
    out = Tally(metas=metas)
    for (run_id, block_type, block_name), group in groupby(rows, _GROUP):
        chunk = list(group)
        _add(out, chunk, run_id, block_type, block_name, True)
    by_id: dict[str, Sequence[Any]] | None = None
    for link in link_rows:
        if link[4] is None:
            continue
        if by_id is None:
            by_id = {row[0]: row for row in rows}
        event = by_id.get(link[0])
        if event is None or (
            event[5] == link[4] and (event[4] or "") == (link[3] or "")
        ):
            continue  # not new, or the document is the event's own resource
        _add(out, [event], event[6], link[4], link[3], False)
    return out


def _add(
    out: Tally,
    chunk: list[Sequence[Any]],
    run_id: str | None,
    block_type: str | None,
    block_name: str | None,
    own: bool,
) -> None:
    """Add events of one run and one block to the tally (the run's counts only
    when the events are counted for their own resource)."""
    times = list(map(_TIME, chunk))
    first, last = min(times), max(times)
    started = failed = lost = infra = 0
    infra_failures: list[tuple[Sequence[Any], str]] = []
    for name, count in Counter(map(_NAME, chunk)).items():
        if name.startswith(INFRA_PREFIX):
            infra += count
            for row in chunk:
                if row[2] == name and (what := infra_failure(name, row[11])):
                    infra_failures.append((row, what))
        elif name.endswith(".started"):
            started += count
        elif name.endswith(".failed"):
            failed += count
        elif name == _LOST:
            lost += sum(_lost_count(row[11]) for row in chunk if row[2] == _LOST)
    earliest = latest = None
    if failed:
        failures = [
            row
            for row in chunk
            if row[2].endswith(".failed") and not row[2].startswith(INFRA_PREFIX)
        ]
        earliest = min(failures, key=_TIME)
        latest = max(failures, key=_TIME)
    if own and run_id is not None:
        entry = out.runs.get(run_id)
        if entry is None:
            out.runs[run_id] = entry = [
                chunk[0][7], first, last, 0, 0, None, None, 0, 0, None
            ]  # fmt: skip
        else:
            entry[1] = min(entry[1], first)
            entry[2] = max(entry[2], last)
        if not _real_name(entry[0], run_id):
            # An observer's event names the run by its id: a call's name wins.
            named = next((r for r in chunk if _real_name(r[7], run_id)), None)
            if named is not None:
                entry[0], entry[9] = named[7], named[10]
        entry[3] += started
        entry[4] += failed + len(infra_failures)
        entry[7] += lost
        entry[8] += infra
        if earliest is not None and (entry[5] is None or earliest[1] < entry[5]):
            method = earliest[2].rpartition(".")[0].rpartition(".")[2]
            entry[5] = earliest[1]
            entry[6] = (
                block_label(earliest[3], earliest[4], earliest[5])[:512],
                method[:255],
                _error_type(earliest[11]),
            )
        for row, what in infra_failures:
            # An evicted pod or a crashed task is the run's first failure when it
            # came before any failed call.
            if entry[5] is None or row[1] < entry[5]:
                entry[5] = row[1]
                entry[6] = (
                    (row[4] or row[3])[:512],
                    row[2].rpartition(".")[2][:255],
                    what[:255],
                )
    if block_type is None:
        return
    key = (block_type, block_name or "", run_id if run_id is not None else _NO_RUN)
    b = out.blocks.get(key)
    if b is None:
        out.blocks[key] = b = [chunk[0][7], first, last, 0, 0, None, None]
    else:
        b[1] = min(b[1], first)
        b[2] = max(b[2], last)
    b[3] += started
    b[4] += failed
    if latest is not None and (b[5] is None or latest[1] >= b[5]):
        b[5], b[6] = latest[1], _error_type(latest[11])


def _renamed(old_name: Any, new_name: Any, run_id: Any) -> Any:
    """SQL: the stored name is missing or the run's id, the new one is real
    (:func:`_real_name` in a merge)."""
    return sa.and_(
        new_name.is_not(None),
        new_name != run_id,
        sa.or_(old_name.is_(None), old_name == run_id),
    )


def _lesser(backend: str, a: Any, b: Any) -> Any:
    return sa.func.min(a, b) if backend == "sqlite" else sa.func.least(a, b)


def _greater(backend: str, a: Any, b: Any) -> Any:
    return sa.func.max(a, b) if backend == "sqlite" else sa.func.greatest(a, b)


def _upsert(backend: str, table: sa.Table, merge: Any) -> Any:
    """Return an insert of ``table`` that merges a row into the one already there.

    ``merge(new, old)`` returns the ``(column, value)`` pairs to set, where
    ``new`` holds the inserted row's columns and ``old`` the stored row's; on
    MySQL they are set in that order, each seeing the ones set before it.
    """
    old = table.c

    def pairs(new: Any) -> list[tuple[str, Any]]:
        return [(column.name, value) for column, value in merge(new, old)]

    if backend == "sqlite":
        stmt: Any = sqlite.insert(table)
        keys = [c.name for c in table.primary_key]
        return stmt.on_conflict_do_update(
            index_elements=keys, set_=dict(pairs(stmt.excluded))
        )
    if backend == "postgresql":
        stmt = postgresql.insert(table)
        keys = [c.name for c in table.primary_key]
        return stmt.on_conflict_do_update(
            index_elements=keys, set_=dict(pairs(stmt.excluded))
        )
    if backend in ("mysql", "mariadb"):
        stmt = mysql.insert(table)
        return stmt.on_duplicate_key_update(pairs(stmt.inserted))
    raise NotImplementedError(f"run summaries are not kept on {backend}")


class _Statement:
    """An upsert run with a list of rows; on SQLite compiled once to driver SQL,
    which costs a batch far less than a statement through SQLAlchemy Core."""

    def __init__(self, dialect: Dialect, statement: Any, table: sa.Table) -> None:
        self._statement = statement
        self._sql: str | None = None
        self._order: tuple[str, ...] = ()
        if dialect.name == "sqlite":
            compiled = statement.compile(
                dialect=dialect, column_keys=[c.name for c in table.columns]
            )
            if compiled.positiontup is not None:
                self._sql = compiled.string
                self._order = tuple(compiled.positiontup)

    def __call__(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if self._sql is None:
            conn.execute(self._statement, rows)
            return
        order = self._order
        params = [tuple(row[key] for key in order) for row in rows]
        conn.exec_driver_sql(self._sql, params if len(params) > 1 else params[0])


class SummaryWriter:
    """Merges a :class:`Tally` into the summary tables, in the caller's
    transaction."""

    def __init__(self, dialect: Dialect) -> None:
        backend = dialect.name
        self._runs = _Statement(
            dialect, _upsert(backend, runs_table, self._merge_run(backend)), runs_table
        )
        self._blocks = _Statement(
            dialect,
            _upsert(backend, run_blocks_table, self._merge_block(backend)),
            run_blocks_table,
        )

    @staticmethod
    def _merge_run(backend: str) -> Any:
        def merge(new: Any, old: Any) -> list[tuple[Any, Any]]:
            earlier = sa.and_(
                new.failure_us.is_not(None),
                sa.or_(old.failure_us.is_(None), new.failure_us < old.failure_us),
            )
            renamed = _renamed(old.name, new.name, old.id)
            return [
                # Before the name: MySQL compares with the stored one above.
                (
                    old.labels,
                    sa.case(
                        (
                            sa.or_(renamed, old.labels == sa.literal_column("'{}'")),
                            new.labels,
                        ),
                        else_=old.labels,
                    ),
                ),
                (old.source, sa.case((renamed, new.source), else_=old.source)),
                (
                    old.name,
                    sa.case(
                        (renamed, new.name),
                        else_=sa.func.coalesce(old.name, new.name),
                    ),
                ),
                (old.first_us, _lesser(backend, old.first_us, new.first_us)),
                (old.last_us, _greater(backend, old.last_us, new.last_us)),
                (old.calls, old.calls + new.calls),
                (old.failures, old.failures + new.failures),
                (old.events_lost, old.events_lost + new.events_lost),
                (
                    old.infrastructure_events,
                    old.infrastructure_events + new.infrastructure_events,
                ),
                *(
                    (
                        getattr(old, column),
                        sa.case(
                            (earlier, getattr(new, column)),
                            else_=getattr(old, column),
                        ),
                    )
                    for column in (
                        "failure_block",
                        "failure_method",
                        "failure_error_type",
                        "failure_us",  # last: MySQL compares with it above
                    )
                ),
            ]

        return merge

    @staticmethod
    def _merge_block(backend: str) -> Any:
        def merge(new: Any, old: Any) -> list[tuple[Any, Any]]:
            later = sa.and_(
                new.last_error_us.is_not(None),
                sa.or_(
                    old.last_error_us.is_(None), new.last_error_us >= old.last_error_us
                ),
            )
            return [
                (
                    old.run_name,
                    sa.case(
                        (
                            _renamed(old.run_name, new.run_name, old.run_id),
                            new.run_name,
                        ),
                        else_=sa.func.coalesce(old.run_name, new.run_name),
                    ),
                ),
                (old.first_us, _lesser(backend, old.first_us, new.first_us)),
                (old.last_us, _greater(backend, old.last_us, new.last_us)),
                (old.calls, old.calls + new.calls),
                (old.failures, old.failures + new.failures),
                (
                    old.last_error_type,
                    sa.case((later, new.last_error_type), else_=old.last_error_type),
                ),
                (
                    old.last_error_us,
                    sa.case((later, new.last_error_us), else_=old.last_error_us),
                ),
            ]

        return merge

    def write(self, conn: Connection, counts: Tally) -> None:
        """Merge ``counts`` into the summaries."""
        if counts.runs:
            rows = []
            for run_id, (
                name,
                first,
                last,
                calls,
                fails,
                f_us,
                f,
                lost,
                infra,
                named_by,
            ) in sorted(counts.runs.items()):
                meta = counts.metas.get(run_id) or run_meta(name, {})
                if named_by is not None and meta[0] != name:
                    # The batch's first event of the run was an observer's: the
                    # source and labels are those of the event that named it.
                    meta = _meta_of(named_by, name)
                rows.append(
                    {
                        "id": run_id,
                        "short_id": short_id(run_id),
                        "name": name if name is not None else meta[0],
                        "source": meta[1],
                        "labels": meta[2],
                        "first_us": first,
                        "last_us": last,
                        "calls": calls,
                        "failures": fails,
                        "failure_block": f[0] if f else None,
                        "failure_method": f[1] if f else None,
                        "failure_error_type": f[2] if f else None,
                        "failure_us": f_us,
                        "events_lost": lost,
                        "infrastructure_events": infra,
                    }
                )
            self._runs(conn, rows)
        if counts.blocks:
            self._blocks(
                conn,
                [
                    {
                        "block_type": key[0],
                        "name": key[1],
                        "run_id": key[2],
                        "run_name": v[0],
                        "first_us": v[1],
                        "last_us": v[2],
                        "calls": v[3],
                        "failures": v[4],
                        "last_error_us": v[5],
                        "last_error_type": v[6],
                    }
                    # Sorted: concurrent writers take row locks in one order.
                    for key, v in sorted(counts.blocks.items())
                ],
            )


def summaries_missing(conn: Connection) -> bool:
    """Whether stored events have no summaries yet (a store of an earlier version)."""
    e, r, b = events_table.c, runs_table.c, run_blocks_table.c

    def some(query: Any) -> bool:
        return conn.execute(query.limit(1)).first() is not None

    if not some(sa.select(r.id)) and some(
        sa.select(e.id).where(e.flow_run_id.is_not(None))
    ):
        return True
    return not some(sa.select(b.run_id)) and some(
        sa.select(e.id).where(e.block_type.is_not(None))
    )


def rebuild_summaries(conn: Connection, page: int = 20_000) -> None:
    """Build both summary tables again from the stored events.

    Events are read in pages by id and summed up as new events are, so a store of
    any size is summed up in bounded memory (but for the links).
    """
    writer = SummaryWriter(conn.dialect)
    conn.execute(runs_table.delete())
    conn.execute(run_blocks_table.delete())
    lc = event_links.c
    link_rows = conn.execute(
        sa.select(
            *(
                event_links.c[name]
                for name in ("event_id", "resource_id", "role", "name", "block_type")
            )
        ).where(lc.block_type.is_not(None))
    ).all()
    links: dict[str, list[Any]] = {}
    for link in link_rows:
        links.setdefault(link[0], []).append(link)
    columns = event_columns()
    e = events_table.c
    last: str | None = None
    seen: set[str] = set()
    while True:
        query = (
            sa.select(*columns)
            .select_from(events_with_parts())
            .order_by(e.id)
            .limit(page)
        )
        if last is not None:
            query = query.where(e.id > last)
        rows = conn.execute(query).all()
        if not rows:
            return
        last = rows[-1][0]
        metas: dict[str, RunMeta] = {}
        for row in rows:
            run_id = row[6]
            if run_id is not None and run_id not in seen:
                seen.add(run_id)
                metas[run_id] = _meta_of(row[10], row[7])
        page_links = [link for row in rows for link in links.get(row[0], ())]
        writer.write(conn, tally(rows, page_links, metas))


def _meta_of(related_json: str, name: str | None) -> RunMeta:
    for related in json.loads(related_json or "[]"):
        if related.get("role") == "flow-run":
            labels = related.get("labels") or {}
            return run_meta(related.get("name", name), labels)
    return run_meta(name, {})


def summary_from_row(row: Any) -> RunSummary:
    """Return the :class:`RunSummary` of a row of ``eventblocks_runs``."""
    failure = None
    if row.failure_us is not None:
        failure = RunFailure(
            block=row.failure_block or "",
            method=row.failure_method or "",
            error_type=row.failure_error_type,
            occurred=from_micros(row.failure_us),
        )
    try:
        labels = json.loads(row.labels)
    except ValueError:
        labels = {}
    return RunSummary(
        id=row.id,
        short_id=row.short_id,
        name=row.name,
        source=row.source,
        labels=labels if isinstance(labels, dict) else {},
        started=from_micros(row.first_us),
        last_event=from_micros(row.last_us),
        calls=int(row.calls),
        failures=int(row.failures),
        first_failure=failure,
        events_lost=int(row.events_lost),
        infrastructure_events=int(row.infrastructure_events),
    )
