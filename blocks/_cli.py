"""The ``eventblocks`` command line (``python -m blocks``)."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

__all__ = ["main"]

_USAGE = """usage: eventblocks [--version] [--help]

eventblocks: typed connector blocks whose every call is observable.
The document and event commands arrive with the block document store.
"""


def _version() -> str:
    try:
        return version("eventblocks")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if args in ([], ["--help"], ["-h"]):
        sys.stdout.write(_USAGE)
        return 0
    if args == ["--version"]:
        sys.stdout.write(f"eventblocks {_version()}\n")
        return 0
    sys.stderr.write(f"eventblocks: unknown arguments: {' '.join(args)} (see --help)\n")
    return 2
