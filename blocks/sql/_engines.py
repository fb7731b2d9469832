"""The SQLAlchemy engine of one credentials block: made on first use, then reused.

Importing a driver happens when an engine is made; a driver that is not installed
is reported with the extra that installs it.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["EngineSlot", "missing_driver_error"]

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


class EngineSlot:
    """Holds one engine, sync or async, made when first needed.

    A sync engine serves every thread. An async engine belongs to the event loop
    that first used it, because its pooled connections cannot move between loops:
    a call from another loop (a second ``asyncio.run``) gets a new engine. A copy of
    the holder starts empty, so copies of a block never share or dispose each
    other's engines.
    """

    __slots__ = ("_engine", "_lock", "_loop")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: Engine | AsyncEngine | None = None
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def __copy__(self) -> EngineSlot:
        return EngineSlot()

    def __deepcopy__(self, memo: dict[int, Any]) -> EngineSlot:
        return EngineSlot()

    def __reduce__(self) -> tuple[type[EngineSlot], tuple[()]]:
        return EngineSlot, ()

    @property
    def current(self) -> Engine | AsyncEngine | None:
        """The engine made so far, if any."""
        return self._engine

    def get(self, make: Callable[[], Engine | AsyncEngine], *, is_async: bool) -> Any:
        """Return the engine, making it with ``make()`` on first use."""
        loop: asyncio.AbstractEventLoop | None = None
        if is_async:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        engine = self._engine
        if engine is not None and self._serves(loop):
            return engine
        with self._lock:
            engine = self._engine
            if engine is None or not self._serves(loop):
                # On another loop, the old engine's connections belong to the old
                # loop: it is left to that loop, and this one gets its own.
                engine = make()
                self._engine = engine
                self._loop = None
            if loop is not None and self._loop is None:
                self._loop = weakref.ref(loop)
            return engine

    def _serves(self, loop: asyncio.AbstractEventLoop | None) -> bool:
        """Whether the engine may serve ``loop`` (None: a sync call)."""
        owner = self._loop
        return loop is None or owner is None or owner() is loop

    def take(self) -> Engine | AsyncEngine | None:
        """Remove and return the engine, for the caller to dispose."""
        with self._lock:
            engine, self._engine, self._loop = self._engine, None, None
        return engine
