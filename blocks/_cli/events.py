"""``eventblocks events``: what the event store holds, from a run's or a block's side.

- ``events ls``: the latest events, filtered by block, flow run, name or failure;
- ``events runs --block SLUG/NAME``: the flow runs that used a block document;
- ``events timeline --flow-run ID``: a run's calls in order, with durations and
  outcomes, its first failure marked;
- ``events ingest --from nats://HOST:PORT``: store what workers publish to a NATS
  JetStream stream (see :mod:`blocks._cli.ingest`).

They read the store that scripts write to by default: the home database, or
``EVENTBLOCKS_DATABASE_URL``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import typer
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from blocks._cli.errors import CommandError, CommandUsageError
from blocks._cli.ingest import ingest_events
from blocks._cli.output import (
    JsonOption,
    LimitOption,
    console,
    help_without_command,
    iso,
    print_json,
    table,
    when,
)
from blocks._cli.types import unknown_type
from blocks._documents.operations import not_found_error
from blocks._documents.store import DocumentStore
from blocks._registry import registered_types
from emitters import Event
from emitters.sql import CallRecord, SQLEventStore

__all__ = [
    "events_app",
    "first_failed_call",
    "parse_duration",
    "query_store",
    "record_json",
]

events_app = typer.Typer(
    name="events",
    help="Show stored events: the latest, a block's runs, a run's timeline; "
    "ingest them from NATS.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@events_app.callback()
def _events(ctx: typer.Context) -> None:
    """Show stored events: the latest, a block's runs, a run's timeline."""
    help_without_command(ctx)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(?:\d+[smhdw])+$")


def parse_duration(text: str) -> timedelta:
    """Parse ``30m``, ``2h``, ``7d`` (or ``1h30m``) into a timedelta.

    Raises:
        CommandUsageError: Anything else.
    """
    compact = text.strip().lower()
    if not _DURATION.match(compact):
        raise CommandUsageError(
            f"--since takes a duration such as 30m, 2h or 7d (units s, m, h, d, w), "
            f"not {text!r}."
        )
    seconds = sum(
        int(number) * _UNITS[unit]
        for number, unit in re.findall(r"(\d+)([smhdw])", compact)
    )
    return timedelta(seconds=seconds)


T = TypeVar("T")


@contextmanager
def _store() -> Iterator[SQLEventStore]:
    store = SQLEventStore()
    try:
        yield store
    except SQLAlchemyError as exc:
        cause = type(getattr(exc, "orig", None) or exc).__name__
        raise CommandError(
            f"Cannot read events from {store.display_url} ({cause})."
        ) from None


def query_store(action: Callable[[SQLEventStore], T]) -> T:
    """Run ``action`` on the home event store; a database error is one line."""
    with _store() as store:
        return action(store)


def _subject(event: Event) -> str:
    labels = event.resource.labels
    block_type = labels.get("block-type")
    if block_type and event.resource.name:
        return f"{block_type}/{event.resource.name}"
    return block_type or event.resource.id


def _ms(duration: float) -> str:
    return f"{duration:.3f} ms" if duration < 1 else f"{duration:,.1f} ms"


def _detail(event: Event) -> str:
    payload = event.payload
    parts = []
    if isinstance(payload.get("duration_ms"), int | float):
        parts.append(_ms(payload["duration_ms"]))
    error = payload.get("error")
    if isinstance(error, dict) and error.get("type"):
        parts.append(str(error["type"]))
    return ", ".join(parts)


def _run_of(event: Event) -> str:
    runs = event.related_by_role("flow-run")
    if not runs:
        return ""
    run = runs[0]
    run_id = run.id.removeprefix("flow-run.")
    return f"{run.name} ({run_id})" if run.name else run_id


def list_events(
    block: Annotated[
        str | None,
        typer.Option("--block", help="Only events of this block: SLUG/NAME."),
    ] = None,
    flow_run: Annotated[
        str | None,
        typer.Option(
            "--flow-run",
            metavar="RUN",
            help="Only events of this run: id, short id, id prefix or name.",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Only event names matching a glob: block.*.failed"),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only failed calls.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only events newer than a duration: 30m, 2h, 7d."),
    ] = None,
    limit: LimitOption = 50,
    as_json: JsonOption = False,
) -> None:
    """List the latest stored events, oldest of them first."""
    age = parse_duration(since) if since is not None else None
    run_id = None
    if flow_run is not None:
        run_id = query_store(lambda store: store.find_run(flow_run).id)
    found = query_store(
        lambda store: store.events(
            block=block,
            flow_run=run_id,
            name=name,
            failed=True if failed else None,
            since=age,
            limit=limit,
            order="desc",
        )
    )
    found.reverse()
    if as_json:
        print_json([event.model_dump(mode="json") for event in found])
        return
    out = console()
    if not found:
        out.print("No events match.")
        return
    grid = table("occurred", "event", "block", "flow run", "detail")
    for event in found:
        style = "red" if event.event.endswith(".failed") else ""
        grid.add_row(
            Text(when(event.occurred)),
            Text(event.event, style=style),
            Text(_subject(event)),
            Text(_run_of(event)),
            Text(_detail(event)),
        )
    out.print(grid)


def _require_document(block: str) -> None:
    """Raise when ``block`` names no saved document (nor type), naming close ones."""
    slug, _, name = block.partition("/")
    store = DocumentStore()
    if store.get_type(slug) is None and slug not in registered_types():
        raise unknown_type(store, slug)
    if name and name not in store.document_names(slug):
        raise not_found_error(store, slug, name)


def block_runs(
    block: Annotated[
        str,
        typer.Option(
            "--block", help="The block document: SLUG/NAME.", show_default=False
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """List the flow runs that used a block document, and how its calls ended."""
    summaries = query_store(lambda store: store.runs_for_block(block))
    if not summaries:
        _require_document(block)
    if as_json:
        print_json(
            [
                {
                    **asdict(s),
                    "first_used": iso(s.first_used),
                    "last_used": iso(s.last_used),
                }
                for s in summaries
            ]
        )
        return
    out = console()
    if not summaries:
        out.print(f"No stored event involves {block}.")
        return
    grid = table(
        "flow run",
        "id",
        "first used (UTC)",
        "last used (UTC)",
        "calls",
        "failures",
        "last error",
        whole=("id",),
    )
    for s in summaries:
        style = "red" if s.failures else ""
        grid.add_row(
            Text(s.flow_run_name or ("(no flow run)" if s.flow_run_id is None else "")),
            Text(s.flow_run_id or ""),
            Text(f"{s.first_used:%Y-%m-%d %H:%M:%S}"),
            Text(f"{s.last_used:%Y-%m-%d %H:%M:%S}"),
            Text(str(s.calls)),
            Text(str(s.failures), style=style),
            Text(s.last_error_type or "", style=style),
        )
    out.print(grid)


def first_failed_call(records: list[CallRecord]) -> str | None:
    """The event id of a run's first failed call, or None if none failed."""
    return next((r.event_id for r in records if r.outcome == "failed"), None)


def record_json(record: CallRecord, first_failure: bool) -> dict[str, Any]:
    """Return a call of a run's timeline as the ``--json`` outputs print it."""
    data = asdict(record)
    data["started"] = iso(record.started)
    data["first_failure"] = first_failure
    return data


def run_timeline(
    flow_run: Annotated[
        str,
        typer.Option(
            "--flow-run",
            metavar="RUN",
            help="The run: id, short id, id prefix or name (the latest of it).",
            show_default=False,
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Show a flow run's calls in the order they started; mark the first failure."""
    flow_run = query_store(lambda store: store.find_run(flow_run).id)
    records = query_store(lambda store: store.timeline(flow_run))
    first = first_failed_call(records)
    if as_json:
        print_json([record_json(r, r.event_id == first) for r in records])
        return
    out = console()
    if not records:
        out.print(f"No calls stored for flow run {flow_run}.")
        return
    callers = {r.event_id for r in records}
    start = records[0].started
    grid = table(
        "#",
        "at",
        "block",
        "method",
        "duration",
        "outcome",
        "error",
        whole=("#", "at", "duration"),
    )
    for index, r in enumerate(records, 1):
        nested = r.caller is not None and r.caller in callers
        outcome = Text(r.outcome, style="red" if r.outcome == "failed" else "green")
        if r.event_id == first:
            outcome.append("  <- first failure", style="bold red")
        offset = (r.started - start).total_seconds()
        grid.add_row(
            Text(str(index)),
            Text(f"+{offset:.3f}s"),
            Text(r.block),
            Text(("  " if nested else "") + r.method),
            Text("" if r.duration_ms is None else _ms(r.duration_ms)),
            outcome,
            Text(
                ": ".join(x for x in (r.error_type, r.error_message) if x),
                style="red",
            ),
        )
    out.print(Text(f"Flow run {flow_run}, started {when(start)}"))
    out.print(grid)


events_app.command("ls")(list_events)
events_app.command("runs")(block_runs)
events_app.command("timeline")(run_timeline)
events_app.command("ingest")(ingest_events)
