"""Prefect's flow runs and task runs, read from Prefect's own run context.

Prefect 2.x and 3.x both keep the running flow run in
``prefect.context.FlowRunContext`` and the running task run in ``TaskRunContext``:
context variables of the thread or asyncio task that runs the flow or task. They
are read on the caller's thread at each block call. Prefect is never imported here:
until the user's program has imported ``prefect.context``, the provider answers
None after one dictionary lookup in ``sys.modules``.

Prefect's ids are kept as they are (UUIDs), so they can be pasted into Prefect's UI.
The flow's name, the deployment (its id, and its name where Prefect's runner puts it
in ``PREFECT__DEPLOYMENT_NAME``) and the tags become labels of the runs.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from emitters._model import MAX_NAME
from emitters._pipeline.delivery import throttle
from emitters._run import MAX_RUN_ID, Run, RunContext, RunKind, run_text_problem
from emitters._settings import prefect_deployment_name

__all__ = ["PrefectRunContextProvider"]

SOURCE = "prefect"
_MODULE = "prefect.context"
# sys.modules is one dictionary for the life of the process.
_modules_get = sys.modules.get
_CACHE_MAX = 256

_NOTHING: tuple[Any, Any, RunContext | None] = (None, None, None)
# (flow run object, task run object, flow run name, task run name, the answer)
_Entry = tuple[Any, Any, Any, Any, RunContext | None]


def _no_context() -> None:
    return None


def _getter(context_class: Any) -> Callable[[], Any]:
    """Return a cheap function that reads the current value of a Prefect context.

    Prefect's ``ContextModel.get()`` is ``cls.__var__.get(None)``; calling the
    context variable directly saves a Python call per block call.
    """
    var = getattr(context_class, "__var__", None)
    if isinstance(var, ContextVar):
        return functools.partial(var.get, None)
    getter = getattr(context_class, "get", None)
    return getter if callable(getter) else _no_context


def _tags(run: Any) -> dict[str, str]:
    tags = getattr(run, "tags", None) or ()
    text = ",".join(sorted(str(tag) for tag in tags))
    return {"tags": text} if text else {}


class PrefectRunContextProvider:
    """The run context of a Prefect flow run and task run, in the caller's thread."""

    def __init__(self) -> None:
        self._module: ModuleType | None = None
        self._flow_get: Callable[[], Any] = _no_context
        self._task_get: Callable[[], Any] = _no_context
        self._cache: dict[tuple[int, int], _Entry] = {}
        self._flow_names: dict[str, str] = {}
        # The contexts of the previous call and the answer (it keeps them alive
        # until other contexts are seen, so their ids cannot be reused meanwhile).
        self._last: tuple[Any, Any, RunContext | None] = _NOTHING

    def current_run_context(self) -> RunContext | None:
        """Return Prefect's current flow run and task run, or None outside them."""
        module = _modules_get(_MODULE)
        if module is None:
            return None
        if module is not self._module:
            self._bind(module)
        flow_ctx = self._flow_get()
        task_ctx = self._task_get()
        last = self._last
        if last[0] is flow_ctx and last[1] is task_ctx:
            # The same contexts as the previous call: the same runs (Prefect names a
            # run before it enters the context its code runs in).
            return last[2]
        if flow_ctx is None and task_ctx is None:
            self._last = _NOTHING  # lets the contexts of an ended run go
            return None
        try:
            answer = self._answer(flow_ctx, task_ctx)
        except Exception as exc:
            # A Prefect release whose contexts look different must not break the
            # block call: these contexts then name no run.
            throttle.warn(
                "prefect-context",
                "Prefect's run context could not be read (%s: %s): events are not "
                "tagged with Prefect's runs",
                type(exc).__name__,
                exc,
            )
            answer = None
        self._last = (flow_ctx, task_ctx, answer)
        return answer

    def _answer(self, flow_ctx: Any, task_ctx: Any) -> RunContext | None:
        """Return the runs of these contexts, from a cache keyed by Prefect's runs."""
        flow_run = None if flow_ctx is None else flow_ctx.flow_run
        task_run = None if task_ctx is None else task_ctx.task_run
        hit = self._cache.get((id(flow_run), id(task_run)))
        # The entry holds both objects, so their ids cannot have been reused; a
        # run renamed in place (Prefect names some runs after they start) misses.
        if (
            hit is not None
            and hit[0] is flow_run
            and hit[1] is task_run
            and hit[2] == (None if flow_run is None else flow_run.name)
            and hit[3] == (None if task_run is None else task_run.name)
        ):
            return hit[4]
        return self._remember(flow_ctx, task_ctx, flow_run, task_run)

    def _bind(self, module: ModuleType) -> None:
        self._flow_get = _getter(getattr(module, "FlowRunContext", None))
        self._task_get = _getter(getattr(module, "TaskRunContext", None))
        self._last = _NOTHING
        self._module = module

    def _remember(
        self, flow_ctx: Any, task_ctx: Any, flow_run: Any, task_run: Any
    ) -> RunContext | None:
        answer = self._build(flow_ctx, task_ctx, flow_run, task_run)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[(id(flow_run), id(task_run))] = (
            flow_run,
            task_run,
            None if flow_run is None else flow_run.name,
            None if task_run is None else task_run.name,
            answer,
        )
        return answer

    def _build(
        self, flow_ctx: Any, task_ctx: Any, flow_run: Any, task_run: Any
    ) -> RunContext | None:
        flow: Run | None = None
        if flow_run is not None:
            labels: dict[str, str] = {}
            flow_name = getattr(getattr(flow_ctx, "flow", None), "name", None)
            if flow_name:
                labels["flow-name"] = str(flow_name)
            deployment_id = getattr(flow_run, "deployment_id", None)
            if deployment_id is not None:
                labels["deployment-id"] = str(deployment_id)
                deployment_name = prefect_deployment_name()
                if deployment_name:
                    labels["deployment-name"] = deployment_name
            labels.update(_tags(flow_run))
            flow = _run("flow-run", flow_run.id, flow_run.name, labels)
            if flow is not None:
                if len(self._flow_names) >= _CACHE_MAX:
                    self._flow_names.clear()
                self._flow_names[flow.id] = flow.name
        task: Run | None = None
        if task_run is not None:
            parent = getattr(task_run, "flow_run_id", None)
            if flow_run is not None and parent is not None and parent != flow_run.id:
                # A subflow called inside a task: the task belongs to the outer
                # flow run, not to this one.
                return RunContext(flow, None)
            labels = {}
            task_name = getattr(getattr(task_ctx, "task", None), "name", None)
            if task_name:
                labels["task-name"] = str(task_name)
            labels.update(_tags(task_run))
            task = _run("task-run", task_run.id, task_run.name, labels)
            if flow is None and parent is not None:
                # A task run on a thread that did not inherit the flow's context.
                flow_id = str(parent)
                flow = _run("flow-run", flow_id, self._flow_names.get(flow_id, flow_id))
        if flow is None and task is None:
            return None
        return RunContext(flow, task)


def _run(
    kind: RunKind, run_id: Any, name: Any, labels: dict[str, str] | None = None
) -> Run | None:
    """Return a Prefect run, or None (with a warning) if it cannot name a run."""
    run_id, name = str(run_id), str(name or run_id)
    for what, text, limit in (("id", run_id, MAX_RUN_ID), ("name", name, MAX_NAME)):
        problem = run_text_problem(text, limit)
        if problem:
            throttle.warn(
                f"prefect-{kind}-{what}",
                "a Prefect %s %s %s: events are not tagged with it",
                kind,
                what,
                problem,
            )
            return None
    return Run(run_id, name, labels or {}, kind, SOURCE)
