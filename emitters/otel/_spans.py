"""Building OpenTelemetry spans from a call's ``started`` and outcome events.

This runs on the sink's own thread, from events only: a call's span starts at its
``started`` event's time and ends at its outcome's. Its parent is the span of the
calling block (role ``caller``), else the span that was active when the call
started (role ``trace``), else none.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)

from emitters._model import Event, RelatedResource, Resource

__all__ = [
    "SEMCONV_KEYS",
    "SpanBuilder",
    "call_method",
    "error_attributes",
    "identity_attributes",
    "payload_attributes",
    "span_name",
    "time_ns",
    "trace_parent",
]

SEMCONV_KEYS = (
    "aws.s3.bucket",
    "aws.s3.key",
    "db.system.name",
    "db.namespace",
    "db.operation.name",
    "server.address",
    "server.port",
)
"""Payload keys copied onto a span as they are: OpenTelemetry semantic conventions."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_OUTCOMES = ("succeeded", "failed")
_PENDING_MAX = 10_000
_ENDED_MAX = 10_000

Attributes = dict[str, str | int | float | bool]


def time_ns(when: datetime) -> int:
    """Return ``when`` as integer nanoseconds since the epoch, exactly."""
    return ((when - _EPOCH) // _US) * 1000


def _strip(resource_id: str, prefix: str) -> str:
    return resource_id[len(prefix) :] if resource_id.startswith(prefix) else resource_id


def span_name(related: Iterable[RelatedResource], method: str) -> str:
    """Return ``<BlockClass>.<method>``, the class named by the ``block-type``."""
    for rel in related:
        if rel.role == "block-type":
            return f"{rel.name or _strip(rel.id, 'block-type.')}.{method}"
    return method


def call_method(event_name: str) -> str:
    """Return the method of a block call event name (``block.<slug>.<method>.*``)."""
    return event_name.rsplit(".", 2)[-2]


def identity_attributes(
    resource: Resource, related: Iterable[RelatedResource]
) -> Attributes:
    """Return the block's and the runs' identity as span attributes."""
    attrs: Attributes = {}
    if resource.id.startswith("block-document."):
        attrs["block.document.id"] = _strip(resource.id, "block-document.")
        if resource.name is not None:
            attrs["block.document.name"] = resource.name
    for rel in related:
        if rel.role == "block-type" and "block.type" not in attrs:
            attrs["block.type"] = _strip(rel.id, "block-type.")
        elif rel.role == "flow-run" and "flow_run.id" not in attrs:
            attrs["flow_run.id"] = _strip(rel.id, "flow-run.")
            if rel.name is not None:
                attrs["flow_run.name"] = rel.name
        elif rel.role == "task-run" and "task_run.id" not in attrs:
            attrs["task_run.id"] = _strip(rel.id, "task-run.")
    if "block.type" not in attrs and "block-type" in resource.labels:
        attrs["block.type"] = resource.labels["block-type"]
    return attrs


def payload_attributes(payload: Mapping[str, Any] | None) -> Attributes:
    """Return the semantic-convention entries of an outcome payload."""
    attrs: Attributes = {}
    if not payload:
        return attrs
    for key in SEMCONV_KEYS:
        value = payload.get(key)
        if isinstance(value, str | int | float | bool):
            attrs[key] = value
    return attrs


def error_attributes(span: Span, error_type: str, message: str) -> None:
    """Mark ``span`` failed: status ERROR with ``message`` and ``error.type``.

    The message must already be redacted; no exception event is recorded, since
    its stack trace and arguments are not.
    """
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, message))


def trace_parent(related: Iterable[RelatedResource]) -> SpanContext | None:
    """Return the span context named by the `trace` related resource, or None."""
    for rel in related:
        if rel.role != "trace":
            continue
        try:
            trace_id = int(_strip(rel.id, "otel-trace."), 16)
            span_id = int(rel.labels.get("span_id", ""), 16)
        except ValueError:
            return None
        ctx = SpanContext(
            trace_id,
            span_id,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        return ctx if ctx.is_valid else None
    return None


def _caller_id(related: Iterable[RelatedResource]) -> str | None:
    for rel in related:
        if rel.role == "caller":
            return _strip(rel.id, "event.")
    return None


class SpanBuilder:
    """Turns the block call events of a stream into spans; one thread only.

    Spans of calls in progress are kept by their ``started`` event's id (at most
    10,000, the oldest dropped unended), and the span contexts of recent calls too,
    so a nested call finds its caller's span.
    """

    def __init__(self) -> None:
        self._pending: OrderedDict[str, Span] = OrderedDict()
        self._recent: OrderedDict[str, SpanContext] = OrderedDict()

    @staticmethod
    def is_call_event(event: Event) -> bool:
        """Whether ``event`` is a block call's ``started`` or outcome event."""
        name = event.event
        return (
            name.startswith("block.")
            and name.count(".") >= 3
            and (name.endswith(".started") or name.rsplit(".", 1)[1] in _OUTCOMES)
        )

    def _parent(self, related: tuple[RelatedResource, ...]) -> otel_context.Context:
        caller = _caller_id(related)
        parent: SpanContext | None = None
        if caller is not None:
            span = self._pending.get(caller)
            parent = span.get_span_context() if span is not None else None
            if parent is None:
                parent = self._recent.get(caller)
        if parent is None:
            parent = trace_parent(related)
        if parent is None:
            return otel_context.Context()
        return trace.set_span_in_context(NonRecordingSpan(parent))

    def _start(self, tracer: Tracer, event: Event, start_ns: int) -> Span:
        related = event.related
        return tracer.start_span(
            span_name(related, call_method(event.event)),
            context=self._parent(related),
            kind=SpanKind.INTERNAL,
            attributes=identity_attributes(event.resource, related),
            start_time=start_ns,
        )

    def _remember(self, key: str, span: Span) -> None:
        self._recent[key] = span.get_span_context()
        if len(self._recent) > _ENDED_MAX:
            self._recent.popitem(last=False)

    def add(self, tracer: Tracer, event: Event) -> Span | None:
        """Start or end the span of a call event; return that span."""
        name = event.event
        if name.endswith(".started"):
            key = str(event.id)
            span = self._start(tracer, event, time_ns(event.occurred))
            self._pending[key] = span
            self._remember(key, span)
            if len(self._pending) > _PENDING_MAX:
                # Its outcome never came (or is very late): drop it unended.
                self._pending.popitem(last=False)
            return span
        key = str(event.follows) if event.follows is not None else ""
        end_ns = time_ns(event.occurred)
        found = self._pending.pop(key, None)
        if found is None:
            # The started event was dropped: the outcome alone still says when
            # the call started.
            duration = event.payload.get("duration_ms")
            start_ns = end_ns
            if isinstance(duration, int | float) and not isinstance(duration, bool):
                start_ns = end_ns - int(duration * 1_000_000)
            found = self._start(tracer, event, start_ns)
            if key:
                self._remember(key, found)
        span = found
        span.set_attributes(payload_attributes(event.payload))
        error = event.payload.get("error")
        if name.endswith(".failed"):
            error_type, message = "", ""
            if isinstance(error, Mapping):
                error_type = str(error.get("type", ""))
                message = str(error.get("message", ""))
            error_attributes(span, error_type or "Exception", message)
        span.end(end_time=end_ns)
        return span
