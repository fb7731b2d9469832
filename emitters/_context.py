"""Run context: which flow run and task run the current code belongs to.

The sources, first match wins: an explicit ``flow_run(...)``/``task_run(...)``
scope; then the run context providers (Prefect's run context, Airflow's variables,
and any registered or installed one: see :mod:`emitters._providers`); then the
environment (``EVENTBLOCKS_FLOW_RUN_ID`` and ``EVENTBLOCKS_FLOW_RUN_NAME``, or
Prefect's ``PREFECT__FLOW_RUN_ID``), which names a flow run only. Scopes live in a
``ContextVar``, so they follow asyncio tasks; :func:`bind_context` carries them into
threads.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from emitters._ids import new_uuid7
from emitters._model import MAX_NAME
from emitters._providers.registry import provided_run_context
from emitters._run import (
    MAX_RUN_ID,
    SOURCE_LABEL,
    Run,
    RunContext,
    RunKind,
    run_text_problem,
)
from emitters._settings import flow_run_id, flow_run_name

__all__ = [
    "Run",
    "RunContext",
    "RunKind",
    "RunScope",
    "bind_context",
    "current_run",
    "current_run_context",
    "environment_run_context",
    "flow_run",
    "snapshot_run_context",
    "task_run",
]

P = ParamSpec("P")
R = TypeVar("R")

_EMPTY = RunContext()
# The explicit scopes only; see snapshot_run_context for what a block call reads.
RUN_CONTEXT: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "eventblocks_run_context", default=None
)

_env_cache: tuple[tuple[str | None, str | None], RunContext] | None = None


def environment_run_context() -> RunContext:
    """Return the run context named by the environment (empty when none is set)."""
    global _env_cache
    run_id = flow_run_id()
    name = flow_run_name()
    key = (run_id, name)
    cached = _env_cache
    if cached is not None and cached[0] == key:
        return cached[1]
    if run_id and (problem := run_text_problem(run_id, MAX_RUN_ID)):
        logging.getLogger("emitters").warning(
            "the flow run id in the environment %s: events are not tagged with it",
            problem,
        )
        run_id = None
    if name and (problem := run_text_problem(name, MAX_NAME)):
        logging.getLogger("emitters").warning(
            "the flow run name in the environment %s: the run id names the run",
            problem,
        )
        name = None
    ctx = (
        _EMPTY
        if not run_id
        else RunContext(Run(run_id, name or run_id, source="environment"))
    )
    _env_cache = (key, ctx)
    return ctx


_run_get = RUN_CONTEXT.get


def snapshot_run_context() -> RunContext | None:
    """Return the caller's explicit scopes or a provider's runs; None for neither.

    A block call keeps this with its records; None stands for the environment's
    run, which the dispatcher reads when it builds the events.
    """
    return _run_get() or provided_run_context()


def current_run_context() -> RunContext:
    """Return the active run context: explicit scopes, providers, the environment."""
    ctx = _run_get() or provided_run_context()
    return ctx if ctx is not None else environment_run_context()


def current_run(kind: RunKind = "flow-run") -> Run | None:
    """Return the innermost active run of ``kind``, or None.

    Args:
        kind: ``"flow-run"`` (the default) or ``"task-run"``.
    """
    if kind not in ("flow-run", "task-run"):
        raise ValueError(f"kind must be 'flow-run' or 'task-run', not {kind!r}")
    ctx = current_run_context()
    return ctx.flow if kind == "flow-run" else ctx.task


class RunScope:
    """A run scope: a context manager and a decorator for sync and async functions.

    As a context manager it starts one run; as a decorator it starts a new run for
    every call of the function (with the same ``id`` if one was given).
    """

    def __init__(
        self,
        kind: RunKind,
        name: str,
        *,
        id: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {kind} needs a non-empty name, got {name!r}")
        if id is not None and (not isinstance(id, str) or not id):
            raise ValueError(f"a {kind} id must be a non-empty string, got {id!r}")
        for what, text, limit in (("name", name, MAX_NAME), ("id", id, MAX_RUN_ID)):
            problem = None if text is None else run_text_problem(text, limit)
            if problem:
                raise ValueError(f"the {kind} {what} {problem}")
        clean_labels: dict[str, str] = {}
        for key, value in (labels or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(
                    f"{kind} labels must map strings to strings; "
                    f"label {key!r} has a {type(value).__name__} value"
                )
            clean_labels[key] = value
        if SOURCE_LABEL in clean_labels:
            raise ValueError(
                f"the {kind} label {SOURCE_LABEL!r} is reserved: events set it to "
                "where the run came from ('eventblocks' for this scope)"
            )
        self.kind: RunKind = kind
        self.name = name
        self.id = id
        self.labels = clean_labels
        self._tokens: list[contextvars.Token[RunContext | None]] = []

    def _new_run(self) -> Run:
        return Run(self.id or str(new_uuid7()), self.name, self.labels, self.kind)

    def _enter(self) -> tuple[Run, contextvars.Token[RunContext | None]]:
        run = self._new_run()
        outer = current_run_context()
        if self.kind == "flow-run":
            # A new flow run starts a fresh task scope: tasks belong to one flow run.
            ctx = RunContext.of(run, None)
        else:
            ctx = RunContext.of(outer.flow, run)
        return run, RUN_CONTEXT.set(ctx)

    def __enter__(self) -> Run:
        run, token = self._enter()
        self._tokens.append(token)
        return run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        RUN_CONTEXT.reset(self._tokens.pop())

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def arun(*args: P.args, **kwargs: P.kwargs) -> Any:
                _, token = self._enter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    RUN_CONTEXT.reset(token)

            return arun

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> Any:
            _, token = self._enter()
            try:
                return fn(*args, **kwargs)
            finally:
                RUN_CONTEXT.reset(token)

        return run


def flow_run(
    name: str, *, id: str | None = None, labels: Mapping[str, str] | None = None
) -> RunScope:
    """Start a flow run: ``with flow_run("etl") as run:`` or ``@flow_run("etl")``.

    Every block call inside carries the run as a related resource
    (``flow-run.<id>``, role ``flow-run``). A flow run inside another one is a
    subflow: it becomes the current flow run until it ends.

    Args:
        name: The run's name, usually the flow's.
        id: The run's id; a new UUIDv7 string when not given.
        labels: String labels attached to the run's related resource.
    """
    return RunScope("flow-run", name, id=id, labels=labels)


def task_run(
    name: str, *, id: str | None = None, labels: Mapping[str, str] | None = None
) -> RunScope:
    """Start a task run inside the current flow run (if any); see :func:`flow_run`."""
    return RunScope("task-run", name, id=id, labels=labels)


def bind_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Return ``fn`` bound to a copy of the current context, for another thread.

    ``threading.Thread`` and executors start with an empty context; a function
    bound here sees the caller's flow run and task run wherever it runs.
    """
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.copy().run(fn, *args, **kwargs)

    return cast(Callable[P, R], bound)
