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

__all__ = ["SUPPRESSED", "snapshot_otel_context", "trace_related"]


def _fast_snapshot() -> Callable[[], Mapping[str, Any] | None]:
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if isinstance(var, contextvars.ContextVar):
        return var.get
    return otel_context.get_current


snapshot_otel_context: Callable[[], Mapping[str, Any] | None] = _fast_snapshot()
"""Return the current OpenTelemetry context (a mapping), for :func:`trace_related`."""


_SUPPRESS = getattr(
    otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation"
)
# A call made under OpenTelemetry's suppress-instrumentation key, outside any span:
# the event says so, and the OpenTelemetry sink makes no span for it.
SUPPRESSED = RelatedResource(
    id="otel-trace.suppressed", role="trace", labels={"suppressed": "true"}
)


def trace_related(ctx: Mapping[str, Any] | None) -> RelatedResource | None:
    """Return ``otel-trace.<trace id>`` (role ``trace``) for a valid span, or None.

    Under the suppress-instrumentation key the resource carries the label
    ``suppressed: "true"`` (and is :data:`SUPPRESSED` when there is no span).
    """
    if not ctx:
        return None
    suppressed = bool(ctx.get(_SUPPRESS))
    span = trace.get_current_span(ctx)  # type: ignore[arg-type]
    sc = span.get_span_context()
    if not sc.is_valid:
        return SUPPRESSED if suppressed else None
    labels = {"span_id": f"{sc.span_id:016x}"}
    if suppressed:
        labels["suppressed"] = "true"
    return RelatedResource(
        id=f"otel-trace.{sc.trace_id:032x}", role="trace", labels=labels
    )
