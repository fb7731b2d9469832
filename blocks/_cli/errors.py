"""The command line's own errors, each with the exit status it ends the command with.

The library's errors (``BlockError`` and its subclasses, ``ValueError`` for a bad
name) end a command with status 1 as they are; these are for what only the command
line can get wrong.
"""

from __future__ import annotations

__all__ = ["CommandError", "CommandUsageError"]


class CommandError(Exception):
    """The command could not do what was asked (exit status 1)."""

    exit_code = 1


class CommandUsageError(CommandError):
    """The command line itself is wrong: options that exclude each other, a
    malformed ``--set`` (exit status 2, as for click's usage errors)."""

    exit_code = 2
