"""The event store's questions, as SQL over ``eventblocks_events``.

From a flow run's side, :func:`timeline` pairs each ``started`` event with its
outcome; from a block's side, :func:`runs_for_block` groups every event that
involved a document (as the resource, or as a related ``nested-block``) by flow run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from emitters.sql._runs import block_label
from emitters.sql._tables import (
    event_columns,
    event_links,
    event_parts,
    events_table,
    events_with_parts,
    from_micros,
    run_blocks_table,
    select_events,
    to_micros,
)

__all__ = [
    "BlockRunSummary",
    "BlockSummary",
    "CallRecord",
    "Moment",
    "block_clause",
    "block_events",
    "block_summaries",
    "event_filters",
    "like_pattern",
    "moment_micros",
    "parse_block",
    "runs_for_block",
    "timeline",
    "timeline_rows",
]

Moment = datetime | timedelta
"""A point in time: an aware datetime, or a timedelta meaning that long ago."""

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_OUTCOMES = (".succeeded", ".failed")


@dataclass(frozen=True, slots=True)
class BlockRunSummary:
    """How one flow run used a block document.

    Attributes:
        flow_run_id: The flow run's id; None for calls made outside any flow run.
        flow_run_name: The flow run's name, when it had one.
        first_used: When the run's first event involving the document occurred.
        last_used: When its last one occurred.
        calls: Method calls that involved the document (``started`` events).
        failures: Those that failed (``failed`` events).
        last_error_type: The error type of the run's latest failure, or None.
    """

    flow_run_id: str | None
    flow_run_name: str | None
    first_used: datetime
    last_used: datetime
    calls: int
    failures: int
    last_error_type: str | None


@dataclass(frozen=True, slots=True)
class BlockSummary:
    """A block as the event store has seen it, over every run.

    Attributes:
        block: ``slug/name`` for a saved block document, the slug alone for the
            unsaved blocks of that type.
        block_type: The block type's slug.
        name: The document's name; None for unsaved blocks.
        runs: Flow runs that used it (calls outside any flow run make no run).
        calls: Method calls that involved it, as the resource or as a related
            ``nested-block``.
        failures: Those calls that failed.
        first_used: When its first event occurred (aware, UTC).
        last_used: When its latest event occurred.
    """

    block: str
    block_type: str
    name: str | None
    runs: int
    calls: int
    failures: int
    first_used: datetime
    last_used: datetime


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One method call in a flow run's timeline.

    Attributes:
        event_id: The id of the call's ``started`` event (of its outcome when the
            ``started`` event was not stored).
        block: ``slug/name`` for a saved block, the slug for an unsaved one, or the
            resource id for any other resource.
        method: The method called, such as ``read_path``.
        started: When the call started (aware, UTC).
        duration_ms: How long it took; None while it is still running.
        outcome: ``succeeded``, ``failed`` or ``running`` (no outcome stored yet).
        error_type: The exception's qualified class name, when it failed.
        error_message: Its message (secrets masked), when it failed.
        caller: The ``started`` event id of the call that made this one, if any.
        task_run_id: The task run the call was made in, if any.
        task_run_name: That task run's name.
        outcome_event_id: The id of the call's ``succeeded`` or ``failed`` event
            (its payload holds the error and the detail); None while running.
    """

    event_id: str
    block: str
    method: str
    started: datetime
    duration_ms: float | None
    outcome: Literal["succeeded", "failed", "running"]
    error_type: str | None
    error_message: str | None
    caller: str | None
    task_run_id: str | None = None
    task_run_name: str | None = None
    outcome_event_id: str | None = None

    @classmethod
    def from_row(cls, row: TimelineRow) -> CallRecord:
        """The call of one of :meth:`SQLEventStore.timeline_rows`'s tuples."""
        return cls(
            row[1],
            row[2],
            row[3],
            _EPOCH + timedelta(microseconds=row[0]),
            *row[4:],
        )


TimelineRow = tuple[
    int,
    str,
    str,
    str,
    float | None,
    Literal["succeeded", "failed", "running"],
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
]
"""One call of a run's timeline as a plain tuple: ``(started_us, event_id, block,
method, duration_ms, outcome, error_type, error_message, caller, task_run_id,
task_run_name, outcome_event_id)``, ``started_us`` being microseconds since the
Unix epoch (UTC) and the rest :class:`CallRecord`'s fields in its order."""


def parse_block(block: str) -> tuple[str, str | None]:
    """Split ``"slug/name"`` (or a bare ``"slug"``) into its parts.

    Raises:
        ValueError: ``block`` is not of that form.
    """
    slug, sep, name = block.partition("/")
    if not _SLUG.match(slug) or (sep and not name):
        raise ValueError(
            f"block must be 'block-type/name' (such as 's3-bucket/raw') or a "
            f"block type slug, not {block!r}"
        )
    return slug, (name if sep else None)


def moment_micros(value: Moment, argument: str) -> int:
    """Return ``value`` as microseconds since the epoch.

    Raises:
        ValueError: A naive datetime, or something that is not a moment.
    """
    if isinstance(value, timedelta):
        return to_micros(datetime.now(UTC) - value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"{argument} must be timezone-aware (such as "
                f"datetime.now(UTC)) or a timedelta, not a naive datetime"
            )
        return to_micros(value)
    raise ValueError(
        f"{argument} must be a timezone-aware datetime or a timedelta, "
        f"not {type(value).__name__}"
    )


def like_pattern(pattern: str) -> str:
    """Translate a glob (``*``, ``?``) into a LIKE pattern with ``\\`` escapes."""
    out = []
    for char in pattern:
        if char in "\\%_":
            out.append("\\" + char)
        elif char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append(char)
    return "".join(out)


def block_clause(block: str) -> sa.ColumnElement[bool]:
    """Events where the block is the resource or a related ``nested-block``."""
    slug, name = parse_block(block)
    t, links = events_table.c, event_links.c
    own = t.block_type == slug
    linked = links.block_type == slug
    if name is not None:
        own = sa.and_(own, t.resource_name == name)
        linked = sa.and_(linked, links.name == name)
    return sa.or_(own, t.id.in_(sa.select(links.event_id).where(linked)))


def event_filters(
    *,
    block: str | None,
    resource_id: str | None,
    flow_run: str | None,
    name: str | None,
    failed: bool | None,
    since: Moment | None,
    until: Moment | None,
) -> list[sa.ColumnElement[bool]]:
    """Return the WHERE clauses of an ``events(...)`` query."""
    t = events_table.c
    where: list[sa.ColumnElement[bool]] = []
    if block is not None:
        where.append(block_clause(block))
    if resource_id is not None:
        where.append(t.resource_id == resource_id)
    if flow_run is not None:
        where.append(t.flow_run_id == flow_run)
    if name is not None:
        if not name:
            raise ValueError("name must be a non-empty glob such as 'block.*.failed'")
        where.append(t.event.like(like_pattern(name), escape="\\"))
    if failed is True:
        where.append(t.event.like("%.failed"))
    elif failed is False:
        where.append(t.event.not_like("%.failed"))
    if since is not None:
        where.append(t.occurred_us >= moment_micros(since, "since"))
    if until is not None:
        where.append(t.occurred_us < moment_micros(until, "until"))
    return where


def runs_for_block(conn: Connection, block: str) -> list[BlockRunSummary]:
    """Return the runs that used ``block``, oldest use first, from their summaries."""
    slug, name = parse_block(block)
    b = run_blocks_table.c
    where = [b.block_type == slug]
    if name is not None:
        where.append(b.name == name)
    grouped = conn.execute(
        sa.select(
            b.run_id,
            sa.func.max(b.run_name),
            sa.func.min(b.first_us),
            sa.func.max(b.last_us),
            sa.func.sum(b.calls),
            sa.func.sum(b.failures),
        )
        .where(*where)
        .group_by(b.run_id)
    ).all()
    last_errors: dict[str, tuple[int, str | None]] = {}
    if any(failed for *_, failed in grouped):
        for run_key, at, error in conn.execute(
            sa.select(b.run_id, b.last_error_us, b.last_error_type).where(
                *where, b.last_error_us.is_not(None)
            )
        ):
            if run_key not in last_errors or at >= last_errors[run_key][0]:
                last_errors[run_key] = (at, error)
    summaries = [
        BlockRunSummary(
            flow_run_id=run_key or None,
            flow_run_name=run_name,
            first_used=from_micros(first),
            last_used=from_micros(last),
            calls=int(calls or 0),
            failures=int(failed or 0),
            last_error_type=last_errors.get(run_key, (0, None))[1],
        )
        for run_key, run_name, first, last, calls, failed in grouped
        # Outside any flow run, only calls count: a document saved or loaded by
        # a script is not a use worth a row.
        if run_key or calls
    ]
    summaries.sort(key=lambda s: (s.first_used, s.flow_run_id or ""))
    return summaries


def block_summaries(conn: Connection) -> list[BlockSummary]:
    """Return every block seen in events, by type and name, from the summaries."""
    b = run_blocks_table.c
    in_a_run = sa.case((b.run_id != "", 1), else_=0)
    rows = conn.execute(
        sa.select(
            b.block_type,
            b.name,
            sa.func.sum(in_a_run),
            sa.func.sum(b.calls),
            sa.func.sum(b.failures),
            sa.func.min(b.first_us),
            sa.func.max(b.last_us),
        )
        # Outside any flow run, only calls count (as in runs_for_block).
        .where(sa.or_(b.run_id != "", b.calls > 0))
        .group_by(b.block_type, b.name)
        .order_by(b.block_type, b.name)
    ).all()
    return [
        BlockSummary(
            block=f"{slug}/{name}" if name else slug,
            block_type=slug,
            name=name or None,
            runs=int(runs or 0),
            calls=int(calls or 0),
            failures=int(failures or 0),
            first_used=from_micros(first),
            last_used=from_micros(last),
        )
        for slug, name, runs, calls, failures, first, last in rows
    ]


def block_events(
    conn: Connection,
    block: str,
    where: list[sa.ColumnElement[bool]],
    limit: int | None,
    descending: bool,
) -> list[Any]:
    """Return the rows of events that involved ``block``, in time order.

    Two indexed reads, each stopping at ``limit``: the events whose resource is
    the document, and those where it is a related ``nested-block``; then merged.
    """
    slug, name = parse_block(block)
    t, links = events_table.c, event_links.c

    def ordered(time: Any, key: Any) -> tuple[Any, Any]:
        return (time.desc(), key.desc()) if descending else (time, key)

    own = select_events().where(t.block_type == slug, *where)
    linked = (
        sa.select(*event_columns())
        .select_from(events_with_parts().join(event_links, links.event_id == t.id))
        .where(links.block_type == slug, *where)
    )
    if name is not None:
        own = own.where(t.resource_name == name)
        linked = linked.where(links.name == name)
    own = own.order_by(*ordered(t.occurred_us, t.id))
    linked = linked.order_by(*ordered(links.occurred_us, links.event_id))
    if limit is not None:
        own, linked = own.limit(limit), linked.limit(limit)
    rows = {row.id: row for row in conn.execute(own)}
    for row in conn.execute(linked):
        rows.setdefault(row.id, row)
    merged = sorted(
        rows.values(), key=lambda r: (r.occurred_us, r.id), reverse=descending
    )
    return merged if limit is None else merged[:limit]


def _caller_and_task(related_json: str) -> tuple[str | None, str | None, str | None]:
    caller = task_id = task_name = None
    for related in json.loads(related_json or "[]"):
        role = related.get("role")
        if role == "caller" and caller is None:
            caller = str(related["id"]).removeprefix("event.")
        elif role == "task-run" and task_id is None:
            task_id = str(related["id"]).removeprefix("task-run.")
            task_name = related.get("name")
    return caller, task_id, task_name


# What the store writes for an outcome whose payload is its duration alone:
# '{"duration_ms":12.5}'.
_DURATION_ONLY = '{"duration_ms":'
_DURATION_AT = len(_DURATION_ONLY)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _outcome_detail(
    payload_json: str,
) -> tuple[float | None, str | None, str | None]:
    """An outcome payload's duration, error type and error message."""
    payload = json.loads(payload_json)
    raw = payload.get("duration_ms")
    duration = float(raw) if isinstance(raw, int | float) else None
    error = payload.get("error")
    if isinstance(error, dict):
        return duration, error.get("type"), error.get("message")
    return duration, None, None


def _with_shared_related(conn: Connection, rows: Sequence[Any]) -> Sequence[Any]:
    """Put the related resources of the rows that name their parts in place
    (``rows`` as :func:`timeline_rows` selects them), each parts row read once."""
    keys = {row[9] for row in rows if row[9] is not None}
    if not keys:
        return rows
    p = event_parts.c
    shared: dict[str, str] = {}
    ordered = sorted(keys)
    for start in range(0, len(ordered), 500):
        shared.update(
            conn.execute(
                sa.select(p.id, p.related).where(p.id.in_(ordered[start : start + 500]))
            ).all()
        )
    return [
        row if row[9] is None else (*row[:7], shared.get(row[9], "[]"), *row[8:])
        for row in rows
    ]


def timeline(conn: Connection, flow_run_id: str) -> list[CallRecord]:
    """Return the flow run's calls, each ``started`` paired with its outcome."""
    return [CallRecord.from_row(row) for row in timeline_rows(conn, flow_run_id)]


def timeline_rows(conn: Connection, flow_run_id: str) -> list[TimelineRow]:
    """Return the flow run's calls as tuples (:data:`TimelineRow`), in order.

    A run of 10,000 calls must answer in well under 200 ms, so the rows come as
    the driver's tuples, each ``started`` event brings its related resources (not
    its empty payload) and each outcome its payload (not its related resources),
    and the parts that repeat from call to call (the related resources' JSON, a
    block's label) are read once.
    """
    t = events_table.c
    started_row = t.follows.is_(None)
    result = conn.execute(
        sa.select(
            t.id,
            t.occurred_us,
            t.event,
            t.resource_id,
            t.resource_name,
            t.block_type,
            t.follows,
            sa.case((started_row, t.related), else_=sa.null()),
            sa.case((started_row, sa.null()), else_=t.payload),
            sa.case((started_row, t.parts), else_=sa.null()),
        )
        # Every event of the run (the few that are not calls are left out below,
        # cheaper than by name in SQL), by time alone as the index gives them:
        # ties are put in order at the end.
        .where(t.flow_run_id == flow_run_id)
        .order_by(t.occurred_us)
    )
    # The driver's own tuples: SQLAlchemy's rows cost more (the columns need no
    # conversion: text and integers).
    cursor = result.cursor
    assert cursor is not None
    rows: Sequence[Any] = cursor.fetchall()
    result.close()
    rows = _with_shared_related(conn, rows)
    outcomes: dict[str, Any] = {}
    started_rows: list[Any] = []
    for row in rows:
        if row[6] is None:
            if row[2].endswith(".started"):
                started_rows.append(row)
        elif row[2].endswith(_OUTCOMES):
            outcomes[row[6]] = row
    pairs: list[tuple[Any, Any]] = [
        (row, outcomes.pop(row[0], None)) for row in started_rows
    ]
    # Outcomes whose started event was not stored (a full queue dropped it, or it
    # was pruned): the call still shows, dated by its duration.
    pairs += [(None, outcome) for outcome in outcomes.values()]
    orphans = [outcome[0] for started, outcome in pairs if started is None]
    related_of: dict[str, str] = {}
    if orphans:
        for start in range(0, len(orphans), 500):
            related_of.update(
                conn.execute(
                    sa.select(t.id, event_columns()[10])
                    .select_from(events_with_parts())
                    .where(t.id.in_(orphans[start : start + 500]))
                ).all()
            )
    # What a call shares with others of the same method on the same resource in
    # the same context: (block, method, caller, task_run_id, task_run_name).
    shared: dict[tuple[Any, ...], tuple[str, str, str | None, str | None, str | None]]
    shared = {}
    calls: list[TimelineRow] = []
    append = calls.append
    for started, outcome in pairs:
        if started is not None:
            row = started
            key = (row[2], row[3], row[4], row[5], row[7])
        else:
            row = outcome
            key = (row[2], row[3], row[4], row[5], related_of[row[0]])
        common = shared.get(key)
        if common is None:
            common = shared[key] = (
                block_label(row[3], row[4], row[5]),
                row[2].rpartition(".")[0].rpartition(".")[2],
                *_caller_and_task(key[4]),
            )
        duration = error_type = error_message = outcome_id = None
        state: Literal["succeeded", "failed", "running"] = "running"
        if outcome is not None:
            payload = outcome[8]
            # The usual payload, read without the JSON decoder.
            if payload.startswith(_DURATION_ONLY) and "," not in payload:
                try:
                    duration = float(payload[_DURATION_AT:].rstrip("}"))
                except ValueError:
                    duration, error_type, error_message = _outcome_detail(payload)
            else:
                duration, error_type, error_message = _outcome_detail(payload)
            state = "failed" if outcome[2].endswith(".failed") else "succeeded"
            h = outcome[0]
            outcome_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
            if started is None:
                start_us = outcome[1] - round((duration or 0.0) * 1000)
            else:
                start_us = started[1]
        else:
            start_us = started[1]
        h = row[0]
        append(
            (
                start_us,
                f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",
                common[0],
                common[1],
                duration,
                state,
                error_type,
                error_message,
                common[2],
                common[3],
                common[4],
                outcome_id,
            )
        )
    # Plain tuples sort by their first items (time, then the unique id) in C.
    calls.sort()
    return calls
