"""The ``eventblocks`` command line (also ``python -m blocks``).

The commands live in their own modules (types, documents, create); this one builds
the typer app and turns what a command raises into one line on stderr and an exit
status:

- 0: success;
- 1: the operation failed (a ``BlockError``, a bad name or value, the database);
- 2: bad usage (an unknown command or option, a missing argument, a malformed
  ``--set``), as click reports it.

With ``--debug`` the traceback is printed too. Every message goes through the
secret redaction of :mod:`emitters`, so a value that a block or the ``create``
command registered as secret is printed as ``**********``.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass
from typing import Annotated

import typer
import typer.main
from pydantic import ValidationError

from blocks._cli.create import create
from blocks._cli.documents import delete_document, inspect_document, list_documents
from blocks._cli.errors import CommandError
from blocks._cli.events import events_app
from blocks._cli.observe import observe_app
from blocks._cli.output import help_without_command
from blocks._cli.runs import runs_app
from blocks._cli.types import register, type_app
from blocks._cli.ui import serve_ui
from blocks._errors import BlockError, BlockValidationError
from emitters._sdk import package_version, redact_text

__all__ = ["app", "main"]

PROG = "eventblocks"


@dataclass
class _Options:
    """What the global options asked for, read back by :func:`main`."""

    debug: bool = False


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"{PROG} {package_version()}\n")
        raise typer.Exit()


app = typer.Typer(
    name=PROG,
    help="eventblocks: typed connector blocks whose every call is observable.",
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error.")
    ] = False,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """eventblocks: typed connector blocks whose every call is observable."""
    ctx.ensure_object(_Options).debug = debug
    help_without_command(ctx)


app.command("register")(register)
app.add_typer(type_app)
app.command("ls")(list_documents)
app.command("inspect")(inspect_document)
app.command("create")(create)
app.command("delete")(delete_document)
app.add_typer(events_app)
app.add_typer(runs_app)
app.add_typer(observe_app)
app.command("ui")(serve_ui)


def _one_line(message: str) -> str:
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def _report(message: str, exc: BaseException, options: _Options) -> None:
    if options.debug:
        trace = "".join(traceback.format_exception(exc))
        sys.stderr.write(redact_text(trace))
    sys.stderr.write(f"Error: {redact_text(_one_line(message))}\n")


def _put_cwd_on_path() -> None:
    # 'python -m blocks' imports from the current directory; the console script
    # should find 'register -m mymodule' and saved types' modules there as well.
    cwd = os.getcwd()
    if sys.flags.safe_path:  # PYTHONSAFEPATH / -P: the user asked for no cwd
        return
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)


def main(argv: list[str] | None = None) -> int:
    """Run ``eventblocks`` on ``argv`` (default ``sys.argv[1:]``); return the status."""
    args = sys.argv[1:] if argv is None else list(argv)
    options = _Options()
    _put_cwd_on_path()
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=args, prog_name=PROG, standalone_mode=False, obj=options
        )
    except CommandError as exc:
        _report(str(exc), exc, options)
        return exc.exit_code
    except typer.Abort as exc:
        _report("Aborted.", exc, options)
        return 1
    except ValidationError as exc:
        # Only reached if a pydantic error escaped the library: its text quotes
        # the input values, which may be secrets.
        summary = BlockValidationError.from_pydantic(exc.title, exc)
        _report(str(summary), exc, options)
        return 1
    except (BlockError, ValueError, LookupError) as exc:
        _report(str(exc), exc, options)
        return 1
    except Exception as exc:
        code = _usage_status(exc)
        if code is not None:
            _report(_usage_message(exc), exc, options)
            return code
        hint = "" if options.debug else " (run with --debug for the traceback)"
        _report(f"{type(exc).__name__}: {exc}{hint}", exc, options)
        return 1
    return result if isinstance(result, int) else 0


def _usage_status(exc: Exception) -> int | None:
    """Return the exit status of a click exception, or None for any other."""
    # typer reports parsing problems with click's exception classes, which newer
    # typer versions vendor under a private name: recognise them by interface.
    code = getattr(exc, "exit_code", None)
    if isinstance(code, int) and callable(getattr(exc, "format_message", None)):
        return code
    return None


def _usage_message(exc: Exception) -> str:
    message = str(exc.format_message())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None)
    if _usage_status(exc) == 2 and path:
        stop = "" if message.rstrip().endswith((".", "?", "!")) else "."
        message = f"{message.rstrip()}{stop} See '{path} --help'."
    return message
