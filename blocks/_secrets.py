"""Secret field types, finding the secret values a block holds, and registering them.

Every way a block comes into being registers its secrets: the constructor and
``model_validate*`` (through ``model_post_init``), ``model_construct``,
``model_copy``, ``copy.copy``/``deepcopy``, unpickling and ``load``. Assigning a
field registers the new value, at any depth: plain pydantic models inside a
block (``svc.login.password = SecretStr(...)``) have their class's assignment
watched once it is first seen inside a block.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel, Secret, SecretBytes, SecretStr

from emitters._sdk import iter_leaves, register_named

__all__ = [
    "SecretDict",
    "fingerprint",
    "iter_named_secrets",
    "iter_secret_values",
    "register_held_secrets",
]

_MAX_DEPTH = 32
_WATCHED = "__eventblocks_watched__"


class SecretDict(Secret[dict[str, Any]]):
    """A dictionary whose every value is secret, such as extra connection options.

    ``repr``, ``str`` and JSON dumps show ``**********``; ``get_secret_value()``
    returns the dictionary. Every string (and number) inside it is registered for
    redaction when the block that holds it is built.
    """


def _leaves(value: Any, path: str) -> Iterator[tuple[str, str | bytes]]:
    """The text of every leaf in a secret's value, named by its place in it."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}[{key!r}]")
    elif isinstance(value, list | tuple):
        for position, item in enumerate(value):
            yield from _leaves(item, f"{path}[{position}]")
    else:
        for leaf in iter_leaves(value):  # sets, and anything deeper
            if isinstance(leaf, str | bytes):
                yield path, leaf
            elif isinstance(leaf, int | float) and not isinstance(leaf, bool):
                yield path, str(leaf)


def iter_named_secrets(
    value: Any, path: str = "", *, _depth: int = 0
) -> Iterator[tuple[str, str | bytes]]:
    """Yield ``(field path, secret value)`` for every secret inside ``value``.

    Fields, containers and nested models (blocks included) are walked; the path
    names the field (``login.password``, ``options[2]``) for warnings, never the
    value.
    """
    if _depth > _MAX_DEPTH:
        return
    if isinstance(value, SecretStr | SecretBytes | Secret):
        yield from _leaves(value.get_secret_value(), path or "value")
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            inner = f"{path}.{name}" if path else name
            yield from iter_named_secrets(
                getattr(value, name, None), inner, _depth=_depth + 1
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_named_secrets(item, f"{path}[{key!r}]", _depth=_depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for position, item in enumerate(value):
            yield from iter_named_secrets(
                item, f"{path}[{position}]", _depth=_depth + 1
            )


def iter_secret_values(value: Any) -> Iterator[str]:
    """Yield every secret value inside ``value`` as text."""
    for _, leaf in iter_named_secrets(value):
        yield leaf if isinstance(leaf, str) else leaf.decode("utf-8", "replace")


# id(plain model) -> (the model, the block that holds it), both weakly: a value
# assigned inside the model is held by that block, so it stays registered while
# the block lives (its queued events may still carry it), not only the model.
_roots: dict[int, tuple[weakref.ref[Any], weakref.ref[Any]]] = {}


def _forget(key: int) -> Callable[[weakref.ref[Any]], None]:
    def forget(_: weakref.ref[Any]) -> None:
        _roots.pop(key, None)

    return forget


def _watch_models(value: Any, root: object, *, _depth: int = 0) -> None:
    """Watch assignment on every plain pydantic model in ``value``, held by ``root``."""
    if _depth > _MAX_DEPTH:
        return
    if isinstance(value, BaseModel):
        cls = type(value)
        if getattr(cls, "__eventblocks_block__", False):
            root = value  # a nested block holds what is inside it
        else:
            _watch_class(cls)
            if value is not root:
                # Not weakly referable: the model holds its own values.
                with contextlib.suppress(TypeError):
                    _roots[id(value)] = (
                        weakref.ref(value, _forget(id(value))),
                        weakref.ref(root),
                    )
        for name in cls.model_fields:
            _watch_models(getattr(value, name, None), root, _depth=_depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _watch_models(item, root, _depth=_depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _watch_models(item, root, _depth=_depth + 1)


def _holder(model: BaseModel) -> object:
    entry = _roots.get(id(model))
    if entry is not None and entry[0]() is model:
        root = entry[1]()
        if root is not None:
            return root
    return model


def _watch_class(cls: type[BaseModel]) -> None:
    if cls.__dict__.get(_WATCHED):
        return
    original = cls.__setattr__

    def __setattr__(self: BaseModel, name: str, value: Any) -> None:
        original(self, name, value)
        if not name.startswith("_"):
            register_held_secrets(
                _holder(self),
                type(self).__name__,
                getattr(self, name, None),
                prefix=name,
            )

    cls.__setattr__ = __setattr__  # type: ignore[method-assign, assignment]
    setattr(cls, _WATCHED, True)


def register_held_secrets(
    owner: object, where: str, value: Any, *, prefix: str = ""
) -> None:
    """Register the secrets in ``value`` while ``owner`` lives; watch its models.

    Args:
        owner: Whose collection releases them (a block, a model inside one).
        where: The owner's name in a warning about a refused value.
        value: The owner itself, or a value just assigned to one of its fields.
        prefix: The field ``value`` was assigned to, for warnings.
    """
    register_named(owner, where, iter_named_secrets(value, prefix))
    _watch_models(value, owner)


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
