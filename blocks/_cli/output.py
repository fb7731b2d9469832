"""How the command line writes its results: rich tables for people, JSON for tools.

Every value that comes from the database or from user code reaches the terminal as
a ``rich.text.Text`` or through a console with markup off, so a document named
``[red]x`` prints as it is spelt. JSON goes straight to stdout, never through rich,
so that it is not wrapped at the terminal's width.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from emitters._sdk import MASK

__all__ = [
    "MASK",
    "JsonOption",
    "LimitOption",
    "cells",
    "console",
    "help_without_command",
    "iso",
    "key_values",
    "print_json",
    "shown",
    "table",
    "when",
]

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON instead of a table.")
]
"""The ``--json`` flag of every listing and inspect command."""

LimitOption = Annotated[
    int, typer.Option("--limit", min=1, help="At most this many (the latest).")
]
"""The ``--limit`` option of the listings of the latest events and runs (each
command gives its own default)."""

# Wide enough for ids and class paths when the output goes to a file or a pipe,
# where rich would otherwise assume 80 columns and fold the table's cells.
_PIPE_WIDTH = 200


def console() -> Console:
    """Return a stdout console that prints text as given (no markup, no emoji)."""
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else _PIPE_WIDTH
    return Console(markup=False, emoji=False, highlight=False, width=width)


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout (datetimes as ISO 8601)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    sys.stdout.write("\n")


def iso(moment: datetime) -> str:
    """Return ``moment`` as ISO 8601, as the JSON outputs spell times."""
    return moment.isoformat()


def when(moment: datetime) -> str:
    """Return ``moment`` for people: to the second, in UTC."""
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def shown(value: Any) -> str:
    """Return a field value as one cell: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def table(*columns: str, whole: tuple[str, ...] = ()) -> Table:
    """Return a rich table with these column headers.

    Cells fold to fit the terminal, except in the ``whole`` columns (ids, which
    are copied and pasted), which other columns make room for.
    """
    grid = Table(show_edge=True)
    for column in columns:
        if column in whole:
            grid.add_column(column, no_wrap=True, min_width=len(column))
        else:
            grid.add_column(column, overflow="fold")
    return grid


def key_values(rows: list[tuple[str, str]]) -> Text:
    """Return labels and values as aligned lines (no table: nothing is padded)."""
    width = max((len(label) for label, _ in rows), default=0)
    out = Text()
    for index, (label, value) in enumerate(rows):
        if index:
            out.append("\n")
        out.append(label.ljust(width), style="bold")
        out.append(f"  {value}")
    return out


def cells(*values: str) -> list[Text]:
    """Return ``values`` as rich texts, so that no markup in them is interpreted."""
    return [Text(value) for value in values]


def help_without_command(ctx: typer.Context) -> None:
    """Print a command group's help and exit 0 when no command was given."""
    if ctx.invoked_subcommand is None and not ctx.resilient_parsing:
        # typer's rich help prints itself and returns ""; plain help is returned.
        text = ctx.get_help()
        if text:
            sys.stdout.write(text + "\n")
        raise typer.Exit()
