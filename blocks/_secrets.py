"""Secret field types and finding the secret values a block holds."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Secret, SecretBytes, SecretStr

__all__ = ["SecretDict", "fingerprint", "iter_secret_values"]


class SecretDict(Secret[dict[str, Any]]):
    """A dictionary whose every value is secret, such as extra connection options.

    ``repr``, ``str`` and JSON dumps show ``**********``; ``get_secret_value()``
    returns the dictionary. Every string (and number) inside it is registered for
    redaction when the block that holds it is built.
    """


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        yield str(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _leaves(item)


def iter_secret_values(value: Any, *, _depth: int = 0) -> Iterator[str]:
    """Yield every secret value inside ``value`` (fields, containers, nested models).

    Nested blocks are included: a block registers its own secrets, but a nested
    block built elsewhere may have been registered in another process.
    """
    if _depth > 32:
        return
    if isinstance(value, SecretStr | SecretBytes | Secret):
        yield from _leaves(value.get_secret_value())
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from iter_secret_values(getattr(value, name, None), _depth=_depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_secret_values(item, _depth=_depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from iter_secret_values(item, _depth=_depth + 1)


def _plain(value: Any, depth: int = 0) -> Any:
    if depth > 32:
        return repr(value)
    if isinstance(value, SecretStr | SecretBytes | Secret):
        return ["secret", _plain(value.get_secret_value(), depth + 1)]
    if isinstance(value, BaseModel):
        return [
            type(value).__qualname__,
            {
                name: _plain(getattr(value, name, None), depth + 1)
                for name in type(value).model_fields
            },
        ]
    if isinstance(value, dict):
        return {str(key): _plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, depth + 1) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def fingerprint(model: BaseModel) -> str:
    """A digest of a model's type and field values, secret values included: equal
    models (by their fields) have equal fingerprints. Nothing secret can be read
    back from it."""
    text = json.dumps(_plain(model), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()
