"""Recording method calls as ``started`` and outcome records: the hot path.

:func:`call_wrapper` returns a wrapt-style wrapper ``(wrapped, instance, args,
kwargs)`` for a sync function, a coroutine function, a generator function or an
async generator function. The instance must implement ``__eventblocks_source__``
(see :class:`emitters._pipeline.build.SupportsEventSource`).

Per call, the caller's thread does one flag check, reads two context variables
(and, outside an explicit run scope, asks the run context providers), takes two
monotonic timestamps, sets and resets the active call, puts the block (and the
run context) in the call table under the call's key, and appends two tuples to
the queue (see :mod:`emitters._pipeline.record`). Everything else happens on the
dispatcher's thread. When a sink asked for live spans (``STATE.live``, see
:mod:`emitters.otel._live`), the wrapper also starts and ends the call's span
here.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Mapping,
)
from contextlib import suppress
from time import perf_counter_ns
from typing import Any

from emitters._context import RUN_CONTEXT
from emitters._emitter import LiveCall
from emitters._introspect import qualified_name
from emitters._pipeline.binding import Binder
from emitters._pipeline.pipeline import STATE
from emitters._pipeline.record import (
    CALL_KEY,
    CALLS,
    KIND_CALL,
    KIND_OUTCOME,
    Call,
    call_source,
    new_call,
    new_outcome,
    next_key,
)
from emitters._providers.registry import provided_run_context
from emitters._text import mend_text
from emitters._trace import snapshot_otel_context

__all__ = ["ACTIVE_CALL", "PayloadHook", "call_wrapper", "error_info"]

PayloadHook = Callable[[inspect.BoundArguments, Any], Mapping[str, Any] | None]
Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]

# The call in progress on this thread or task (see emitters._pipeline.record).
ACTIVE_CALL: contextvars.ContextVar[Call | None] = contextvars.ContextVar(
    "eventblocks_active_call", default=None
)

_MASK = 1023
_RECURSION_INFO = ("RecursionError", "maximum recursion depth exceeded")


def error_info(exc: BaseException) -> tuple[str, str]:
    """Return the exception's qualified class name and its message."""
    name = qualified_name(exc)
    try:
        message = mend_text(str(exc))
    except Exception:
        message = f"<{name} whose message could not be read>"
    return name, message


def _hook_payload(
    hook: PayloadHook,
    binder: Binder,
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    outcome: Any,
) -> dict[str, Any] | None:
    # A payload hook must never break the call it describes.
    try:
        bound = binder.bind(instance, args, kwargs)
        extra = hook(bound, outcome)
        if extra is None:
            return None
        if not isinstance(extra, Mapping):
            return {
                "payload_error": f"the payload hook returned a {type(extra).__name__}, "
                "not a mapping"
            }
        return dict(extra)
    except Exception as exc:
        name, message = error_info(exc)
        return {"payload_error": f"the payload hook raised {name}: {message}"}


def call_wrapper(
    function: Callable[..., Any], hook: PayloadHook | None = None
) -> Wrapper:
    """Return the wrapper that records calls of ``function`` on an instance.

    Args:
        function: The plain function as defined in the class body.
        hook: ``fn(bound_arguments, result_or_exception) -> dict`` adding detail to
            the outcome event, called on the caller's thread after the call.
    """
    method = function.__name__
    binder = Binder(inspect.signature(function)) if hook is not None else None
    if inspect.isasyncgenfunction(function):
        return _async_generator_wrapper(method, hook, binder)
    if inspect.isgeneratorfunction(function):
        return _generator_wrapper(method, hook, binder)
    if inspect.iscoroutinefunction(function):
        return _coroutine_wrapper(method, hook, binder)
    return _sync_wrapper(method, hook, binder)


# The sync wrapper, the hot path, does its bookkeeping inline: a helper function
# call costs about a tenth of the per-call budget. The others share _start and
# _finish.

_active_get = ACTIVE_CALL.get
_active_set = ACTIVE_CALL.set
_active_reset = ACTIVE_CALL.reset
_run_get = RUN_CONTEXT.get
_provided = provided_run_context
_otel_get = snapshot_otel_context


def _sync_wrapper(
    method: str, hook: PayloadHook | None, binder: Binder | None
) -> Wrapper:
    # Everything the hot path touches is bound to a closure cell: cheaper than a
    # global lookup on every call.
    st = STATE
    active_get, active_set, active_reset = _active_get, _active_set, _active_reset
    run_get, provided, otel_get, clock = _run_get, _provided, _otel_get, perf_counter_ns
    call_kind, outcome_kind, mask, key_at = KIND_CALL, KIND_OUTCOME, _MASK, CALL_KEY
    sources, runs, contexts, next_count = (
        CALLS.sources,
        CALLS.runs,
        CALLS.contexts,
        next_key,
    )

    def record_sync_call(
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if not st.enabled:
            return wrapped(*args, **kwargs)
        caller = active_get()
        if caller is not None and sources.get(caller[key_at]) is instance:
            return wrapped(*args, **kwargs)
        # What record.new_call does, written out: a call here costs ~50 ns.
        key = next_count()
        sources[key] = instance
        run = run_get() or provided()
        if run is not None:
            runs[key] = run
        otel = otel_get()
        if otel:  # an empty context (no span) is shared: nothing to keep
            contexts[key] = otel
        call = (call_kind, key, method, caller, clock())
        st.append(call)
        if not key & mask:
            st.kick()
        token = active_set(call)
        live_hook = st.live
        live = None if live_hook is None else live_hook.start(call, True)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            end = clock()
            active_reset(token)
            extra = None
            try:
                if hook is not None:
                    assert binder is not None
                    extra = _hook_payload(hook, binder, instance, args, kwargs, exc)
                info = error_info(exc)
                st.weigh(len(info[1]))
                if live is not None:
                    live.end(info, extra)
            except RecursionError:
                # The deepest call of a runaway recursion has no stack left to
                # describe its error: record it without calling anything.
                info = _RECURSION_INFO
            st.append((outcome_kind, call, end, extra, info))
            if not next_count() & mask:
                with suppress(RecursionError):
                    st.kick()
            raise
        end = clock()
        active_reset(token)
        if hook is None:
            if live is not None:
                live.end(None, None)
            st.append((outcome_kind, call, end, None, None))
        else:
            assert binder is not None
            extra = _hook_payload(hook, binder, instance, args, kwargs, result)
            if live is not None:
                live.end(None, extra)
            st.append((outcome_kind, call, end, extra, None))
        if not next_count() & mask:
            st.kick()
        return result

    return record_sync_call


def _start(instance: Any, method: str, caller: Call | None) -> Call:
    """Queue the started record of a call and return the call."""
    run = _run_get() or _provided()
    call = new_call(instance, method, run, _otel_get(), caller, perf_counter_ns())
    STATE.append(call)
    if not call[CALL_KEY] & _MASK:
        STATE.kick()
    return call


def _live_start(call: Call, current: bool) -> LiveCall | None:
    """Start the call's live span, if a sink asked for live spans (else None)."""
    live = STATE.live
    return None if live is None else live.start(call, current)


def _finish(
    call: Call,
    hook: PayloadHook | None,
    binder: Binder | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    result: Any,
    error: BaseException | None,
    extra: dict[str, Any] | None = None,
    live: LiveCall | None = None,
) -> None:
    """Queue the outcome record of a call (coroutines and generators)."""
    end = perf_counter_ns()
    if hook is not None:
        assert binder is not None
        outcome = result if error is None else error
        more = _hook_payload(hook, binder, call_source(call), args, kwargs, outcome)
        if more:
            extra = {**(extra or {}), **more}
    info = None if error is None else error_info(error)
    if info is not None:
        STATE.weigh(len(info[1]))
    if live is not None:
        live.end(info, extra)
    STATE.append(new_outcome(call, end, extra, info))
    if not next_key() & _MASK:
        STATE.kick()


def _coroutine_wrapper(
    method: str, hook: PayloadHook | None, binder: Binder | None
) -> Wrapper:
    st = STATE

    async def traced(
        coro: Awaitable[Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        caller = _active_get()
        if caller is not None and call_source(caller) is instance:
            return await coro
        call = _start(instance, method, caller)
        token = _active_set(call)
        live = _live_start(call, True)
        try:
            result = await coro
        except BaseException as exc:
            _active_reset(token)
            _finish(call, hook, binder, args, kwargs, None, exc, live=live)
            raise
        _active_reset(token)
        _finish(call, hook, binder, args, kwargs, result, None, live=live)
        return result

    def record_coroutine_call(
        wrapped: Callable[..., Coroutine[Any, Any, Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if not st.enabled:
            return wrapped(*args, **kwargs)
        # The call starts when the coroutine runs, in the context of its task.
        return traced(wrapped(*args, **kwargs), instance, args, kwargs)

    return record_coroutine_call


def _generator_wrapper(
    method: str, hook: PayloadHook | None, binder: Binder | None
) -> Wrapper:
    st = STATE

    def traced(
        gen: Generator[Any, Any, Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Generator[Any, Any, Any]:
        caller = _active_get()
        if not st.enabled or (caller is not None and call_source(caller) is instance):
            return (yield from gen)
        call = _start(instance, method, caller)
        # A generator's span is not made current: the consumer's code runs
        # between steps.
        live = _live_start(call, False)
        # Each step runs with this call active, so that calls made inside the
        # generator see it as their caller; it is not active between steps.
        step: Callable[[Any], Any] = gen.send
        value: Any = None
        yielded = 0
        while True:
            token = _active_set(call)
            try:
                item = step(value)
            except StopIteration as stop:
                _active_reset(token)
                extra = {"yielded": yielded}
                _finish(call, hook, binder, args, kwargs, stop.value, None, extra, live)
                return stop.value
            except BaseException as exc:
                _active_reset(token)
                extra = {"yielded": yielded}
                _finish(call, hook, binder, args, kwargs, None, exc, extra, live)
                raise
            _active_reset(token)
            yielded += 1
            try:
                value = yield item
                step = gen.send
            except GeneratorExit:
                token = _active_set(call)
                try:
                    gen.close()
                except BaseException as exc:
                    _active_reset(token)
                    extra = {"yielded": yielded}
                    _finish(call, hook, binder, args, kwargs, None, exc, extra, live)
                    raise
                _active_reset(token)
                extra = {"yielded": yielded, "closed_early": True}
                _finish(call, hook, binder, args, kwargs, None, None, extra, live)
                raise
            except BaseException as exc:
                step, value = gen.throw, exc

    def record_generator_call(
        wrapped: Callable[..., Generator[Any, Any, Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if not st.enabled:
            return wrapped(*args, **kwargs)
        # The call starts when iteration starts and ends when iteration ends.
        return traced(wrapped(*args, **kwargs), instance, args, kwargs)

    return record_generator_call


def _async_generator_wrapper(
    method: str, hook: PayloadHook | None, binder: Binder | None
) -> Wrapper:
    st = STATE

    async def traced(
        agen: AsyncGenerator[Any, Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> AsyncGenerator[Any, Any]:
        caller = _active_get()
        if not st.enabled or (caller is not None and call_source(caller) is instance):
            async for item in agen:
                yield item
            return
        call = _start(instance, method, caller)
        live = _live_start(call, False)
        step: Callable[[Any], Awaitable[Any]] = agen.asend
        value: Any = None
        yielded = 0
        while True:
            token = _active_set(call)
            try:
                item = await step(value)
            except StopAsyncIteration:
                _active_reset(token)
                extra = {"yielded": yielded}
                _finish(call, hook, binder, args, kwargs, None, None, extra, live)
                return
            except BaseException as exc:
                _active_reset(token)
                extra = {"yielded": yielded}
                _finish(call, hook, binder, args, kwargs, None, exc, extra, live)
                raise
            _active_reset(token)
            yielded += 1
            try:
                value = yield item
                step = agen.asend
            except (GeneratorExit, asyncio.CancelledError):
                # GeneratorExit: the caller closed the generator early. A
                # CancelledError at a yield, where the caller is not waiting: the
                # close that the loop scheduled for a generator the caller left
                # (``break``) was cancelled, as asyncio.run does when it ends.
                # Either way the caller's choice, not a failure.
                token = _active_set(call)
                try:
                    await agen.aclose()
                except BaseException as exc:
                    _active_reset(token)
                    extra = {"yielded": yielded}
                    _finish(call, hook, binder, args, kwargs, None, exc, extra, live)
                    raise
                _active_reset(token)
                extra = {"yielded": yielded, "closed_early": True}
                _finish(call, hook, binder, args, kwargs, None, None, extra, live)
                raise
            except BaseException as exc:
                step, value = agen.athrow, exc

    def record_async_generator_call(
        wrapped: Callable[..., AsyncGenerator[Any, Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if not st.enabled:
            return wrapped(*args, **kwargs)
        return traced(wrapped(*args, **kwargs), instance, args, kwargs)

    return record_async_generator_call
