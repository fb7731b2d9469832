"""The run context providers of this process, and asking them in order.

The order is: providers registered in code (latest first), then those named in the
``eventblocks.run_context`` entry point group (by entry point name), then the
built-in ones (Prefect, then Airflow). The built-ins are known here without package
metadata; entry points that name them are skipped. Entry points are read once,
when a run context is first looked for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from emitters._pipeline.delivery import logger, throttle
from emitters._providers.airflow import AirflowRunContextProvider
from emitters._providers.base import RunContextProvider
from emitters._providers.prefect import PrefectRunContextProvider
from emitters._run import RunContext

__all__ = [
    "BUILT_IN",
    "ENTRY_POINT_GROUP",
    "provided_run_context",
    "register_run_context_provider",
    "run_context_providers",
]

ENTRY_POINT_GROUP = "eventblocks.run_context"

# The built-in providers, by the entry point value that pyproject.toml gives them.
BUILT_IN: dict[str, type[RunContextProvider]] = {
    "emitters._providers.prefect:PrefectRunContextProvider": PrefectRunContextProvider,
    "emitters._providers.airflow:AirflowRunContextProvider": AirflowRunContextProvider,
}

Find = Callable[[], RunContext | None]

_lock = threading.RLock()
_registered: list[RunContextProvider] = []
_from_entry_points: list[RunContextProvider] | None = None
_built_in: list[RunContextProvider] = [cls() for cls in BUILT_IN.values()]


def _name(provider: object) -> str:
    cls = type(provider)
    return f"{cls.__module__}.{cls.__qualname__}"


def _load_entry_points() -> list[RunContextProvider]:
    found: list[RunContextProvider] = []
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if entry.value in BUILT_IN:
            continue
        try:
            loaded = entry.load()
            provider = loaded() if isinstance(loaded, type) else loaded
        except Exception as exc:
            # One broken plug-in must not hide the other providers.
            logger.warning(
                "run context provider %r (entry point group %s) failed to load: %s: %s",
                entry.name,
                ENTRY_POINT_GROUP,
                type(exc).__name__,
                exc,
            )
            continue
        if not isinstance(provider, RunContextProvider):
            logger.warning(
                "run context provider %r (entry point group %s) is a %s, which has "
                "no current_run_context() method: it is not used",
                entry.name,
                ENTRY_POINT_GROUP,
                type(provider).__name__,
            )
            continue
        found.append(provider)
    return found


def _ordered() -> list[RunContextProvider]:
    """Return the providers in the order they are asked; call with the lock held."""
    global _from_entry_points
    if _from_entry_points is None:
        # A provider's module may register another provider while it loads.
        _from_entry_points = []
        _from_entry_points = _load_entry_points()
    return [*reversed(_registered), *_from_entry_points, *_built_in]


def run_context_providers() -> list[RunContextProvider]:
    """Return the providers in the order they are asked (reads entry points once)."""
    with _lock:
        return _ordered()


def _rebuild() -> None:
    """Publish the providers before the built-ins for :func:`provided_run_context`."""
    global _others
    with _lock:
        ordered = _ordered()
        others = ordered[: len(ordered) - len(_built_in)]
        _others = tuple(p.current_run_context for p in others)


def _load() -> RunContext | None:
    """The first look-up: read the entry points, then answer."""
    _rebuild()
    return provided_run_context()


# The providers asked before the built-ins: registered ones and entry points; until
# the first look-up, the loader of the entry points.
_others: tuple[Find, ...] = (_load,)
_prefect, _airflow = (p.current_run_context for p in _built_in)


def provided_run_context() -> RunContext | None:
    """Return the first run context a provider gives for the caller, or None.

    This runs on the caller's thread for each block call outside an explicit
    scope. The built-in providers are called directly: they do not raise and
    answer a RunContext or None, which is what ``or`` needs.
    """
    if _others:
        context = _ask(_others)
        if context is not None:
            return context
    return _prefect() or _airflow()


def _ask(finders: tuple[Find, ...]) -> RunContext | None:
    """Ask providers that are not built in, guarding against what they do wrong."""
    for find in finders:
        try:
            context = find()
        except Exception as exc:
            _complain(find, f"raised {type(exc).__name__}: {exc}")
            continue
        if context is not None:
            if isinstance(context, RunContext):
                return context
            _complain(find, f"returned a {type(context).__name__}, not a RunContext")
    return None


def _complain(find: Any, problem: str) -> None:
    name = _name(getattr(find, "__self__", find))
    throttle.warn(
        f"run-context-provider-{name}",
        "run context provider %s %s; the next source is used",
        name,
        problem,
    )


def register_run_context_provider(provider: RunContextProvider) -> Callable[[], None]:
    """Ask ``provider`` for the run context, before the providers known so far.

    Args:
        provider: An object with a ``current_run_context()`` method that returns a
            :class:`~emitters.RunContext` or None (see
            :class:`~emitters.RunContextProvider`).

    Returns:
        A function that removes the provider again.

    Raises:
        TypeError: ``provider`` has no ``current_run_context()`` method.
    """
    if not isinstance(provider, RunContextProvider) or isinstance(provider, type):
        raise TypeError(
            "a run context provider is an object with a current_run_context() "
            f"method, not {provider!r}"
        )
    with _lock:
        _registered.append(provider)
    _rebuild()

    def unregister() -> None:
        with _lock:
            if provider in _registered:
                _registered.remove(provider)
        _rebuild()

    return unregister
