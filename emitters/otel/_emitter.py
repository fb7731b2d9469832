"""The OpenTelemetry sink: block calls as spans, and events as log records.

It needs ``opentelemetry-api`` only; the SDK and an exporter are yours to choose
(``pip install 'eventblocks[otel]'`` installs the SDK and the OTLP/HTTP exporter).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import _logs as otel_logs
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, Tracer, TracerProvider

from emitters._emitter import Emitter
from emitters._model import Event
from emitters._pipeline.delivery import throttle
from emitters.otel._live import LiveCalls
from emitters.otel._spans import (
    SpanBuilder,
    identity_attributes,
    payload_attributes,
    time_ns,
    trace_parent,
)

__all__ = ["OpenTelemetryEmitter"]

_SCOPE = "eventblocks"
_SUPPRESS = otel_context._SUPPRESS_INSTRUMENTATION_KEY
# opentelemetry-api 1.25 has no event_name on log records; newer ones do.
_HAS_EVENT_NAME = "event_name" in inspect.signature(otel_logs.LogRecord).parameters


def _suppressed(event: Event) -> bool:
    """Whether the call was made under the suppress-instrumentation key."""
    return any(
        r.role == "trace" and r.labels.get("suppressed") == "true"
        for r in event.related
    )


class OpenTelemetryEmitter(Emitter):
    """Turns block calls into OpenTelemetry spans, and optionally events into logs.

    Each block method call becomes one span named ``<BlockClass>.<method>``, kind
    INTERNAL, with the call's start and end times, the block's and the runs'
    identity as attributes (``block.type``, ``block.document.id``,
    ``block.document.name``, ``flow_run.id``, ``flow_run.name``, ``task_run.id``)
    and the semantic-convention entries of the outcome payload (``aws.s3.bucket``,
    ``db.system.name``, ``server.address`` ...). A failed call has status ERROR with
    the redacted message and ``error.type``; no exception event is recorded. The
    span's parent is the calling block's span, else the span that was current when
    the call started.

    By default the spans are built on this sink's thread from the ``started`` and
    outcome events, so the caller's thread pays nothing extra; they are not
    current during the call. With ``live=True`` the span is started on the
    caller's thread and is current during the call, so spans of instrumented
    libraries (botocore, SQLAlchemy, httpx) nest under it; the call's events are
    then not turned into spans a second time.

    Nothing is recorded for a call made while OpenTelemetry instrumentation is
    suppressed, in live mode.

    Args:
        tracer_provider: The provider of the tracer; None uses the global one,
            including one installed after this sink was made.
        logger_provider: The provider of the logger for ``log_records``; None uses
            the global one.
        live: Start each call's span on the caller's thread and make it current.
        log_records: Also emit every event as a log record, through the
            OpenTelemetry logs API, correlated with the call's span.
        name: The name it is counted under in ``stats()``.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        logger_provider: otel_logs.LoggerProvider | None = None,
        live: bool = False,
        log_records: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self._tracer_provider = tracer_provider
        self._logger_provider = logger_provider
        self._live = bool(live)
        self._log_records = bool(log_records)
        self._tracer: Tracer | None = None
        self._logger: otel_logs.Logger | None = None
        self._spans = SpanBuilder()
        self._live_calls = LiveCalls(self._get_tracer) if live else None

    def live_calls(self) -> LiveCalls | None:
        """In live mode, the hook that makes each call's span on the caller's thread."""
        return self._live_calls

    @property
    def live(self) -> bool:
        """Whether spans are made on the caller's thread, current during the call."""
        return self._live

    def _get_tracer(self) -> Tracer:
        # Without a provider the API returns a proxy that follows the global
        # provider, also one set later.
        if self._tracer is None:
            self._tracer = trace.get_tracer(
                _SCOPE, tracer_provider=self._tracer_provider
            )
        return self._tracer

    def _get_logger(self) -> otel_logs.Logger:
        if self._logger is None:
            self._logger = otel_logs.get_logger(
                _SCOPE, logger_provider=self._logger_provider
            )
        return self._logger

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Start and end the spans of the batch's block calls; emit log records."""
        if otel_context.get_value(_SUPPRESS):
            return
        spans, live = self._spans, self._live
        for event in events:
            # One bad event must not cost the rest of the batch.
            try:
                span = None
                is_call = spans.is_call_event(event) and not _suppressed(event)
                if is_call and not live:
                    span = spans.add(self._get_tracer(), event)
                if self._log_records:
                    self._log(event, span if is_call else None, is_call)
            except Exception as exc:
                throttle.warn(
                    f"otel:{self.name}",
                    "%s could not turn event %s into telemetry (%s: %s)",
                    self.name,
                    event.id,
                    type(exc).__name__,
                    exc,
                )

    def _log(self, event: Event, span: Span | None, is_call: bool) -> None:
        if is_call:
            attrs: dict[str, Any] = identity_attributes(event.resource, event.related)
            attrs.update(payload_attributes(event.payload))
            attrs["event.id"] = str(event.id)
            if event.follows is not None:
                attrs["event.follows"] = str(event.follows)
            error = event.payload.get("error")
            if isinstance(error, Mapping) and "type" in error:
                attrs["error.type"] = str(error["type"])
        else:
            attrs = dict(event.to_otel_attributes())
        if span is None:
            parent = trace_parent(event.related)
            span = NonRecordingSpan(parent) if parent is not None else None
        failed = event.event.endswith(".failed")
        record: dict[str, Any] = {
            "timestamp": time_ns(event.occurred),
            "observed_timestamp": time.time_ns(),
            "severity_number": (
                otel_logs.SeverityNumber.ERROR
                if failed
                else otel_logs.SeverityNumber.INFO
            ),
            "severity_text": "ERROR" if failed else "INFO",
            "body": event.event,
            "attributes": attrs,
        }
        if span is not None:
            sc = span.get_span_context()
            record.update(
                context=trace.set_span_in_context(span),
                trace_id=sc.trace_id,
                span_id=sc.span_id,
                trace_flags=sc.trace_flags,
            )
        if _HAS_EVENT_NAME:
            record["event_name"] = event.event
        else:
            attrs["event.name"] = event.event
        self._get_logger().emit(otel_logs.LogRecord(**record))

    def flush(self, timeout: float | None = None) -> bool:
        """Force-flush the given providers (the global ones are left alone)."""
        ok = True
        millis = 30_000 if timeout is None else max(0, int(timeout * 1000))
        for provider in (self._tracer_provider, self._logger_provider):
            force_flush = getattr(provider, "force_flush", None)
            if force_flush is None:
                continue
            try:
                ok = bool(force_flush(millis)) and ok
            except Exception:
                ok = False
        return ok
