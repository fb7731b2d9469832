"""The HTTP emitter's options: checking arguments, and reading the environment.

Messages name the argument or the variable and never echo a URL or a header
value, since those may carry a password or a token.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from emitters._settings import home
from emitters.http._wire import parse_headers

__all__ = ["check_url", "environment_settings", "integer", "positive"]


def positive(name: str, value: object, *, zero: bool = False) -> float:
    """Return ``value`` as a float; raise ValueError naming ``name`` unless > 0.

    With ``zero=True``, 0 is allowed too. Booleans and NaN are refused.
    """
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or value != value  # NaN
        or value < 0
        or (value == 0 and not zero)
    ):
        kind = "non-negative" if zero else "positive"
        raise ValueError(f"{name} must be a {kind} number, not {value!r}")
    return float(value)


def integer(name: str, value: object, *, low: int, high: int | None = None) -> int:
    """Return ``value``; raise ValueError naming ``name`` unless an int in range."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be an integer {bounds}, not {value!r}")
    return value


def check_url(url: object) -> httpx.URL:
    """Return ``url`` parsed; raise unless it is an absolute http(s) URL with a host.

    Raises:
        TypeError: ``url`` is not a string.
        ValueError: It is not an absolute http(s) URL; the message does not echo it.
    """
    if not isinstance(url, str | httpx.URL):
        raise TypeError(f"url must be a string, not {type(url).__name__}")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        # Not echoed: a URL may carry a password or a token.
        raise ValueError("url must be an absolute http:// or https:// URL with a host")
    return parsed


def environment_settings() -> tuple[str, dict[str, str], Path]:
    """Return the URL, headers and spool folder the environment sets.

    Raises:
        ValueError: ``EVENTBLOCKS_HTTP_URL`` is not set or not an http(s) URL, or
            ``EVENTBLOCKS_HTTP_HEADERS`` is malformed.
    """
    url = os.environ.get("EVENTBLOCKS_HTTP_URL", "").strip()
    if not url:
        raise ValueError(
            "EVENTBLOCKS_HTTP_URL is not set; set it to the endpoint that receives "
            "the events, such as https://collector.example.com/events"
        )
    try:
        check_url(url)
    except ValueError:
        raise ValueError(
            "EVENTBLOCKS_HTTP_URL must be an absolute http:// or https:// URL "
            "with a host"
        ) from None
    headers = parse_headers(
        os.environ.get("EVENTBLOCKS_HTTP_HEADERS", ""), "EVENTBLOCKS_HTTP_HEADERS"
    )
    spool = os.environ.get("EVENTBLOCKS_HTTP_SPOOL_DIR", "").strip()
    return url, headers, Path(spool).expanduser() if spool else home() / "spool"
