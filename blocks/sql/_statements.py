"""Statements as the SQL connectors take them: text or SQLAlchemy executables,
the operation they perform, and the key of a result that fetch calls page through.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import TextClause

__all__ = [
    "Operation",
    "Parameters",
    "as_statement",
    "connection_info_spelling",
    "operation_name",
    "result_key",
]

Operation = str | Executable
"""A SQL string (bound parameters written ``:name``) or a SQLAlchemy executable."""

Parameters = Mapping[str, Any]
"""The bound values of one statement, by name."""

# Whitespace, comments and opening parentheses before the first keyword.
_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/|\()*", re.S)
_KEYWORD = re.compile(r"[A-Za-z]+")


@functools.lru_cache(maxsize=512)
def _text(sql: str) -> TextClause:
    # text() parses the string for bind names; a loop runs the same few strings.
    return sa.text(sql)


def as_statement(operation: Operation) -> Executable:
    """Return ``operation`` as an executable: SQL text is wrapped in ``text()``
    (made once per distinct string, for the last 512 of them).

    Raises:
        TypeError: ``operation`` is neither a string nor an executable.
    """
    if isinstance(operation, str):
        return _text(operation)
    if isinstance(operation, Executable):
        return operation
    raise TypeError(
        "A statement is a SQL string or a SQLAlchemy executable such as "
        f"sqlalchemy.select(...), not {type(operation).__name__}."
    )


def _first_keyword(sql: str) -> str | None:
    start = _LEADING.match(sql)
    match = _KEYWORD.match(sql, start.end() if start else 0)
    return match[0].upper() if match else None


def operation_name(operation: Any) -> str | None:
    """Return the statement's verb, upper case: ``SELECT``, ``INSERT``, ``WITH``...

    Only the first keyword is read; the text itself, which may hold literal values,
    never leaves this function.
    """
    if isinstance(operation, str):
        return _first_keyword(operation)
    if isinstance(operation, TextClause):
        return _first_keyword(operation.text)
    if not isinstance(operation, Executable):
        return None
    for flag, verb in (
        ("is_select", "SELECT"),
        ("is_insert", "INSERT"),
        ("is_update", "UPDATE"),
        ("is_delete", "DELETE"),
    ):
        if getattr(operation, flag, False):
            return verb
    # DDL constructs: create_table, drop_index... -> CREATE, DROP.
    visit = getattr(operation, "__visit_name__", "")
    word = visit.split("_", 1)[0] if isinstance(visit, str) else ""
    return word.upper() or None


def _frozen(value: Any, depth: int = 0) -> Any:
    """A hashable stand-in for a parameter value: equal values, equal keys."""
    if depth > 16:
        return repr(value)
    if isinstance(value, Mapping):
        return (
            "map",
            tuple(sorted((str(k), _frozen(v, depth + 1)) for k, v in value.items())),
        )
    if isinstance(value, list | tuple):
        return ("seq", tuple(_frozen(v, depth + 1) for v in value))
    if isinstance(value, set | frozenset):
        return ("set", tuple(sorted(repr(v) for v in value)))
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    # The type keeps 1, 1.0 and True apart.
    return (type(value).__qualname__, value)


def result_key(
    operation: Operation, parameters: Any, options: Mapping[str, Any]
) -> tuple[Any, ...]:
    """Return the key under which fetch calls share one open result.

    Two calls share a result when they run the same statement with the same
    parameters and execution options. A SQLAlchemy executable is compared by its
    SQL and its embedded values; one that cannot be compiled without a dialect is
    compared by identity.
    """
    if isinstance(operation, str):
        statement: Any = ("text", operation)
    elif isinstance(operation, TextClause):
        statement = ("text", operation.text)
    else:
        try:
            compiled = operation.compile()  # type: ignore[attr-defined]
            statement = ("sql", str(compiled), _frozen(dict(compiled.params)))
        except Exception:
            statement = ("object", id(operation))
    return (statement, _frozen(parameters), _frozen(dict(options)))


def connection_info_spelling(data: Any) -> Any:
    """Accept prefect-sqlalchemy's ``connection_info`` (a URL or URL parts) and
    ``connect_args`` as the connector's ``credentials``.

    Raises:
        ValueError: ``connection_info`` with ``credentials``, or ``connect_args``
            beside a ``DatabaseCredentials`` block (put them in the block).
    """
    if not isinstance(data, Mapping) or "connection_info" not in data:
        return data
    data = dict(data)
    if "credentials" in data:
        raise ValueError(
            "give credentials or connection_info (Prefect's name for them), not both"
        )
    info = data.pop("connection_info")
    if isinstance(info, str | sa.URL):
        info = {
            "url": info
            if isinstance(info, str)
            else info.render_as_string(hide_password=False)
        }
    elif isinstance(info, Mapping):
        info = dict(info)
    if "connect_args" in data:
        if not isinstance(info, dict):
            raise ValueError(
                "connect_args goes in the DatabaseCredentials block given as "
                "connection_info"
            )
        info["connect_args"] = data.pop("connect_args")
    data["credentials"] = info
    return data
