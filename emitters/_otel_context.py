"""Reading the active OpenTelemetry span cheaply, with the API package only.

The caller's thread only takes a reference to the current OpenTelemetry context
(one ``ContextVar`` read); the pipeline's thread turns it into a ``trace`` related
resource later.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from emitters._model import RelatedResource

__all__ = ["snapshot_otel_context", "trace_related"]


def _fast_snapshot() -> Callable[[], Mapping[str, Any] | None]:
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if isinstance(var, contextvars.ContextVar):
        return var.get
    return otel_context.get_current


snapshot_otel_context: Callable[[], Mapping[str, Any] | None] = _fast_snapshot()
"""Return the current OpenTelemetry context (a mapping), for :func:`trace_related`."""


def trace_related(ctx: Mapping[str, Any] | None) -> RelatedResource | None:
    """Return ``otel-trace.<trace id>`` (role ``trace``) for a valid span, or None."""
    if not ctx:
        return None
    span = trace.get_current_span(ctx)  # type: ignore[arg-type]
    sc = span.get_span_context()
    if not sc.is_valid:
        return None
    return RelatedResource(
        id=f"otel-trace.{sc.trace_id:032x}",
        role="trace",
        labels={"span_id": f"{sc.span_id:016x}"},
    )
