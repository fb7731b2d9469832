"""The OpenTelemetry bridge: spans of block calls, live spans, log records, OTLP."""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import SecretStr

from blocks import Block, event_payload
from emitters import MemoryEmitter, configure, flow_run, flush, task_run
from emitters.otel import OpenTelemetryEmitter
from emitters.otel._spans import time_ns
from emitters.testing import capture_events


class OtelVault(Block):
    """Holds a secret and fails with it in the message when asked."""

    token: SecretStr

    def fetch(self, key: str) -> str:
        return key.upper()

    def explode(self) -> None:
        raise RuntimeError(f"login with {self.token.get_secret_value()} refused")


class OtelStore(Block):
    """Calls the vault it holds, and reports the server it talked to."""

    vault: OtelVault

    @event_payload(
        lambda args, result: {"server.address": "db.internal", "server.port": 5432}
    )
    def read(self, key: str) -> str:
        return self.vault.fetch(key)

    def inner_span(self, provider: TracerProvider) -> None:
        with provider.get_tracer("user").start_as_current_span("user.inner"):
            pass

    async def aread(self, key: str) -> str:
        return self.vault.fetch(key)


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A private tracer provider whose finished spans are kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _store() -> OtelStore:
    return OtelStore(vault=OtelVault(token=SecretStr(secrets.token_hex(8))))


def test_call_is_an_internal_span_named_class_dot_method(spans: Any) -> None:
    """One INTERNAL span per call, named <BlockClass>.<method>, with identity."""
    provider, exporter = spans
    configure(emitters=[OpenTelemetryEmitter(tracer_provider=provider)])
    vault = OtelVault(token=SecretStr(secrets.token_hex(8)))
    document_id = vault.save("otel-prod")
    with flow_run("nightly") as flow, task_run("load") as task:
        vault.fetch("a")
    flush()
    (span,) = exporter.get_finished_spans()
    assert span.name == "OtelVault.fetch"
    assert span.kind is SpanKind.INTERNAL
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "block.type": "otel-vault",
        "block.document.id": str(document_id),
        "block.document.name": "otel-prod",
        "flow_run.id": flow.id,
        "flow_run.name": "nightly",
        "task_run.id": task.id,
    }


def test_span_times_are_the_events_times(spans: Any) -> None:
    """A span starts at its started event's time and ends at its outcome's."""
    provider, exporter = spans
    memory = MemoryEmitter()
    configure(emitters=[OpenTelemetryEmitter(tracer_provider=provider), memory])
    OtelVault(token=SecretStr(secrets.token_hex(8))).fetch("a")
    flush()
    started, outcome = memory.events
    (span,) = exporter.get_finished_spans()
    assert span.start_time == time_ns(started.occurred)
    assert span.end_time == time_ns(outcome.occurred)
    assert span.end_time is not None
    assert span.end_time >= span.start_time


def test_call_under_a_user_span_is_its_child(spans: Any) -> None:
    """The span active when the call started is the call span's parent."""
    provider, exporter = spans
    configure(emitters=[OpenTelemetryEmitter(tracer_provider=provider)])
    with provider.get_tracer("user").start_as_current_span("user.job") as job:
        OtelVault(token=SecretStr(secrets.token_hex(8))).fetch("a")
    flush()
    found = _by_name(exporter)
    call = found["OtelVault.fetch"]
    assert _parent_id(call) == job.get_span_context().span_id
    assert call.context.trace_id == job.get_span_context().trace_id


def test_call_without_active_span_is_a_root(spans: Any) -> None:
    """With no active span and no caller, the call's span has no parent."""
    provider, exporter = spans
    configure(emitters=[OpenTelemetryEmitter(tracer_provider=provider)])
    OtelVault(token=SecretStr(secrets.token_hex(8))).fetch("a")
    flush()
    (span,) = exporter.get_finished_spans()
    assert span.parent is None


def test_nested_block_call_is_a_child_of_its_callers_span(spans: Any) -> None:
    """A block called by another block gets the caller's span as parent."""
    provider, exporter = spans
    configure(emitters=[OpenTelemetryEmitter(tracer_provider=provider)])
    with provider.get_tracer("user").start_as_current_span("user.job") as job:
        _store().read("k")
    flush()
    found = _by_name(exporter)
    outer, inner = found["OtelStore.read"], found["OtelVault.fetch"]
    assert _parent_id(outer) == job.get_span_context().span_id
    assert _parent_id(inner) == outer.context.span_id
    assert inner.context.trace_id == outer.context.trace_id


def test_semantic_convention_attributes_come_from_the_payload(spans: Any) -> None:
    """server.address and server.port of the outcome payload land on the span."""
    provider, exporter = spans
    configure(emitters=[OpenTelemetryEmitter(tracer_provider=provider)])
    _store().read("k")
    flush()
    attrs = dict(_by_name(exporter)["OtelStore.read"].attributes or {})
    assert attrs["server.address"] == "db.internal"
    assert attrs["server.port"] == 5432


def test_failed_call_has_error_status_and_masked_message(spans: Any) -> None:
    """A failure sets ERROR, error.type and the message with the secret masked."""
    provider, exporter = spans
    configure(emitters=[OpenTelemetryEmitter(tracer_provider=provider)])
    secret = secrets.token_hex(8)
    with pytest.raises(RuntimeError):
        OtelVault(token=SecretStr(secret)).explode()
    flush()
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "login with ********** refused"
    assert (span.attributes or {})["error.type"] == "RuntimeError"
    assert span.events == ()
    assert secret not in repr(span.to_json())


def test_outcome_without_its_started_event_still_makes_a_span(spans: Any) -> None:
    """A lone outcome event yields a span that starts duration_ms earlier."""
    provider, exporter = spans
    with capture_events() as events:
        OtelVault(token=SecretStr(secrets.token_hex(8))).fetch("a")
    outcome = events[1]
    sink = OpenTelemetryEmitter(tracer_provider=provider)
    sink.emit_batch([outcome])
    (span,) = exporter.get_finished_spans()
    assert span.name == "OtelVault.fetch"
    assert span.end_time == time_ns(outcome.occurred)
    duration_ns = int(outcome.payload["duration_ms"] * 1_000_000)
    assert span.start_time == time_ns(outcome.occurred) - duration_ns


def test_a_bad_event_does_not_lose_the_batch(spans: Any) -> None:
    """An event that cannot become a span is skipped; the next one still is."""
    provider, exporter = spans
    with capture_events() as events:
        OtelVault(token=SecretStr(secrets.token_hex(8))).fetch("a")
    started, outcome = events
    broken = started.model_copy(update={"occurred": None})
    sink = OpenTelemetryEmitter(tracer_provider=provider)
    sink.emit_batch([broken, started, outcome])
    assert [s.name for s in exporter.get_finished_spans()] == ["OtelVault.fetch"]


def test_live_span_is_current_during_the_call(spans: Any) -> None:
    """In live mode a span started inside the block method is its child."""
    provider, exporter = spans
    configure(emitters=[OpenTelemetryEmitter(tracer_provider=provider, live=True)])
    with flow_run("live"):
        _store().inner_span(provider)
    flush()
    found = _by_name(exporter)
    block, inner = found["OtelStore.inner_span"], found["user.inner"]
    assert _parent_id(inner) == block.context.span_id
    assert (block.attributes or {})["flow_run.name"] == "live"
    assert len(found) == 2  # the events are not turned into spans again


def test_live_nested_call_and_failure(spans: Any) -> None:
    """Live spans nest block calls and carry a masked ERROR status."""
    provider, exporter = spans
    configure(emitters=[OpenTelemetryEmitter(tracer_provider=provider, live=True)])
    _store().read("k")
    secret = secrets.token_hex(8)
    with pytest.raises(RuntimeError):
        OtelVault(token=SecretStr(secret)).explode()
    flush()
    found = _by_name(exporter)
    assert (
        _parent_id(found["OtelVault.fetch"]) == found["OtelStore.read"].context.span_id
    )
    assert (found["OtelStore.read"].attributes or {})["server.port"] == 5432
    failed = found["OtelVault.explode"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "login with ********** refused"
    assert (failed.attributes or {})["error.type"] == "RuntimeError"


async def test_live_span_of_an_async_method(spans: Any) -> None:
    """An awaited block method gets a live span that parents its nested call."""
    provider, exporter = spans
    configure(emitters=[OpenTelemetryEmitter(tracer_provider=provider, live=True)])
    assert await _store().aread("k") == "K"
    flush()
    found = _by_name(exporter)
    assert (
        _parent_id(found["OtelVault.fetch"]) == found["OtelStore.aread"].context.span_id
    )


def test_suppressed_instrumentation_records_no_live_span(spans: Any) -> None:
    """Under OpenTelemetry's suppress-instrumentation key no live span is made."""
    provider, exporter = spans
    configure(emitters=[OpenTelemetryEmitter(tracer_provider=provider, live=True)])
    key = otel_context._SUPPRESS_INSTRUMENTATION_KEY
    token = otel_context.attach(otel_context.set_value(key, True))
    try:
        with capture_events() as events:
            OtelVault(token=SecretStr(secrets.token_hex(8))).fetch("a")
    finally:
        otel_context.detach(token)
    OtelVault(token=SecretStr(secrets.token_hex(8))).fetch("b")
    flush()
    assert len(events) == 2  # our own events are still recorded
    assert len(exporter.get_finished_spans()) == 1


def test_suppressed_instrumentation_records_no_span_in_default_mode(
    spans: Any,
) -> None:
    """Under the suppress key the default mode makes no span; the events say why."""
    provider, exporter = spans
    configure(emitters=[OpenTelemetryEmitter(tracer_provider=provider)])
    key = otel_context._SUPPRESS_INSTRUMENTATION_KEY
    token = otel_context.attach(otel_context.set_value(key, True))
    try:
        with capture_events() as events:
            OtelVault(token=SecretStr(secrets.token_hex(8))).fetch("a")
    finally:
        otel_context.detach(token)
    OtelVault(token=SecretStr(secrets.token_hex(8))).fetch("b")
    flush()
    assert len(events) == 2
    for event in events:
        [trace_resource] = event.related_by_role("trace")
        assert trace_resource.labels["suppressed"] == "true"
    assert [s.name for s in exporter.get_finished_spans()] == ["OtelVault.fetch"]


def test_log_records_carry_event_name_and_the_calls_span(spans: Any) -> None:
    """log_records=True emits one record per event, correlated with the span."""
    provider, exporter = spans
    log_exporter = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    sink = OpenTelemetryEmitter(
        tracer_provider=provider, logger_provider=logger_provider, log_records=True
    )
    memory = MemoryEmitter()
    configure(emitters=[sink, memory])
    with pytest.raises(RuntimeError):
        OtelVault(token=SecretStr(secrets.token_hex(8))).explode()
    flush()
    (span,) = exporter.get_finished_spans()
    records = [r.log_record for r in log_exporter.get_finished_logs()]
    assert [r.event_name for r in records] == [e.event for e in memory.events]
    for record, event in zip(records, memory.events, strict=True):
        assert record.body == event.event
        assert record.trace_id == span.context.trace_id
        assert record.span_id == span.context.span_id
        assert record.timestamp == time_ns(event.occurred)
        assert (record.attributes or {})["event.id"] == str(event.id)
    assert (records[1].attributes or {})["error.type"] == "RuntimeError"
    logger_provider.shutdown()


def test_log_records_are_off_by_default(spans: Any) -> None:
    """Without log_records=True the logger provider receives nothing."""
    provider, _ = spans
    log_exporter = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    configure(
        emitters=[
            OpenTelemetryEmitter(
                tracer_provider=provider, logger_provider=logger_provider
            )
        ]
    )
    OtelVault(token=SecretStr(secrets.token_hex(8))).fetch("a")
    flush()
    assert log_exporter.get_finished_logs() == ()
    logger_provider.shutdown()


def test_events_carry_the_active_trace_without_the_otel_emitter(spans: Any) -> None:
    """Our own events name the active span as related otel-trace.<trace id>."""
    provider, _ = spans
    with (
        capture_events() as events,
        provider.get_tracer("user").start_as_current_span("user.job") as job,
    ):
        OtelVault(token=SecretStr(secrets.token_hex(8))).fetch("a")
    ctx = job.get_span_context()
    for event in events:
        (trace,) = event.related_by_role("trace")
        assert trace.id == f"otel-trace.{ctx.trace_id:032x}"
        assert trace.labels == {"span_id": f"{ctx.span_id:016x}"}


def test_the_module_imports_with_the_api_only() -> None:
    """emitters.otel imports when the OpenTelemetry SDK cannot be imported."""
    code = (
        "import sys; sys.modules['opentelemetry.sdk'] = None\n"
        "from emitters.otel import OpenTelemetryEmitter\n"
        "from blocks import Block\n"
        "from emitters import configure, flush\n"
        "class B(Block):\n"
        "    def go(self) -> int:\n"
        "        return 1\n"
        "configure(emitters=[OpenTelemetryEmitter(live=True)])\n"
        "assert B().go() == 1\n"
        "assert flush()\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "ok", out.stderr


# -- end to end over OTLP/HTTP ----------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    """Keeps the raw body of every POST /v1/traces and answers 200."""

    bodies: list[bytes]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path == "/v1/traces":
            self.server.bodies.append(body)  # type: ignore[attr-defined]
            self.send_response(200)
        else:
            self.send_response(404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    """An OTLP/HTTP receiver on 127.0.0.1 that keeps the raw request bodies."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    bodies: list[bytes] = []
    server.bodies = bodies  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", bodies
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_spans_arrive_over_otlp_http_without_secrets(
    receiver: tuple[str, list[bytes]],
) -> None:
    """A real OTLP/HTTP export carries the right spans and no secret byte."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter,
    )

    url, bodies = receiver
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=url)))
    configure(emitters=[OpenTelemetryEmitter(tracer_provider=provider)])
    secret = secrets.token_hex(8)
    store = OtelStore(vault=OtelVault(token=SecretStr(secret)))
    with flow_run("otlp-e2e"):
        store.read("k")
        with pytest.raises(RuntimeError):
            store.vault.explode()
    assert flush()
    provider.shutdown()

    assert bodies
    received: dict[str, Any] = {}
    for body in bodies:
        assert secret.encode() not in body
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                assert scope_spans.scope.name == "eventblocks"
                for span in scope_spans.spans:
                    received[span.name] = span
    assert set(received) == {"OtelStore.read", "OtelVault.fetch", "OtelVault.explode"}
    read, fetch = received["OtelStore.read"], received["OtelVault.fetch"]
    failed = received["OtelVault.explode"]
    assert read.parent_span_id == b""
    assert fetch.parent_span_id == read.span_id
    assert fetch.trace_id == read.trace_id
    assert failed.parent_span_id == b""

    def attrs(span: Any) -> dict[str, Any]:
        return {
            a.key: getattr(a.value, a.value.WhichOneof("value"))
            for a in span.attributes
        }

    assert attrs(read)["flow_run.name"] == "otlp-e2e"
    assert attrs(read)["server.port"] == 5432
    assert attrs(fetch)["block.type"] == "otel-vault"
    assert read.status.code == read.status.STATUS_CODE_UNSET
    assert failed.status.code == failed.status.STATUS_CODE_ERROR
    assert failed.status.message == "login with ********** refused"
    assert attrs(failed)["error.type"] == "RuntimeError"
    assert read.start_time_unix_nano <= fetch.start_time_unix_nano
    assert fetch.end_time_unix_nano <= read.end_time_unix_nano
