"""Instrumenting ``Block`` subclasses when they are defined.

Every public method a subclass defines or inherits from a mixin (plain, ``async
def``, generator and async generator functions) is replaced by a wrapt
``FunctionWrapper`` that records its calls, unless it is excluded: names starting
with ``_`` or ``model_``, ``save``/``load``/``delete``, properties, classmethods,
staticmethods, methods marked :func:`no_events`, and every method of a class with
``events_enabled = False`` or of a process started with ``EVENTBLOCKS_EVENTS=off``.
Excluded methods are left exactly as defined: no wrapper is installed at all.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import wrapt

from emitters._sdk import PayloadHook, call_wrapper

__all__ = [
    "EXCLUDED_NAMES",
    "event_payload",
    "instrument_class",
    "is_instrumented",
    "no_events",
    "public_methods",
]

F = TypeVar("F", bound=Callable[..., Any])

EXCLUDED_NAMES = frozenset({"save", "load", "delete"})
_NO_EVENTS = "__eventblocks_no_events__"
_PAYLOAD_HOOK = "__eventblocks_payload__"


_MARK = "__eventblocks_recorder__"


def _instrumented(function: types.FunctionType, hook: PayloadHook | None) -> Any:
    # A plain FunctionWrapper: a Python subclass of it would cost about 0.3 us more
    # per call. The wrapper function carries the mark that identifies it.
    recorder = call_wrapper(function, hook)
    setattr(recorder, _MARK, True)
    return wrapt.FunctionWrapper(function, recorder)


def _is_ours(raw: Any) -> bool:
    # True for the FunctionWrapper installed on a class and for the bound wrappers
    # wrapt returns when it is looked up: they share the marked wrapper function.
    return isinstance(raw, wrapt.FunctionWrapper | wrapt.BoundFunctionWrapper) and bool(
        getattr(getattr(raw, "_self_wrapper", None), _MARK, False)
    )


def no_events(function: F) -> F:
    """Mark a block method as not instrumented: its calls emit no events.

    Use it for cheap helpers called very often (``ping``, ``is_connected``) whose
    events would only be noise.
    """
    setattr(function, _NO_EVENTS, True)
    return function


def event_payload(
    hook: Callable[[Any, Any], Mapping[str, Any] | None],
) -> Callable[[F], F]:
    """Add detail to a method's outcome event with ``hook``.

    ``hook(bound_arguments, result_or_exception)`` runs on the caller's thread
    after each call and returns a dict merged into the outcome event's payload:
    salient, non-secret facts such as the path read, bytes written or rows
    returned. ``bound_arguments`` is an ``inspect.BoundArguments`` with defaults
    applied (``self`` included). Whatever the hook raises is reported in the
    payload as ``payload_error`` and never reaches the caller; registered secrets
    in its values are masked.

    Example:
        >>> from blocks import Block, event_payload
        >>> class Bucket(Block):
        ...     @event_payload(lambda args, result: {"path": args.arguments["path"]})
        ...     def read_path(self, path: str) -> bytes:
        ...         return b"id,total"
        >>> from emitters.testing import capture_events
        >>> with capture_events() as events:
        ...     _ = Bucket().read_path("orders/2024-06-01.csv")
        >>> events[-1].event, events[-1].payload["path"]
        ('block.bucket.read_path.succeeded', 'orders/2024-06-01.csv')
    """
    if not callable(hook):
        raise TypeError(f"event_payload needs a callable, not {type(hook).__name__}")

    def mark(function: F) -> F:
        setattr(function, _PAYLOAD_HOOK, hook)
        return function

    return mark


def is_instrumented(method: Any) -> bool:
    """Return True if ``method`` (from a class or an instance) records its calls."""
    # Looked up on a class or an instance, wrapt returns a bound wrapper that
    # shares the wrapper function of the one installed on the class.
    return _is_ours(method)


def _candidates(cls: type, stop: frozenset[type]) -> dict[str, Any]:
    """Resolve every public attribute through the MRO, as attribute lookup would."""
    found: dict[str, Any] = {}
    for klass in cls.__mro__:
        if klass in stop:
            continue
        for name, raw in vars(klass).items():
            if name not in found:
                found[name] = raw
    # Attributes the base classes define win when they come first in the MRO.
    for klass in cls.__mro__:
        if klass in stop:
            for name in vars(klass):
                found.pop(name, None)
    return found


def _instrumentable(
    cls: type, stop: frozenset[type]
) -> Iterator[tuple[str, bool, types.FunctionType]]:
    """Yield ``(name, wrapped_now, function)`` for each method the rules cover."""
    for name, raw in _candidates(cls, stop).items():
        if name.startswith(("_", "model_")) or name in EXCLUDED_NAMES:
            continue
        wrapped = isinstance(raw, wrapt.FunctionWrapper) and _is_ours(raw)
        function = raw.__wrapped__ if wrapped else raw
        if not isinstance(function, types.FunctionType):
            continue
        if getattr(function, _NO_EVENTS, False):
            continue
        yield name, wrapped, function


def public_methods(cls: type, stop: frozenset[type]) -> list[str]:
    """Return the names of the methods that emit events when instrumentation is on.

    They are a block type's capabilities, whether or not its events are enabled.
    """
    return sorted(name for name, _, _ in _instrumentable(cls, stop))


def instrument_class(cls: type, *, enabled: bool, stop: frozenset[type]) -> None:
    """Install or remove recording wrappers on ``cls`` for its public methods.

    Args:
        cls: The new ``Block`` subclass.
        enabled: False installs the plain functions (undoing inherited wrappers).
        stop: Classes whose own methods are never instrumented (``Block`` and its
            bases).
    """
    for name, wrapped, function in _instrumentable(cls, stop):
        if enabled and not wrapped:
            hook: PayloadHook | None = getattr(function, _PAYLOAD_HOOK, None)
            setattr(cls, name, _instrumented(function, hook))
        elif wrapped and not enabled:
            setattr(cls, name, function)
