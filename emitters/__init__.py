"""eventblocks' event layer: the event model, run context, pipeline and sinks.

It stands on its own: any code can emit events with :func:`emit_event`, inside
:func:`flow_run` and :func:`task_run` scopes (or the runs a
:class:`RunContextProvider` finds, such as Prefect's), into the sinks given to
:func:`configure`.
"""

from emitters._console import ConsoleEmitter
from emitters._context import bind_context, current_run, flow_run, task_run
from emitters._emit import emit_event
from emitters._emitter import Emitter, MemoryEmitter, PartialDelivery
from emitters._model import Event, RelatedResource, Resource
from emitters._observed import observed_event_id, related_runs
from emitters._pipeline.pipeline import configure, flush, shutdown, stats
from emitters._processors import DropEvent, event_filter, sampler
from emitters._providers.base import RunContextProvider
from emitters._providers.registry import register_run_context_provider
from emitters._redact import register_secret
from emitters._run import Run, RunContext

__all__ = [
    "ConsoleEmitter",
    "DropEvent",
    "Emitter",
    "Event",
    "MemoryEmitter",
    "PartialDelivery",
    "RelatedResource",
    "Resource",
    "Run",
    "RunContext",
    "RunContextProvider",
    "bind_context",
    "configure",
    "current_run",
    "emit_event",
    "event_filter",
    "flow_run",
    "flush",
    "observed_event_id",
    "register_run_context_provider",
    "register_secret",
    "related_runs",
    "sampler",
    "shutdown",
    "stats",
    "task_run",
]
