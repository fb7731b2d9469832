"""Block calls as OpenTelemetry spans: a flow where one block calls another.

Run it from the repository root::

    python examples/otel_trace.py

It sends the block calls of a small flow to ``OpenTelemetryEmitter``, with an
OpenTelemetry SDK tracer provider that keeps finished spans in memory, and prints
the span tree: the flow's own span, a ``Catalog.lookup`` call that calls
``Credentials.token`` (a child span), and a failed call whose status message has
the secret masked. Needs ``pip install 'eventblocks[otel]'``.
"""

from __future__ import annotations

import contextlib

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from pydantic import SecretStr

from blocks import Block
from emitters import configure, flow_run, flush
from emitters.otel import OpenTelemetryEmitter

API_KEY = "ak-7f3e9c2d1b"


class Credentials(Block):
    """An API key."""

    api_key: SecretStr

    def token(self) -> str:
        return f"token-for-{len(self.api_key.get_secret_value())}-chars"


class Catalog(Block):
    """A catalog service reached with its credentials."""

    credentials: Credentials
    url: str = "https://catalog.internal"

    def lookup(self, name: str) -> dict[str, str]:
        self.credentials.token()
        return {"name": name, "owner": "data-eng"}

    def remove(self, name: str) -> None:
        key = self.credentials.api_key.get_secret_value()
        raise PermissionError(f"key {key} may not delete {name}")


def print_tree(spans: list[ReadableSpan]) -> None:
    """Print each span under its parent, with status and block attributes."""
    children: dict[int | None, list[ReadableSpan]] = {}
    ids = {s.context.span_id for s in spans}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent if parent in ids else None, []).append(span)

    def show(span: ReadableSpan, depth: int) -> None:
        attrs = span.attributes or {}
        status = span.status.status_code.name
        detail = f" ({span.status.description})" if span.status.description else ""
        block = attrs.get("block.type")
        where = f" block.type={block} flow_run.name={attrs.get('flow_run.name')}"
        print(f"{'  ' * depth}{span.name} [{status}{detail}]{where if block else ''}")
        for child in children.get(span.context.span_id, []):
            show(child, depth + 1)

    for root in children.get(None, []):
        show(root, 0)


def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    configure(emitters=[OpenTelemetryEmitter(tracer_provider=provider)])

    catalog = Catalog(credentials=Credentials(api_key=SecretStr(API_KEY)))
    tracer = provider.get_tracer("example")
    with tracer.start_as_current_span("nightly-etl"), flow_run("nightly-etl"):
        catalog.lookup("orders")
        with contextlib.suppress(PermissionError):
            catalog.remove("orders")
    flush()

    spans = list(exporter.get_finished_spans())
    print_tree(spans)
    assert all(API_KEY not in span.to_json() for span in spans)


if __name__ == "__main__":
    main()
