"""Checking and showing http(s) URLs without ever repeating a secret they carry.

One checker serves every URL the SDK is given (the HTTP emitter's endpoint, the
HTTP blocks' base and webhook URLs, the AWS blocks' ``endpoint_url``); its errors
never echo the URL, which may hold a password or a token.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

import httpx

from emitters._redact import MASK
from emitters._secret_names import is_secret_name

__all__ = ["check_http_url", "display_url", "origin", "redact_url"]

_NOT_HTTP = "must be an absolute http:// or https:// URL with a host"


def check_http_url(url: object) -> httpx.URL:
    """Return ``url`` parsed; raise unless it is an absolute http(s) URL with a host.

    Raises:
        TypeError: ``url`` is neither a string nor an ``httpx.URL``.
        ValueError: It is not an absolute http(s) URL with a host. The message
            starts with "must be" (the caller names the field) and does not echo
            the URL.
    """
    if not isinstance(url, str | httpx.URL):
        raise TypeError(f"must be a string, not {type(url).__name__}")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ValueError(_NOT_HTTP) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(_NOT_HTTP)
    return parsed


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Return ``(scheme, host, port)`` of ``url``, with the scheme's default port."""
    port = url.port
    if port is None:
        port = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, port


def display_url(url: httpx.URL) -> str:
    """Return ``url`` without its user info, query and fragment, for messages."""
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


def redact_url(url: httpx.URL) -> str:
    """Return ``url`` as text with its user-info and secret query values masked.

    ``https://user:pw@api.example.com/v1/items?token=abc&page=2`` becomes
    ``https://**********@api.example.com/v1/items?token=**********&page=2``. The
    fragment, which is never sent, is left out; the rest keeps its encoding.
    """
    userinfo = f"{MASK}@" if url.userinfo else ""
    netloc = url.netloc.decode("ascii")
    path = url.raw_path.split(b"?", 1)[0].decode("ascii")
    text = f"{url.scheme}://{userinfo}{netloc}{path}"
    query = url.query.decode("ascii")
    if not query:
        return text
    pairs = []
    for pair in query.split("&"):
        name, sep, value = pair.partition("=")
        if sep and value and is_secret_name(unquote_plus(name)):
            pair = f"{name}={MASK}"
        pairs.append(pair)
    return f"{text}?{'&'.join(pairs)}"
