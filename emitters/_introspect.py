"""Looking into values: the leaves of nested containers, an exception's qualified
class name, and the version of the installed package.

Each has one definition here, shared by ``emitters`` and (through
``emitters._sdk``) by ``blocks``.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from typing import Any

__all__ = ["iter_leaves", "package_version", "qualified_name"]


def iter_leaves(value: Any, *, max_depth: int = 32, _depth: int = 0) -> Iterator[Any]:
    """Yield every value inside ``value`` that is not a container.

    Dicts (their values), lists, tuples, sets and frozensets are walked, at most
    ``max_depth`` levels deep; anything else, ``None`` included, is a leaf and is
    yielded as it is. A value that is not a container is its own only leaf.
    """
    if isinstance(value, dict):
        if _depth < max_depth:
            for item in value.values():
                yield from iter_leaves(item, max_depth=max_depth, _depth=_depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        if _depth < max_depth:
            for item in value:
                yield from iter_leaves(item, max_depth=max_depth, _depth=_depth + 1)
    else:
        yield value


def qualified_name(exc: BaseException) -> str:
    """Return the class name of ``exc`` with its module, as events name errors.

    Built-in exceptions keep their bare name (``ValueError``); any other is
    ``module.QualName`` (``sqlalchemy.exc.OperationalError``).
    """
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def package_version() -> str:
    """Return the installed eventblocks version, or ``"unknown"`` in a bare checkout."""
    try:
        return importlib.metadata.version("eventblocks")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a checkout
        return "unknown"
