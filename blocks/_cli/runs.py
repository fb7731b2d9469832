"""``eventblocks runs``: the flow runs in the event store, found as people name them.

- ``runs ls``: the latest runs, one line each (short id, name, start, duration,
  calls, failures, the first failure), filtered by name, failure, age or source;
- ``runs show RUN``: a run's header and its calls, grouped under task runs.

``RUN`` is a full run id, the short id that ``runs ls`` shows, a unique id prefix of
at least 6 characters, or a run name (the latest run of that name). Both read the
run summaries that the store keeps as events are written.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from blocks._cli.events import parse_duration, query_store, record_json
from blocks._cli.output import (
    JsonOption,
    LimitOption,
    console,
    help_without_command,
    iso,
    key_values,
    print_json,
    when,
)
from emitters import Event
from emitters._sdk import INFRA_PREFIX, first_failure, infra_failure, run_short_id
from emitters.sql import CallRecord, RunSummary, SQLEventStore

__all__ = ["run_json", "runs_app", "took"]

runs_app = typer.Typer(
    name="runs",
    help="List the flow runs in the event store, and show one run's calls.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@runs_app.callback()
def _runs(ctx: typer.Context) -> None:
    """List the flow runs in the event store, and show one run's calls."""
    help_without_command(ctx)


def took(duration: timedelta | float | None) -> str:
    """Return a duration for people: ``850ms``, ``12.3s``, ``4m05s``, ``2h03m``."""
    if duration is None:
        return ""
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _failure(run: RunSummary) -> str:
    failure = run.first_failure
    text = ""
    if failure is not None:
        text = f"{failure.block}.{failure.method}"
        if failure.error_type:
            text += f": {failure.error_type}"
    if run.events_lost:
        text = f"{text}; {run.events_lost} lost" if text else f"{run.events_lost} lost"
    return text


def run_json(run: RunSummary) -> dict[str, Any]:
    """Return a run summary as ``runs ls --json`` prints it."""
    data = asdict(run)
    data["started"] = iso(run.started)
    data["last_event"] = iso(run.last_event)
    data["duration_s"] = run.duration.total_seconds()
    del data["duration"]
    if run.first_failure is not None:
        data["first_failure"]["occurred"] = iso(run.first_failure.occurred)
    return data


def _grid(*columns: tuple[str, str, int | None]) -> Table:
    """A borderless table that fits 80 columns: (header, justify, max width)."""
    grid = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    for header, justify, width in columns:
        grid.add_column(
            header,
            justify=justify,  # type: ignore[arg-type]
            max_width=width,
            no_wrap=width is not None,
            overflow="ellipsis" if width is not None else "fold",
        )
    return grid


def list_runs(
    name: Annotated[
        str | None,
        typer.Option("--name", help="Only runs whose name matches a glob: nightly-*"),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only runs with a failed call.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only runs started within a duration: 2h, 7d."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source", help="Only runs from: eventblocks, prefect, airflow, ..."
        ),
    ] = None,
    limit: LimitOption = 20,
    as_json: JsonOption = False,
) -> None:
    """List the latest flow runs, latest first: calls, failures, first failure."""
    age = parse_duration(since) if since is not None else None
    runs = query_store(
        lambda store: store.runs(
            name=name,
            failed=True if failed else None,
            since=age,
            source=source,
            limit=limit,
        )
    )
    if as_json:
        print_json([run_json(run) for run in runs])
        return
    out = console()
    if not runs:
        filtered = any((name, failed, since, source))
        out.print("No runs match." if filtered else "No runs stored.")
        return
    grid = _grid(
        ("id", "left", 8),
        ("name", "left", 16),
        ("started UTC", "left", 11),
        ("took", "right", 6),
        ("calls", "right", 5),
        ("fail", "right", 4),
        ("first failure", "left", None),
    )
    for run in runs:
        style = "red" if run.failures or run.events_lost else ""
        grid.add_row(
            Text(run.short_id),
            Text(run.name or ""),
            Text(f"{run.started:%m-%d %H:%M}"),
            Text(took(run.duration)),
            Text(str(run.calls)),
            Text(str(run.failures), style=style),
            Text(_failure(run), style=style),
        )
    out.print(grid)


def _groups(records: list[CallRecord]) -> list[tuple[CallRecord | None, CallRecord]]:
    """Pair each call with the call that opens its task run's group (or None)."""
    out: list[tuple[CallRecord | None, CallRecord]] = []
    current: str | None = None
    for record in records:
        opens = record.task_run_id is not None and record.task_run_id != current
        current = record.task_run_id
        out.append((record if opens else None, record))
    return out


def show_run(
    run: Annotated[
        str,
        typer.Argument(
            metavar="RUN",
            help="A run id, the short id of 'runs ls', an id prefix, or a run name.",
            show_default=False,
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Show a flow run: its header, then its calls in the order they started."""

    def read(
        store: SQLEventStore,
    ) -> tuple[RunSummary, list[CallRecord], list[Event]]:
        found = store.find_run(run)
        infra = store.events(
            flow_run=found.id, name=f"{INFRA_PREFIX}*", limit=_INFRA_SHOWN
        )
        return found, store.timeline(found.id), infra

    found, records, infra = query_store(read)
    # A call's, or the infrastructure's when it came first (an evicted pod).
    first = first_failure(records, infra)
    if as_json:
        print_json(
            {
                "run": run_json(found),
                "calls": [record_json(r, r.event_id == first) for r in records],
                "infrastructure": [_infra_json(e, str(e.id) == first) for e in infra],
            }
        )
        return
    out = console()
    labels = ", ".join(f"{k}={v}" for k, v in sorted(found.labels.items()))
    header = [
        ("name", found.name or "-"),
        ("id", found.id),
        ("source", found.source),
        ("labels", labels or "-"),
        ("started", when(found.started)),
        ("duration", took(found.duration) or "0ms"),
        ("calls", f"{found.calls}, {found.failures} failed"),
    ]
    if found.first_failure is not None:
        header.append(("first failure", _failure(found)))
    if found.events_lost:
        header.append(("events lost", str(found.events_lost)))
    out.print(Text(f"Run {found.name or found.short_id}", style="bold"))
    out.print(key_values(header))
    if not records and not infra:
        out.print("No calls stored for this run.")
        return
    grid = _grid(
        ("#", "right", 5),
        ("at", "right", 9),
        ("call", "left", None),
        ("took", "right", 8),
        ("outcome", "left", None),
    )
    start = found.started
    pending = sorted(infra, key=lambda e: e.occurred)

    def infra_rows(until: datetime | None) -> None:
        # Infrastructure events, in their own lane, where they fall in time.
        while pending and (until is None or pending[0].occurred <= until):
            event = pending.pop(0)
            state = event.event.rpartition(".")[2]
            what = infra_failure(event.event, _payload_text(event))
            outcome = Text(state, style="red" if what else "blue")
            if what and what != state:
                outcome.append(f" {what}", style="red")
            if str(event.id) == first:
                outcome.append("  <- first failure", style="bold red")
            offset = (event.occurred - start).total_seconds()
            grid.add_row(
                Text("infra", style="blue"),
                Text(f"+{offset:.3f}s"),
                Text(f"[{event.resource.name or event.resource.id}]", style="blue"),
                Text(""),
                outcome,
            )

    for index, (opens, r) in enumerate(_groups(records), 1):
        infra_rows(r.started)
        if opens is not None:
            name = opens.task_run_name or "task run"
            grid.add_row(
                Text(""),
                Text(""),
                Text(f"{name} ({run_short_id(opens.task_run_id or '')})", style="bold"),
                Text(""),
                Text(""),
            )
        indent = "  " if r.task_run_id is not None else ""
        outcome = Text(r.outcome, style="red" if r.outcome == "failed" else "green")
        if r.error_type:
            outcome.append(f" {r.error_type}", style="red")
        if r.event_id == first:
            outcome.append("  <- first failure", style="bold red")
        offset = (r.started - start).total_seconds()
        grid.add_row(
            Text(str(index)),
            Text(f"+{offset:.3f}s"),
            Text(f"{indent}{r.block}.{r.method}"),
            Text(took(None if r.duration_ms is None else r.duration_ms / 1000)),
            outcome,
        )
    infra_rows(None)
    out.print(grid)


# At most this many infrastructure events of one run are shown.
_INFRA_SHOWN = 1000


def _payload_text(event: Event) -> str:
    return json.dumps(event.payload)


def _infra_json(event: Event, first: bool) -> dict[str, Any]:
    return {
        "event_id": str(event.id),
        "event": event.event,
        "resource": event.resource.id,
        "resource_name": event.resource.name,
        "occurred": event.occurred.isoformat(),
        "failure": infra_failure(event.event, _payload_text(event)),
        "first_failure": first,
    }


runs_app.command("ls")(list_runs)
runs_app.command("show")(show_run)
