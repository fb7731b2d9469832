"""The HTTP emitter's wire format: request bodies, headers, status codes, retries.

A batch travels as one ``POST`` of ``{"events": [<event>, ...]}``, each event in
its ``Event.model_dump_json()`` form, gzip-compressed above a size threshold. This
module holds the pure parts: encoding a batch, classifying a response, reading
``Retry-After``, computing backoff delays, splitting a credential from its scheme
and parsing ``EVENTBLOCKS_HTTP_HEADERS``.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

from emitters._model import Event
from emitters._pipeline.batch import JsonEncoder, item_id, items_of
from emitters._spool import Batch

__all__ = [
    "COUNT_HEADER",
    "IDEMPOTENCY_HEADER",
    "Batch",
    "backoff_delay",
    "check_headers",
    "encode_batch",
    "is_retryable",
    "parse_headers",
    "retry_after_seconds",
    "secret_parts",
]

IDEMPOTENCY_HEADER = "Idempotency-Key"
COUNT_HEADER = "Eventblocks-Event-Count"


def encode_batch(
    events: Sequence[Event],
    *,
    gzip: bool,
    gzip_min_bytes: int,
    gzip_level: int,
    encoder: JsonEncoder | None = None,
) -> Batch:
    """Return the request body for ``events`` and its metadata.

    Each event is written exactly as ``model_dump_json()`` writes it; drafts
    (see emitters._pipeline.batch) are written without building their events.
    """
    items = items_of(events)
    data = b'{"events":[' + b",".join((encoder or JsonEncoder()).lines(items)) + b"]}"
    encoding = "identity"
    if gzip and len(data) >= gzip_min_bytes:
        # wbits=31: a gzip member, as Content-Encoding: gzip asks for.
        data = zlib.compress(data, gzip_level, wbits=31)
        encoding = "gzip"
    return Batch(
        data, encoding, len(items), f"{item_id(items[0])}:{item_id(items[-1])}"
    )


def is_retryable(status: int) -> bool:
    """Whether a response status asks for the same request again later."""
    return status in (408, 429) or 500 <= status <= 599


def retry_after_seconds(value: str | None) -> float | None:
    """Return the wait a ``Retry-After`` header asks for, in seconds, or None.

    Both forms are read: a number of seconds and an HTTP date. A date in the past
    means no wait; an unreadable value is ignored.
    """
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def backoff_delay(base: float, cap: float, attempt: int) -> float:
    """Return the wait before retry number ``attempt + 1``: exponential, jittered.

    The delay doubles with each attempt from ``base`` up to ``cap``; a random half
    of it is jitter, so that many senders do not retry in step.
    """
    ceiling = min(cap, base * (2.0 ** min(attempt, 62)))
    return ceiling / 2 + random.random() * ceiling / 2


def secret_parts(value: str) -> list[str]:
    """Return the value and, for ``<scheme> <credential>``, the credential too."""
    parts = [value]
    scheme, _, credential = value.strip().partition(" ")
    if scheme and credential.strip():
        parts.append(credential.strip())
    return parts


def parse_headers(text: str, variable: str) -> dict[str, str]:
    """Parse ``name=value,name=value`` (values percent-decoded) into headers.

    The format is OpenTelemetry's ``OTEL_EXPORTER_OTLP_HEADERS``. Error messages
    give an entry's position, never its text, since values may be secrets.

    Raises:
        ValueError: An entry has no ``=`` or an empty name.
    """
    headers: dict[str, str] = {}
    for position, entry in enumerate(text.split(","), start=1):
        if not entry.strip():
            continue
        name, sep, value = entry.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(
                f"{variable} must be a comma-separated list of name=value pairs; "
                f"entry {position} is not one"
            )
        headers[name] = unquote(value.strip())
    return headers


def check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Return ``headers`` as a dict of strings.

    Raises:
        TypeError: ``headers`` is not a mapping of strings to strings.
    """
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise TypeError(
            f"headers must be a mapping of names to values, "
            f"not {type(headers).__name__}"
        )
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            # The value may be a secret: name only the types.
            raise TypeError(
                "headers must map strings to strings; one entry is "
                f"{type(name).__name__} -> {type(value).__name__}"
            )
        out[name] = value
    return out
