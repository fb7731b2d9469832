"""The OpenTelemetry sink: block calls as spans, and events as log records.

It needs ``opentelemetry-api`` only; the SDK and an exporter are yours to choose
(``pip install 'eventblocks[otel]'`` installs the SDK and the OTLP/HTTP exporter).
"""

from emitters.otel._emitter import OpenTelemetryEmitter

__all__ = ["OpenTelemetryEmitter"]
