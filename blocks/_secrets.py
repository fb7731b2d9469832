"""Secret field types and finding the secret values a block holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Secret, SecretBytes, SecretStr

from emitters._sdk import iter_leaves

__all__ = ["SecretDict", "iter_secret_values"]


class SecretDict(Secret[dict[str, Any]]):
    """A dictionary whose every value is secret, such as extra connection options.

    ``repr``, ``str`` and JSON dumps show ``**********``; ``get_secret_value()``
    returns the dictionary. Every string (and number) inside it is registered for
    redaction when the block that holds it is built.
    """


def _leaves(value: Any) -> Iterator[str]:
    for leaf in iter_leaves(value):
        if isinstance(leaf, str):
            yield leaf
        elif isinstance(leaf, bytes):
            yield leaf.decode("utf-8", "replace")
        elif isinstance(leaf, int | float) and not isinstance(leaf, bool):
            yield str(leaf)


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
