"""Masking registered secrets: in text, in every event, in what blocks hold.

Blocks register each secret value they hold as soon as they come into being
(built, validated, copied, unpickled, loaded, or given a new value at any depth);
before any event reaches a processor or a sink, every registered value in its
payload (and, for events from ``emit_event``, in its name and in its resources'
ids, names and labels, run labels included) is replaced by ``**********``. The
registry itself, the forms a secret travels in and the rule refusing values too
short or too common to mask are in :mod:`emitters._registry`.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Iterable
from typing import Any

from emitters._model import Event, RelatedResource, Resource
from emitters._registry import (
    find_spans,
    has_secrets,
    is_registered,
    refusal,
    register_forms,
    register_owned,
    secret_forms,
)

__all__ = [
    "MASK",
    "SDK_KEYS",
    "has_secrets",
    "redact_event",
    "redact_payload",
    "redact_related",
    "redact_text",
    "register_named",
    "register_secret",
    "secret_forms",
]

MASK = "**********"
# Payload keys the SDK itself writes; they are never redacted.
SDK_KEYS = frozenset(
    {
        "duration_ms",
        "error",
        "type",
        "message",
        "yielded",
        "closed_early",
        "payload_error",
    }
)
# A line break and the indentation after it: a secret wrapped over two lines.
_BREAK = re.compile(r"\r?\n[ \t]*")
_warned: set[tuple[str, str]] = set()
_WARNED_MAX = 10_000
logger = logging.getLogger("emitters")
_logs_protected = False


def _text(value: str | bytes) -> str:
    if isinstance(value, bytes):
        # Bytes that are not UTF-8 keep their bytes (as surrogates), so the forms
        # made from them (the bytes repr, base64) are those of the real bytes.
        return value.decode("utf-8", "surrogateescape")
    return value


def _warn_refused(where: str, field: str, reason: str) -> None:
    key = (where, field)
    if key in _warned:
        return
    if len(_warned) >= _WARNED_MAX:
        _warned.clear()
    _warned.add(key)
    logger.warning(
        "the secret in %s of %s is not masked in events and logs: its value is %s "
        "(values shorter than 5 characters, common words and one repeated "
        "character are never masked, as masking them would garble other text)",
        field,
        where,
        reason,
    )


def _protect_logs() -> None:
    global _logs_protected
    if not _logs_protected:
        # Imported here: the log masking module builds on this one.
        from emitters._logs import protect_library_logs

        protect_library_logs()
        _logs_protected = True


def register_secret(*values: str | bytes | None) -> None:
    """Register secret values so that no event ever carries them.

    Blocks register every ``SecretStr``/``SecretDict`` value they hold; call this
    yourself for secrets your own code may put into an event or an exception
    message. Values registered here stay registered for the life of the process.
    Empty values are ignored; a value shorter than 5 characters, a common word or
    one repeated character is refused with a warning, as masking it would garble
    ordinary text.
    """
    _protect_logs()
    for position, value in enumerate(values, start=1):
        if not value:
            continue
        text = _text(value)
        reason = refusal(text)
        if reason is not None:
            _warn_refused("register_secret()", f"argument {position}", reason)
            continue
        register_forms(text)


def register_named(
    owner: object, where: str, named: Iterable[tuple[str, str | bytes]]
) -> None:
    """Register the secrets ``owner`` holds, while it is alive.

    Args:
        owner: The object (a block, a model inside one) whose collection releases
            them.
        where: What holds them, for the warning (a block type's slug).
        named: ``(field, value)`` pairs; a value refused by the rule is named by
            its field in a warning, never shown.
    """
    _protect_logs()
    accepted: list[str] = []
    for field, value in named:
        if not value:
            continue
        text = _text(value)
        reason = refusal(text)
        if reason is not None:
            _warn_refused(where, field, reason)
            continue
        accepted.append(text)
    if accepted:
        register_owned(owner, accepted)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _wrapped_spans(text: str) -> list[tuple[int, int]]:
    """Spans of secrets that a line break (and indentation) splits in two."""
    pieces: list[str] = []
    joined_at: list[int] = []
    original_at: list[int] = []
    position = joined = 0
    for match in _BREAK.finditer(text):
        pieces.append(text[position : match.start()])
        joined_at.append(joined)
        original_at.append(position)
        joined += match.start() - position
        position = match.end()
    pieces.append(text[position:])
    joined_at.append(joined)
    original_at.append(position)

    def original(index: int) -> int:
        piece = bisect.bisect_right(joined_at, index) - 1
        return original_at[piece] + index - joined_at[piece]

    out = []
    for start, end in find_spans("".join(pieces)):
        first, last = original(start), original(end - 1) + 1
        if last - first != end - start:  # it crossed a break
            out.append((first, last))
    return out


def redact_text(text: str) -> str:
    """Return ``text`` with every registered secret replaced by the mask.

    Every form of every secret is found in one pass, whatever their number,
    ignoring ASCII case; a secret wrapped over two lines is found too.
    """
    if not has_secrets():
        return text
    spans = find_spans(text)
    if "\n" in text:
        wrapped = _wrapped_spans(text)
        if wrapped:
            spans = _merge(spans + wrapped)
    if not spans:
        return text
    parts: list[str] = []
    position = 0
    for start, end in spans:
        parts.append(text[position:start])
        parts.append(MASK)
        position = end
    parts.append(text[position:])
    return "".join(parts)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A secret number (a PIN in a SecretDict) is registered as its text.
        return MASK if is_registered(str(value)) else value
    if isinstance(value, dict):
        changed = False
        out: dict[Any, Any] = {}
        # The SDK's own keys are names, not data; any other key may be data.
        for key, item in value.items():
            new_key = key if key in SDK_KEYS else _redact_value(key)
            new_item = _redact_value(item)
            changed = changed or new_key is not key or new_item is not item
            out[new_key] = new_item
        return out if changed else value
    if isinstance(value, list | tuple):
        items = [_redact_value(item) for item in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return type(value)(items)
        return value
    return value


def _redact_resource(resource: Resource) -> Resource:
    update: dict[str, Any] = {}
    new_id = redact_text(resource.id)
    if new_id != resource.id:
        update["id"] = new_id
    if resource.name is not None:
        new_name = redact_text(resource.name)
        if new_name != resource.name:
            update["name"] = new_name
    labels = _redact_value(resource.labels)
    if labels is not resource.labels:
        update["labels"] = labels
    return resource.model_copy(update=update) if update else resource


def redact_related(
    related: tuple[RelatedResource, ...],
) -> tuple[RelatedResource, ...]:
    """Return ``related`` with secrets masked (the same tuple if clean)."""
    if not has_secrets():
        return related
    new = tuple(_redact_resource(r) for r in related)
    if any(a is not b for a, b in zip(new, related, strict=True)):
        return new  # type: ignore[return-value]
    return related


def redact_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Return an event's payload with secrets masked (the same dict if clean)."""
    if not has_secrets():
        return payload
    clean: dict[str, Any] = _redact_value(payload)
    return clean


def redact_event(event: Event, *, resources: bool = False) -> Event:
    """Return ``event`` with registered secrets masked (the same object if clean).

    Args:
        event: The event to clean.
        resources: Also clean the event's name and its resource's and related
            resources' ids, names and labels, for events whose names and
            resources came from user code (``emit_event``).
    """
    if not has_secrets():
        return event
    payload = _redact_value(event.payload)
    update: dict[str, Any] = {}
    if payload is not event.payload:
        update["payload"] = payload
    if resources:
        name = redact_text(event.event)
        if name != event.event:
            update["event"] = name
        resource = _redact_resource(event.resource)
        if resource is not event.resource:
            update["resource"] = resource
        related = redact_related(event.related)
        if related is not event.related:
            update["related"] = related
    if not update:
        return event
    return event.model_copy(update=update)
