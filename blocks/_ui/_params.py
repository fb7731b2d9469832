"""The API's query parameters, read strictly: a bad value is a 400 naming it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

__all__ = ["BadParameter", "boolean", "limit", "moment", "text"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(?:\d+[smhdw])+$")
_PART = re.compile(r"(\d+)([smhdw])")


class BadParameter(ValueError):
    """A query parameter's value is malformed; the message names the parameter."""


def text(params: Mapping[str, str], name: str) -> str | None:
    """Return a text parameter, None when absent; empty is an error."""
    value = params.get(name)
    if value is None:
        return None
    if not value.strip():
        raise BadParameter(f"{name}: expected a non-empty value, got {value!r}")
    return value


def boolean(params: Mapping[str, str], name: str) -> bool | None:
    """Return ``true``/``false`` (also ``1``/``0``) as a bool, None when absent."""
    value = params.get(name)
    if value is None:
        return None
    folded = value.strip().lower()
    if folded in ("true", "1", "yes"):
        return True
    if folded in ("false", "0", "no"):
        return False
    raise BadParameter(f"{name}: expected true or false, got {value!r}")


def limit(params: Mapping[str, str], name: str, default: int, most: int) -> int:
    """Return a count between 1 and ``most``; ``default`` when absent."""
    value = params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= most:
        raise BadParameter(
            f"{name}: expected a whole number from 1 to {most}, got {value!r}"
        )
    return number


def moment(params: Mapping[str, str], name: str) -> datetime | timedelta | None:
    """Return a duration ago (``15m``, ``2h``, ``1h30m``, ``7d``) or an ISO time.

    An ISO time without an offset is taken as UTC.
    """
    value = params.get(name)
    if value is None:
        return None
    compact = value.strip().lower()
    if _DURATION.match(compact):
        return timedelta(
            seconds=sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(compact))
        )
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadParameter(
            f"{name}: expected a duration like 15m or an ISO time, got {value!r}"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
