"""The queued records: their one definition, and named accessors for readers.

The caller's thread queues the cheapest thing that carries a call: a list for
the call itself, shared by its ``started`` and outcome records, and a tuple for
the outcome. Building a class instance per call would cost more than the rest
of the hot path, so the layout is positional, defined here once, and every
reader outside the pipeline's own builder goes through the accessors below.

A queued record is one of:

- a **call** (its ``started`` record): the list
  ``[started_id, source, method, run_context, otel_context, caller, start_ns]``,
  made by :func:`new_call`. The dispatcher fills in ``started_id`` and appends the
  call's described parts (resource, related resources, names) once, at
  :data:`CALL_RELATED`.
- an **outcome**: ``(KIND_OUTCOME, call, end_ns, extra_payload | None,
  (error_type, message) | None)``, made by :func:`new_outcome`.
- an **event** built by ``emit_event()``: ``(KIND_EVENT, event)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emitters._context import RunContext

__all__ = [
    "CALL_CALLER",
    "CALL_ID",
    "CALL_METHOD",
    "CALL_OTEL",
    "CALL_RELATED",
    "CALL_RUN",
    "CALL_SOURCE",
    "CALL_T0",
    "KIND_EVENT",
    "KIND_OUTCOME",
    "Call",
    "Record",
    "call_method",
    "call_otel_context",
    "call_run",
    "call_source",
    "new_call",
    "new_outcome",
]

KIND_OUTCOME = 1
KIND_EVENT = 2
CALL_ID, CALL_SOURCE, CALL_METHOD, CALL_RUN, CALL_OTEL, CALL_CALLER, CALL_T0 = range(7)
CALL_RELATED = 7

Call = list[Any]
Record = tuple[Any, ...] | list[Any]


def new_call(
    source: Any,
    method: str,
    run: RunContext | None,
    otel: Mapping[str, Any] | None,
    caller: Call | None,
    start_ns: int,
) -> Call:
    """Return the record of a call that starts now (its ``started`` record).

    The sync wrapper writes the same list literally, since a function call is a
    measurable part of its cost; a test pins that both agree.
    """
    return [None, source, method, run, otel, caller, start_ns]


def new_outcome(
    call: Call,
    end_ns: int,
    extra: dict[str, Any] | None,
    error: tuple[str, str] | None,
) -> tuple[Any, ...]:
    """Return the outcome record of ``call``."""
    return (KIND_OUTCOME, call, end_ns, extra, error)


def call_source(call: Call) -> Any:
    """The object whose method was called (it has ``__eventblocks_source__``)."""
    return call[CALL_SOURCE]


def call_method(call: Call) -> str:
    """The name of the method called."""
    method: str = call[CALL_METHOD]
    return method


def call_run(call: Call) -> RunContext | None:
    """The run context snapshotted when the call started, or None."""
    run: RunContext | None = call[CALL_RUN]
    return run


def call_otel_context(call: Call) -> Mapping[str, Any] | None:
    """The OpenTelemetry context active when the call started, or None."""
    otel: Mapping[str, Any] | None = call[CALL_OTEL]
    return otel
