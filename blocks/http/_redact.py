"""Secret-bearing names in HTTP requests, and masking their values in URLs and messages.

One rule decides which header names and query parameter names carry secrets: the
HTTP blocks treat such header values as secret fields, and mask such query values in
the URLs their events carry.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus, unquote_plus

import httpx

from emitters._sdk import MASK

__all__ = [
    "MASK",
    "HttpxLogFilter",
    "is_secret_name",
    "origin",
    "protect_httpx_logs",
    "redact_url",
    "request_secrets",
    "scrub_exception",
]

# A name is split into lowercase words at anything but letters and digits
# ("X-Api-Key" -> x, api, key; "access_token" -> access, token). It is secret if
# one of its words is in _SECRET_WORDS, ends with "key", or contains a fragment.
_SECRET_WORDS = frozenset(
    {"auth", "authorization", "authentication", "cookie", "sig", "pwd", "pass"}
)
_SECRET_FRAGMENTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "signature",
    "credential",
)
_WORD = re.compile(r"[^a-z0-9]+")


def is_secret_name(name: str) -> bool:
    """Return True if a header or query parameter called ``name`` carries a secret.

    Matched case-insensitively, word by word: ``Authorization``,
    ``Proxy-Authorization``, ``Cookie``, ``X-Api-Key``, ``apiKey``, ``token``,
    ``access_token``, ``X-Auth-Token``, ``client_secret``, ``password``, ``sig``,
    ``signature``, ``X-Amz-Signature``, ``X-Amz-Credential``, and any name with a
    word ending in ``key`` or containing ``token``, ``secret``, ``password``,
    ``passwd``, ``signature`` or ``credential``.
    """
    for word in _WORD.split(name.lower()):
        if not word:
            continue
        if word in _SECRET_WORDS or word.endswith("key"):
            return True
        if any(fragment in word for fragment in _SECRET_FRAGMENTS):
            return True
    return False


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Return ``(scheme, host, port)`` of ``url``, with the scheme's default port."""
    port = url.port
    if port is None:
        port = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, port


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


def request_secrets(
    url: httpx.URL, headers: Mapping[str, str] | None = None
) -> list[str]:
    """Return the secret values one request carries: user-info, secret query values
    and the values of headers with secret names.

    They are masked in the request's exception messages rather than registered
    process-wide: a signed URL per request would grow the registry without end.
    """
    found: list[str] = []
    if url.userinfo:
        found.append(url.userinfo.decode("ascii"))
        found.append(url.password)
    for name, value in url.params.multi_items():
        if value and is_secret_name(name):
            found.append(value)
    for name, value in (headers or {}).items():
        if value and is_secret_name(name):
            found.append(value)
    return found


def _variants(values: Iterable[str]) -> list[str]:
    """Each value as it is, and as it looks percent-encoded in a URL."""
    out: set[str] = set()
    for value in values:
        if value:
            out.update({value, quote(value, safe=""), quote_plus(value)})
    # Longest first, so that a value containing another is masked whole.
    return sorted(out, key=len, reverse=True)


def scrub_exception(exc: BaseException, values: Iterable[str]) -> None:
    """Mask ``values`` in the message of ``exc``, in place, if it contains any.

    The exception stays the same object, with the same type and traceback; only a
    message that would have shown a secret changes.
    """
    variants = _variants(values)
    if not variants:
        return
    try:
        text = str(exc)
    except Exception:
        return
    masked = text
    for value in variants:
        masked = masked.replace(value, MASK)
    if masked != text:
        exc.args = (masked,)


class HttpxLogFilter(logging.Filter):
    """Masks secret query values and user-info in the request URLs httpx logs.

    httpx logs ``HTTP Request: GET <url> ...`` at INFO with the URL as an
    argument; the URL is replaced by :func:`redact_url` before it is formatted.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace URL arguments of the record with their redacted form."""
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, httpx.URL) for a in args):
            record.args = tuple(
                redact_url(a) if isinstance(a, httpx.URL) else a for a in args
            )
        return True


def protect_httpx_logs() -> None:
    """Install :class:`HttpxLogFilter` on httpx's logger, once."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, HttpxLogFilter) for f in logger.filters):
        # First in line, so that the secret registry's filter sees the result.
        logger.filters.insert(0, HttpxLogFilter())
