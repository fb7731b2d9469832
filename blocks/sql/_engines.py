"""The SQLAlchemy engines of credentials blocks: made on first use, shared by
equal blocks, disposed when the last block that holds one lets it go.

Equal credentials blocks (a document loaded twice, or loaded once and built once
in code) share one engine and its pool, as equal AWS credentials share their
clients. Each block holds the shared engine through its :class:`EngineSlot`; the
engine is disposed when the last holder releases it, so closing one block never
disposes an engine another block still uses. A forked child starts with empty
pools: connections are never shared across processes.

Importing a driver happens when an engine is made; a driver that is not installed
is reported with the extra that installs it.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["EngineSlot", "SharedEngine", "missing_driver_error"]

# The Python package each extra installs, for the drivers eventblocks tests with.
_EXTRAS = {
    "psycopg": "postgres",
    "psycopg_binary": "postgres",
    "pymysql": "mysql",
    "asyncpg": "async",
    "aiosqlite": "async",
    "greenlet": "async",
}


def _missing_module(exc: BaseException) -> str | None:
    """The top-level module whose absence caused ``exc``, if one did."""
    link: BaseException | None = exc
    for _ in range(8):
        if link is None:
            return None
        if isinstance(link, ModuleNotFoundError) and link.name:
            return link.name.split(".", 1)[0]
        link = link.__cause__ or link.__context__
    return None


def missing_driver_error(exc: ImportError, drivername: str) -> ImportError | None:
    """Return an ``ImportError`` that names what to install for ``drivername``.

    Returns None when ``exc`` is not about a missing module.
    """
    module = _missing_module(exc)
    if module is None:
        return None
    extra = _EXTRAS.get(module.lower())
    if extra is not None:
        fix = f"pip install 'eventblocks[{extra}]'"
    else:
        fix = f"install the package that provides the {module} module"
    return ImportError(
        f"The database driver {drivername} needs the Python module {module}, which "
        f"is not installed: {fix}.",
        name=module,
    )


class SharedEngine:
    """One engine shared by equal credentials blocks, with its holders' count.

    Attributes:
        key: The blocks' fingerprint, a digest that shows nothing secret.
        engine: The engine.
        options: The ``create_engine`` options it was made with.
        holders: How many slots hold it.
    """

    __slots__ = ("_loop", "engine", "holders", "key", "options")

    def __init__(
        self, key: str, engine: Engine | AsyncEngine, options: Mapping[str, Any]
    ) -> None:
        self.key = key
        self.engine = engine
        self.options = dict(options)
        self.holders = 0
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def __repr__(self) -> str:
        # The engine's repr masks the password; the key is a digest.
        return (
            f"SharedEngine(key={self.key[:12]}..., engine={self.engine!r}, "
            f"holders={self.holders})"
        )

    def serves(self, loop: asyncio.AbstractEventLoop | None) -> bool:
        """Whether the engine may serve ``loop`` (None: a sync call)."""
        owner = self._loop
        return loop is None or owner is None or owner() is loop

    def bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Tie an async engine to the first loop that uses it."""
        if loop is not None and self._loop is None:
            self._loop = weakref.ref(loop)


# The engines of equal blocks, by fingerprint: one per event loop for async
# drivers, since an async engine's connections cannot move between loops.
_SHARED: dict[str, list[SharedEngine]] = {}
# Reentrant: a holder collected while the lock is held releases its hold under it.
_LOCK = threading.RLock()


def _release(entry: SharedEngine) -> bool:
    """Drop one holder of ``entry``; True when it was the last (call with _LOCK)."""
    entry.holders -= 1
    if entry.holders > 0:
        return False
    found = _SHARED.get(entry.key, [])
    if entry in found:
        found.remove(entry)
    if not found:
        _SHARED.pop(entry.key, None)
    return True


def _forget(entry: SharedEngine) -> None:
    """A holder was collected without closing: drop its hold, dispose nothing
    (an engine nobody holds is collected, as an unshared one would be)."""
    with _LOCK:
        _release(entry)


def _after_fork() -> None:
    # The parent's pooled connections must not be used by a forked child: each
    # engine starts a new, empty pool here, leaving the parent's sockets alone.
    global _LOCK
    _LOCK = threading.RLock()
    for entries in _SHARED.values():
        for entry in entries:
            engine = entry.engine
            sync = engine if isinstance(engine, Engine) else engine.sync_engine
            sync.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork)


class EngineSlot:
    """One block's hold on a shared engine, sync or async, taken when first needed.

    A sync engine serves every thread. An async engine belongs to the event loop
    that first used it, because its pooled connections cannot move between loops:
    a call from another loop (a second ``asyncio.run``) gets another engine. A copy
    of the holder starts empty: it takes its own hold when it needs an engine.
    """

    __slots__ = ("__weakref__", "_finalizer", "_lease")

    def __init__(self) -> None:
        self._lease: SharedEngine | None = None
        self._finalizer: weakref.finalize[[SharedEngine], EngineSlot] | None = None

    def __copy__(self) -> EngineSlot:
        return EngineSlot()

    def __deepcopy__(self, memo: dict[int, Any]) -> EngineSlot:
        return EngineSlot()

    def __reduce__(self) -> tuple[type[EngineSlot], tuple[()]]:
        return EngineSlot, ()

    def __repr__(self) -> str:
        return f"EngineSlot({self._lease!r})"

    @property
    def current(self) -> Engine | AsyncEngine | None:
        """The engine held, if any."""
        lease = self._lease
        return lease.engine if lease is not None else None

    def get(
        self,
        key: str,
        make: Callable[[], Engine | AsyncEngine],
        options: Mapping[str, Any],
        *,
        is_async: bool,
        insist: bool,
    ) -> Any:
        """Return the engine of ``key``: the one held, another holder's, or one
        made now with ``make()`` (which uses ``options``).

        Args:
            key: The credentials' fingerprint; equal blocks share its engine.
            make: Makes a new engine with ``options``.
            options: The ``create_engine`` options of an engine made now.
            is_async: Whether the engine is an ``AsyncEngine``.
            insist: The caller asked for ``options``: an engine made with other
                ones is a ``ValueError`` instead of being returned.
        """
        loop: asyncio.AbstractEventLoop | None = None
        if is_async:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        lease = self._lease
        if lease is not None and lease.serves(loop) and not insist:
            return lease.engine
        with _LOCK:
            lease = self._lease
            if lease is not None and not lease.serves(loop):
                # On another loop, the old engine's connections belong to the old
                # loop: it is left to that loop, and this one gets its own.
                self._drop()
                lease = None
            if lease is None:
                lease = next((e for e in _SHARED.get(key, ()) if e.serves(loop)), None)
            if lease is not None and insist and lease.options != dict(options):
                raise ValueError(
                    "The engine was made already, with other options "
                    f"({', '.join(sorted(lease.options)) or 'none'}): call close() "
                    "(await aclose() for an async engine) first, on this block and "
                    "on every equal credentials block, which share the engine; "
                    "then get_engine(...) with the new ones"
                )
            if lease is None:
                lease = SharedEngine(key, make(), options)
                _SHARED.setdefault(key, []).append(lease)
            if lease is not self._lease:
                lease.holders += 1
                self._lease = lease
                self._finalizer = weakref.finalize(self, _forget, lease)
                self._finalizer.atexit = False
            lease.bind(loop)
            return lease.engine

    def _drop(self) -> bool:
        """Let go of the held engine; True when no other holder has it (call with
        _LOCK held)."""
        lease, self._lease = self._lease, None
        finalizer, self._finalizer = self._finalizer, None
        if finalizer is not None:
            finalizer.detach()
        return lease is not None and _release(lease)

    def release(self) -> Engine | AsyncEngine | None:
        """Let go of the engine; return it, for the caller to dispose, when this
        was its last holder, else None."""
        with _LOCK:
            lease = self._lease
            last = self._drop()
        return lease.engine if last and lease is not None else None
