"""What a database error may say: its driver class, its SQLSTATE or errno, and a
message without the statement, the bound values or the password.

DBAPI messages echo what they were given. PostgreSQL adds a ``DETAIL`` line with
the key of a unique violation and a ``LINE 1:`` excerpt of the statement; MySQL
names the duplicate entry; asyncpg repeats a parameter it could not encode; and
SQLAlchemy appends the statement text, literals and all. So a database error
raised by the SQL blocks is cleaned in place before it leaves the block (it stays
the very same object, type and traceback): its message keeps the first line of the
driver's message, with every bound value and the password masked, and its
``statement`` is cleared. The driver's exceptions in its chain (``__cause__``,
``__context__``) keep their full text, with the same values masked.

The values of one call are masked in that call's error only, never registered as
secrets: the registry is process-wide and permanent, and rows are not secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy.exc as sa_exc

from emitters._sdk import MASK, iter_leaves, qualified_name

__all__ = ["bound_values", "error_detail", "scrub_db_error"]

_MAX_CHAIN = 16
_MAX_VALUES = 1_000
# Driver messages that quote a value, whether it came as a bound parameter or as a
# literal in the statement: the quoted part is masked.
_ECHOES = (
    re.compile(r"(Duplicate entry ')(.*?)(' for key)", re.S),
    re.compile(r"(Incorrect [\w ]+ value: ')(.*?)(' for column)", re.S),
    re.compile(r"(invalid input syntax for (?:type )?[\w .]+: \")(.*?)(\")", re.S),
    re.compile(r"(invalid input value for enum [\w.\"]+: \")(.*?)(\")", re.S),
    re.compile(r"(value \")(.*?)(\" is out of range)", re.S),
    re.compile(r"(invalid input for query argument \$\d+: )(.*?)( \(|$)", re.S),
)


def _leaves(value: Any) -> Iterator[str]:
    for leaf in iter_leaves(value, max_depth=8):
        if leaf is None or isinstance(leaf, bool):
            continue
        if isinstance(leaf, bytes | bytearray | memoryview):
            continue  # binary values are not echoed as text by the drivers
        yield leaf if isinstance(leaf, str) else str(leaf)


def bound_values(parameters: Any) -> list[str]:
    """Return the text of every bound value in ``parameters``.

    Args:
        parameters: A mapping of values, a list of mappings (``execute_many``), or
            None. Values may be nested in lists (expanding ``IN`` parameters) or
            mappings (JSON).
    """
    found: list[str] = []
    for leaf in _leaves(parameters):
        if leaf and leaf not in found:
            found.append(leaf)
            if len(found) >= _MAX_VALUES:
                break
    return found


def _pattern(values: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern matching each value as a whole token, longest first.

    A bound ``1`` masks ``'1'`` and ``(1)`` but not the ``1`` of ``1062``.
    """
    parts: list[str] = []
    for value in sorted({v for v in values if v}, key=len, reverse=True):
        head = r"(?<!\w)" if re.match(r"\w", value[0]) else ""
        tail = r"(?!\w)" if re.match(r"\w", value[-1]) else ""
        parts.append(f"{head}{re.escape(value)}{tail}")
    return re.compile("|".join(parts)) if parts else None


def _mask(text: str, pattern: re.Pattern[str] | None) -> str:
    if pattern is not None:
        text = pattern.sub(MASK, text)
    for echo in _ECHOES:
        text = echo.sub(lambda m: f"{m[1]}{MASK}{m[3]}", text)
    return text


def _mask_args(exc: BaseException, pattern: re.Pattern[str] | None) -> None:
    """Mask the values in the text arguments of ``exc`` and in a ``detail`` text."""
    try:
        args = tuple(
            _mask(arg, pattern) if isinstance(arg, str) else arg for arg in exc.args
        )
        if args != exc.args:
            exc.args = args
        # asyncpg keeps the DETAIL line in an attribute that its message appends.
        detail = getattr(exc, "detail", None)
        if isinstance(detail, str):
            masked = _mask(detail, pattern)
            if masked != detail:
                exc.detail = masked  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        pass  # a read-only exception: its text stays as the driver made it


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions ``exc`` wraps, was raised from or while handling (not ``exc``)."""
    seen = {id(exc)}
    todo: list[Any] = [getattr(exc, "orig", None), exc.__cause__, exc.__context__]
    while todo and len(seen) < _MAX_CHAIN:
        link = todo.pop(0)
        if not isinstance(link, BaseException) or id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        todo.extend((getattr(link, "orig", None), link.__cause__, link.__context__))


def scrub_db_error(exc: BaseException, values: Iterable[str]) -> None:
    """Clean the message of a database error in place; see the module docstring.

    Args:
        exc: The exception that is about to leave a block method.
        values: The call's bound values and the credentials' secrets.
    """
    pattern = _pattern(values)
    if isinstance(exc, sa_exc.StatementError):
        head = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
        first = head.strip().split("\n", 1)[0].rstrip()
        exc.args = (_mask(first, pattern),)
        # The statement's text may hold literal values: it leaves the message.
        exc.statement = None
        exc.detail = [_mask(line, pattern) for line in exc.detail]
    else:
        _mask_args(exc, pattern)
    for link in _chain(exc):
        _mask_args(link, pattern)


def driver_exception(exc: BaseException) -> BaseException | None:
    """The exception the DBAPI driver raised, behind SQLAlchemy's wrapper."""
    if not isinstance(exc, sa_exc.DBAPIError) or exc.orig is None:
        return None
    try:
        # SQLAlchemy 2.1 unwraps its emulated asyncpg errors here.
        driver: BaseException = exc.driver_exception
    except (AttributeError, ValueError):
        driver = exc.orig
    return driver


def _status_code(*candidates: BaseException | None) -> str | None:
    """SQLSTATE (PostgreSQL), errno (MySQL) or the result code name (SQLite)."""
    for error in candidates:
        if error is None:
            continue
        args = error.args
        if args and isinstance(args[0], int) and not isinstance(args[0], bool):
            return str(args[0])  # PyMySQL, mysqlclient: (errno, message)
        for name in ("sqlstate", "pgcode", "sqlite_errorname"):
            code = getattr(error, name, None)
            if isinstance(code, str) and code:
                return code
    return None


def error_detail(exc: BaseException) -> dict[str, Any]:
    """Return the payload detail of a failed call: the driver's error class and
    its code, when the error came from the database driver."""
    driver = driver_exception(exc)
    if driver is None:
        return {}
    detail: dict[str, Any] = {"dbapi_error": qualified_name(driver)}
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else None
    code = _status_code(driver, orig)
    if code is not None:
        detail["db.response.status_code"] = code
    return detail
