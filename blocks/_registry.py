"""The block type registry: slugs to classes, in this process.

Types register when their class is defined; :func:`block_class` also finds types
through the entry point group ``eventblocks.blocks`` and through the import path
stored with a saved type. Two classes from different modules claiming one slug is
an error; a class defined again in the same module (a re-import, a notebook cell)
replaces the earlier one.

A program's main module is ``__main__``, and the same file is ``__mp_main__`` in a
child that ``multiprocessing`` starts with spawn (as Prefect's runner does for a
served flow). cloudpickle sends classes of ``__main__`` by value, and the child
re-creates them with their module still ``__main__``; so the two names are one
module here, and such a copy is the class defined there, not a rival.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
import threading
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blocks._errors import BlockDefinitionError, BlockNotFoundError

if TYPE_CHECKING:
    from blocks._block import Block
    from blocks._documents.store import DocumentStore

__all__ = [
    "ENTRY_POINT_GROUP",
    "block_class",
    "class_path",
    "entry_point_types",
    "register_file",
    "register_module",
    "register_type",
    "registered_types",
]

ENTRY_POINT_GROUP = "eventblocks.blocks"
_FILE_MODULE_PREFIX = "eventblocks_file_"

_lock = threading.RLock()
_types: dict[str, type[Block]] = {}
_file_modules: dict[str, Path] = {}
_entry_points_loaded = False
_MAIN_MODULES = frozenset({"__main__", "__mp_main__"})


def _home_module(cls: type) -> str:
    """Return the module of ``cls``, the main module's under either name as
    ``__main__``."""
    module = cls.__module__
    return "__main__" if module in _MAIN_MODULES else module


def register_type(cls: type[Block]) -> None:
    """Register ``cls`` under its slug (called when a Block subclass is defined).

    A class from the same module as the registered one replaces it (the main
    module counts as one, under either of its names).

    Raises:
        BlockDefinitionError: Another class, from another module, has the slug.
    """
    slug = cls.block_type_slug
    with _lock:
        existing = _types.get(slug)
        if (
            existing is not None
            and existing is not cls
            and _home_module(existing) != _home_module(cls)
        ):
            raise BlockDefinitionError(
                f"Block types {class_path(existing)} and {class_path(cls)} both claim "
                f"the slug {slug!r}; set block_type_slug on one of them."
            )
        _types[slug] = cls
        # A class whose slug changed after it was defined leaves its old one.
        for other in [k for k, v in _types.items() if v is cls and k != slug]:
            del _types[other]


def registered_types() -> dict[str, type[Block]]:
    """Return the block types known to this process, by slug."""
    with _lock:
        return dict(sorted(_types.items()))


def class_path(cls: type) -> str:
    """Return where ``cls`` can be imported from: ``module:Qualname``.

    A class registered from a file is ``file:/absolute/path.py:Qualname``.
    """
    path = _file_modules.get(cls.__module__)
    if path is not None:
        return f"file:{path}:{cls.__qualname__}"
    return f"{_home_module(cls)}:{cls.__qualname__}"


def _defined_in(module_name: str) -> list[type[Block]]:
    with _lock:
        return [c for c in _types.values() if c.__module__ == module_name]


def register_module(name: str) -> list[type[Block]]:
    """Import the module ``name`` and return the block types it defines.

    Raises:
        BlockNotFoundError: The module cannot be imported.
    """
    try:
        importlib.import_module(name)
    except ImportError as exc:
        raise BlockNotFoundError(f"Cannot import module {name!r}: {exc}.") from None
    return _defined_in(name)


def register_file(path: str | Path) -> list[type[Block]]:
    """Run the Python file at ``path`` as a module and return its block types.

    Raises:
        BlockNotFoundError: The file does not exist or is not a Python file.
    """
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise BlockNotFoundError(f"There is no file {str(path)!r}.")
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    module_name = f"{_FILE_MODULE_PREFIX}{resolved.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise BlockNotFoundError(f"{str(path)!r} is not a Python file.")
    module = importlib.util.module_from_spec(spec)
    with _lock:
        _file_modules[module_name] = resolved
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return _defined_in(module_name)


def entry_point_types() -> dict[str, type[Block]]:
    """Return the block types that installed packages declare, by slug.

    These are the types of the ``eventblocks.blocks`` entry points (the SDK's own
    among them): usable without ``eventblocks register``.
    """
    _load_entry_points()
    modules = tuple(entry.value.partition(":")[0] for entry in _entry_points())
    return {
        slug: cls
        for slug, cls in registered_types().items()
        if any(
            cls.__module__ == module or cls.__module__.startswith(module + ".")
            for module in modules
        )
    }


def _entry_points() -> list[Any]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def _load_entry_points() -> None:
    global _entry_points_loaded
    with _lock:
        if _entry_points_loaded:
            return
        _entry_points_loaded = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as exc:
            # One broken plug-in must not hide the other types.
            import logging

            logging.getLogger("blocks").warning(
                "entry point %r of group %s failed to load: %s: %s",
                entry.name,
                ENTRY_POINT_GROUP,
                type(exc).__name__,
                exc,
            )


def _import_class_path(path: str) -> None:
    if path.startswith("file:"):
        file_part = path[len("file:") :].rsplit(":", 1)[0]
        if Path(file_part).is_file():
            register_file(file_part)
        return
    module = path.split(":", 1)[0]
    if module and module not in _MAIN_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            return


def block_class(slug: str, store: DocumentStore | None = None) -> type[Block]:
    """Return the class of block type ``slug``.

    Looks in this process, then the ``eventblocks.blocks`` entry points, then the
    import path saved with the type in ``store``.

    Raises:
        BlockNotFoundError: No class can be found; the message lists close slugs.
    """
    with _lock:
        cls = _types.get(slug)
    if cls is not None:
        return cls
    _load_entry_points()
    with _lock:
        cls = _types.get(slug)
    if cls is not None:
        return cls
    stored = store.get_type(slug) if store is not None else None
    if stored is not None:
        _import_class_path(stored.class_path)
        with _lock:
            cls = _types.get(slug)
        if cls is not None:
            return cls
        raise BlockNotFoundError(
            f"Block type {slug!r} is saved with class {stored.class_path}, which "
            "cannot be imported here; import its module first or register it with "
            "'eventblocks register'."
        )
    known = set(registered_types())
    if store is not None:
        known.update(t.slug for t in store.list_types())
    close = difflib.get_close_matches(slug, sorted(known), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise BlockNotFoundError(f"There is no block type {slug!r}.{hint}")
