"""The secret registry and the redaction that runs on every event.

Blocks register each secret value they hold as soon as they are built; before any
event reaches a processor or a sink, every registered value in its payload (and, for
events from ``emit_event``, in its resource and related labels and names) is replaced
by ``**********``.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

from emitters._model import Event, Resource

__all__ = [
    "MASK",
    "SDK_KEYS",
    "has_secrets",
    "redact_event",
    "redact_text",
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

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(*values: str | bytes | None) -> None:
    """Register secret values so that no event ever carries them.

    Blocks call this for every ``SecretStr``/``SecretDict`` value they hold; call it
    yourself for secrets your own code may put into an event or an exception
    message. Empty values are ignored.
    """
    global _pattern
    new: list[str] = []
    for value in values:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not value:
            continue
        for form in secret_forms(value):
            if form not in _secrets and form not in new:
                new.append(form)
    if not new:
        return
    with _lock:
        _secrets.update(new)
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def secret_forms(value: str) -> list[str]:
    """Return ``value`` and the encoded forms it travels in, each once.

    A secret also travels URL-encoded (in a query string, a path, a form), so its
    ``quote`` (path and component) and ``quote_plus`` forms are masked too. Both
    the registry and the per-request masking of the HTTP blocks use this one list.
    """
    forms: list[str] = []
    for form in (value, quote(value, safe=""), quote(value), quote_plus(value)):
        if form and form not in forms:
            forms.append(form)
    return forms


def has_secrets() -> bool:
    """Return True once any secret is registered (masking is needed at all)."""
    return _pattern is not None


def redact_text(text: str) -> str:
    """Return ``text`` with every registered secret value replaced by the mask."""
    pattern = _pattern
    if pattern is None:
        return text
    return pattern.sub(MASK, text)


def _redact_value(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(MASK, value) if pattern.search(value) else value
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A secret number (a PIN in a SecretDict) is registered as its text.
        return MASK if str(value) in _secrets else value
    if isinstance(value, dict):
        changed = False
        out: dict[Any, Any] = {}
        # The SDK's own keys are names, not data: a short secret that happens to
        # occur in "duration_ms" must not garble it. Any other key may be data.
        for key, item in value.items():
            new_key = key if key in SDK_KEYS else _redact_value(key, pattern)
            new_item = _redact_value(item, pattern)
            changed = changed or new_key is not key or new_item is not item
            out[new_key] = new_item
        return out if changed else value
    if isinstance(value, list | tuple):
        items = [_redact_value(item, pattern) for item in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return type(value)(items)
        return value
    return value


def _redact_resource(resource: Resource, pattern: re.Pattern[str]) -> Resource:
    name = resource.name
    new_name = _redact_value(name, pattern) if name is not None else None
    labels = _redact_value(resource.labels, pattern)
    if new_name is name and labels is resource.labels:
        return resource
    return resource.model_copy(update={"name": new_name, "labels": labels})


def redact_event(event: Event, *, resources: bool = False) -> Event:
    """Return ``event`` with registered secrets masked (the same object if clean).

    Args:
        event: The event to clean.
        resources: Also clean resource and related names and labels, for events
            whose resources came from user code.
    """
    pattern = _pattern
    if pattern is None:
        return event
    payload = _redact_value(event.payload, pattern)
    update: dict[str, Any] = {}
    if payload is not event.payload:
        update["payload"] = payload
    if resources:
        resource = _redact_resource(event.resource, pattern)
        if resource is not event.resource:
            update["resource"] = resource
        new_related = tuple(_redact_resource(r, pattern) for r in event.related)
        if any(a is not b for a, b in zip(new_related, event.related, strict=True)):
            update["related"] = new_related
    if not update:
        return event
    return event.model_copy(update=update)
