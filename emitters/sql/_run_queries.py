"""Finding runs in their summaries: listing them, and a run as people name it.

A run is named by its full id, its short id (the last 8 characters that listings
show), a prefix of its id of at least 6 characters, or its name (the latest run of
that name). Each form is an indexed lookup.
"""

from __future__ import annotations

import difflib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from emitters.sql._queries import like_pattern
from emitters.sql._runs import RunSummary, summary_from_row
from emitters.sql._tables import runs_table

__all__ = ["MIN_PREFIX", "RunLookupError", "find_run", "get_run", "list_runs"]

MIN_PREFIX = 6
_SHOWN = 5  # candidates named in an error


class RunLookupError(LookupError):
    """No stored run matches a reference, or its id part matches several runs.

    The message says what was tried and names the candidates.

    Attributes:
        ref: The reference as it was given.
        ambiguous: True when several runs match, False when none does.
        candidates: The runs the message names: those that match an ambiguous
            reference, else the runs of names close to it, else the latest runs
            (at most 5 of each kind).
    """

    def __init__(
        self,
        message: str,
        *,
        ref: str,
        ambiguous: bool,
        candidates: tuple[RunSummary, ...] = (),
    ) -> None:
        super().__init__(message)
        self.ref = ref
        self.ambiguous = ambiguous
        self.candidates = candidates


def list_runs(
    conn: Connection,
    *,
    name: str | None,
    failed: bool | None,
    since_us: int | None,
    source: str | None,
    limit: int | None,
    until_us: int | None = None,
) -> list[RunSummary]:
    """Return run summaries, the latest started first."""
    r = runs_table.c
    query = sa.select(runs_table)
    if until_us is not None:
        query = query.where(r.first_us < until_us)
    if name is not None:
        query = query.where(r.name.like(like_pattern(name), escape="\\"))
    if failed is True:
        query = query.where(r.failures > 0)
    elif failed is False:
        query = query.where(r.failures == 0)
    if since_us is not None:
        query = query.where(r.first_us >= since_us)
    if source is not None:
        query = query.where(r.source == source)
    query = query.order_by(r.first_us.desc(), r.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [summary_from_row(row) for row in conn.execute(query)]


def get_run(conn: Connection, run_id: str) -> RunSummary | None:
    """Return the summary of the run with exactly this id, or None."""
    row = conn.execute(sa.select(runs_table).where(runs_table.c.id == run_id)).first()
    return None if row is None else summary_from_row(row)


def _rows(conn: Connection, *where: Any, limit: int = _SHOWN + 1) -> list[Any]:
    r = runs_table.c
    query = (
        sa.select(runs_table)
        .where(*where)
        .order_by(r.first_us.desc(), r.id.desc())
        .limit(limit)
    )
    return list(conn.execute(query))


def _next_prefix(prefix: str) -> str:
    """The smallest string after every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _describe(rows: list[Any]) -> str:
    shown = []
    for row in rows[:_SHOWN]:
        started = summary_from_row(row).started
        shown.append(f"{row.id} ({row.name or 'no name'}, {started:%Y-%m-%d %H:%M})")
    more = ", ..." if len(rows) > _SHOWN else ""
    return ", ".join(shown) + more


def find_run(conn: Connection, ref: str) -> RunSummary:
    """Return the run that ``ref`` names (see the module's docstring).

    Raises:
        RunLookupError: No run matches, or the id part matches several runs; the
            message says what was tried and names the candidates.
    """
    text = ref.strip().removeprefix("flow-run.")
    if not text:
        raise ValueError("RUN must be a run id, a short id, an id prefix or a name")
    r = runs_table.c
    exact = get_run(conn, text)
    if exact is not None:
        return exact
    ambiguous: list[tuple[str, list[Any]]] = []
    tried = ["full id"]
    if len(text) <= 16:
        tried.append("short id")
        short = _rows(conn, r.short_id.in_({text, text.lower()}))
        if len(short) == 1:
            return summary_from_row(short[0])
        if short:
            ambiguous.append(("short id", short))
    if len(text) >= MIN_PREFIX:
        tried.append("id prefix")
        prefixed = _rows(conn, r.id >= text, r.id < _next_prefix(text))
        if len(prefixed) == 1:
            return summary_from_row(prefixed[0])
        if prefixed:
            ambiguous.append(("id prefix", prefixed))
    else:
        tried.append(f"id prefix (needs {MIN_PREFIX} characters or more)")
    tried.append("run name")
    named = _rows(conn, r.name == text, limit=1)
    if named:
        return summary_from_row(named[0])
    if ambiguous:
        parts = [
            f"the {kind} matches {'more than ' if len(rows) > _SHOWN else ''}"
            f"{min(len(rows), _SHOWN)} runs: {_describe(rows)}"
            for kind, rows in ambiguous
        ]
        raise RunLookupError(
            f"Run {ref!r} is ambiguous: {'; '.join(parts)}. "
            "Give more of the id, or the full id.",
            ref=ref,
            ambiguous=True,
            candidates=tuple(
                summary_from_row(row) for _, rows in ambiguous for row in rows[:_SHOWN]
            ),
        )
    names = [
        n
        for (n,) in conn.execute(
            sa.select(r.name).where(r.name.is_not(None)).distinct().limit(10_000)
        )
    ]
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.6)
    if close:
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?"
        shown = [row for c in close for row in _rows(conn, r.name == c, limit=1)]
    else:
        shown = _rows(conn)
        hint = (
            f" Latest runs: {_describe(shown)}."
            if shown
            else " The store holds no runs."
        )
    raise RunLookupError(
        f"No run matches {ref!r} (tried: {', '.join(tried)}).{hint}",
        ref=ref,
        ambiguous=False,
        candidates=tuple(summary_from_row(row) for row in shown[:_SHOWN]),
    )
