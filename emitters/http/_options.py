"""The HTTP emitter's options: checking arguments, and reading the environment.

Messages name the argument or the variable and never echo a URL or a header
value, since those may carry a password or a token.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from emitters._settings import (
    HTTP_HEADERS_VARIABLE,
    http_headers,
    http_spool_dir,
    http_url,
)
from emitters._urls import check_http_url
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
    try:
        return check_http_url(url)
    except TypeError as exc:
        raise TypeError(f"url {exc}") from None
    except ValueError as exc:
        # Not echoed: a URL may carry a password or a token.
        raise ValueError(f"url {exc}") from None


def environment_settings() -> tuple[str, dict[str, str], Path]:
    """Return the URL, headers and spool folder the environment sets.

    Raises:
        ValueError: ``EVENTBLOCKS_HTTP_URL`` is not set or not an http(s) URL, or
            ``EVENTBLOCKS_HTTP_HEADERS`` is malformed.
    """
    url = http_url()
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
    headers = parse_headers(http_headers(), HTTP_HEADERS_VARIABLE)
    return url, headers, http_spool_dir()
