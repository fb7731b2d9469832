"""Live spans: a block call's span, current on the caller's thread during the call.

The call wrappers of :mod:`emitters._pipeline.calls` ask the pipeline's hot state for a
:class:`LiveCalls` hook; when one is installed they start a span before the call
(current for sync and async methods, so spans of instrumented libraries nest under
it) and end it after. Nothing here may raise into the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Tracer

from emitters._context import RunContext, environment_run_context
from emitters._pipeline.build import SourceInfo
from emitters._pipeline.delivery import throttle
from emitters._pipeline.record import (
    Call,
    call_method,
    call_otel_context,
    call_run,
    call_source,
)
from emitters._redact import redact_text
from emitters.otel._spans import (
    error_attributes,
    identity_attributes,
    payload_attributes,
    span_name,
)

__all__ = ["LiveCalls", "LiveSpan"]

_SUPPRESS = otel_context._SUPPRESS_INSTRUMENTATION_KEY
_CACHE_MAX = 4096


class LiveSpan:
    """The span of one call in progress, and the context token that made it current."""

    __slots__ = ("span", "token")

    def __init__(self, span: Span, token: object | None) -> None:
        self.span = span
        self.token = token

    def end(
        self, error: tuple[str, str] | None, extra: Mapping[str, Any] | None
    ) -> None:
        """End the span: semantic attributes from ``extra``, status from ``error``."""
        try:
            span = self.span
            if extra:
                # Straight from the payload hook, not through the pipeline's
                # redaction: mask registered secrets here.
                span.set_attributes(
                    {
                        key: redact_text(value) if isinstance(value, str) else value
                        for key, value in payload_attributes(extra).items()
                    }
                )
            if error is not None:
                # The message comes straight from the exception: mask secrets.
                error_attributes(span, error[0], redact_text(error[1]))
            span.end()
        except Exception as exc:
            _warn(exc)
        finally:
            if self.token is not None:
                try:
                    otel_context.detach(self.token)  # type: ignore[arg-type]
                except Exception as exc:
                    _warn(exc)


class LiveCalls:
    """Starts a span per block call on the caller's thread.

    Args:
        tracer: Returns the tracer to use (looked up once, on first use).
    """

    def __init__(self, tracer: Callable[[], Tracer]) -> None:
        self._get_tracer = tracer
        self._tracer: Tracer | None = None
        self._names: dict[
            tuple[int, int, str], tuple[SourceInfo, RunContext, str, dict[str, Any]]
        ] = {}

    def _describe(self, call: Call) -> tuple[str, dict[str, Any]]:
        info: SourceInfo = call_source(call).__eventblocks_source__()
        run = call_run(call)
        if run is None:
            run = environment_run_context()
        method = call_method(call)
        key = (id(info), id(run), method)
        hit = self._names.get(key)
        if hit is not None and hit[0] is info and hit[1] is run:
            return hit[2], hit[3]
        related = info.related + run.related
        name = span_name(related, method)
        attrs = dict(identity_attributes(info.resource, related))
        if len(self._names) >= _CACHE_MAX:
            self._names.clear()
        # The entry keeps info and run alive, so their ids cannot be reused.
        self._names[key] = (info, run, name, attrs)
        return name, attrs

    def start(self, call: Call, current: bool) -> LiveSpan | None:
        """Start the span of ``call``; make it current if ``current``.

        Returns None, and starts nothing, when instrumentation is suppressed in
        the caller's context or anything goes wrong.
        """
        try:
            ctx = call_otel_context(call)
            if ctx is not None and ctx.get(_SUPPRESS):
                return None
            tracer = self._tracer
            if tracer is None:
                tracer = self._tracer = self._get_tracer()
            name, attrs = self._describe(call)
            span = tracer.start_span(name, kind=SpanKind.INTERNAL, attributes=attrs)
            token = None
            if current:
                token = otel_context.attach(trace.set_span_in_context(span))
            return LiveSpan(span, token)
        except Exception as exc:
            _warn(exc)
            return None


def _warn(exc: Exception) -> None:
    throttle.warn(
        "otel-live",
        "OpenTelemetryEmitter could not record a live span (%s: %s); the call is "
        "not affected",
        type(exc).__name__,
        exc,
    )
