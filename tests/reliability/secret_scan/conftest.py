"""The secret scan's machinery: distinctive secrets, every sink, every log record,
and the search through every byte they produced.

The secrets have characters that URL encoding changes (``/+=&%?`` and a space).
The bytes searched: the events of the memory sink, the console sink's stream and
the process's stdout and stderr, every file left in the test's folders (the events
file, the SQLite database and its WAL, the HTTP spool, decompressed), every row of
every eventblocks table on SQLite and PostgreSQL (only the ``{"$secret": ...}``
values of documents, Fernet tokens, left out), the HTTP sink's request bodies and
the OTLP/HTTP span and log exports as received, every log record of every logger at
DEBUG, and whatever a test adds (the CLI's output). A test that uses the ``scan``
fixture fails if any form of any secret is found anywhere.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa

from blocks import DocumentStore
from emitters import ConsoleEmitter, MemoryEmitter, configure, flush
from emitters.file import FileEmitter
from emitters.http import HttpEmitter
from emitters.sql import SQLEventStore

SPECIALS = "/+=&%? x"


def _secret(label: str) -> str:
    return f"{label}-{secrets.token_hex(6)}{SPECIALS}{secrets.token_hex(3)}"


def forms(secret: str) -> dict[str, bytes]:
    """The byte strings that betray ``secret``: raw, URL-encoded, base64-encoded.

    Base64 is searched at the three alignments a secret can have inside a longer
    text (a ``user:password`` pair, a JSON body): the groups that mix in
    neighbouring bytes are left out of each pattern.
    """
    raw = secret.encode()
    out = {
        "raw": raw,
        "url": quote(secret, safe="").encode(),
        "url-plus": quote_plus(secret).encode(),
        "url-path": quote(secret).encode(),
        "json": json.dumps(secret)[1:-1].encode(),
    }
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        core = encoded[4 if shift else 0 : -4]
        out[f"base64@{shift}"] = core
        out[f"base64url@{shift}"] = core.translate(bytes.maketrans(b"+/", b"-_"))
    return out


class Receiver(BaseHTTPRequestHandler):
    """A local API, webhook, OTLP and event receiver that keeps every body."""

    protocol_version = "HTTP/1.1"

    def _reply(self, status: int, body: bytes = b"{}", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        server: Any = self.server
        if self.path.startswith(("/events", "/v1/traces", "/v1/logs")):
            server.bodies.append(body)
        if "fail" in self.path or "broken" in self.path:
            self._reply(500, b'{"error": "down"}')
        elif "missing" in self.path:
            self._reply(404, b'{"error": "no such thing"}')
        elif "redirect" in self.path:
            self._reply(302, Location="/v1/missing?page=2")
        else:
            self._reply(200 if not self.path.startswith("/hooks") else 204, b"")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    """The local server's base URL and the bodies it kept."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    bodies: list[bytes] = []
    server.bodies = bodies  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    server.shutdown()
    server.server_close()
    thread.join(5)


class Records(logging.Handler):
    """Keeps every log record of every logger, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the formatted record."""
        self.lines.append(self.format(record))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Scan:
    """The sinks of one test, and the search through everything they produced."""

    def __init__(
        self,
        tmp: Path,
        home: Path,
        base_url: str,
        bodies: list[bytes],
        capfd: pytest.CaptureFixture[str],
        postgres_url: str,
    ) -> None:
        self.postgres_url = postgres_url
        from opentelemetry.exporter.otlp.proto.http._log_exporter import (
            OTLPLogExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        from emitters.otel import OpenTelemetryEmitter

        self.tmp, self.home, self.bodies, self.capfd = tmp, home, bodies, capfd
        self.stopped = False
        self.secrets: dict[str, str] = {}
        self.outputs: dict[str, Callable[[], bytes]] = {}
        self.memory = MemoryEmitter()
        self.console = _Stream()
        self.tracers = [TracerProvider(shutdown_on_exit=False) for _ in range(2)]
        for provider in self.tracers:
            provider.add_span_processor(
                SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base_url}/v1/traces"))
            )
        self.logs = LoggerProvider(shutdown_on_exit=False)
        self.logs.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{base_url}/v1/logs"))
        )
        self.spool = tmp / "spool"
        self.pg_store = SQLEventStore(self.postgres_url, name="pg-store")
        self.sinks = [
            self.memory,
            ConsoleEmitter(self.console, name="console"),
            ConsoleEmitter(name="stderr"),
            FileEmitter(tmp / "events.jsonl"),
            SQLEventStore(),
            self.pg_store,
            HttpEmitter(
                f"{base_url}/events",
                headers={"Authorization": f"Bearer {self.add('sink-token')}"},
                spool_dir=self.spool,
                name="http",
            ),
            # Its endpoint is down: every batch goes to the spool.
            HttpEmitter(
                f"http://127.0.0.1:{_closed_port()}/events",
                spool_dir=self.spool,
                max_retries=0,
                name="http-down",
            ),
            OpenTelemetryEmitter(
                tracer_provider=self.tracers[0],
                logger_provider=self.logs,
                log_records=True,
                name="otel",
            ),
            OpenTelemetryEmitter(
                tracer_provider=self.tracers[1], live=True, name="otel-live"
            ),
        ]
        self.records = Records()

    def add(self, label: str, *, plain: bool = False) -> str:
        """Return a new distinctive secret, searched for at the end.

        Args:
            label: What it is, for the report.
            plain: Letters, digits and hyphens only, for a URL path.
        """
        value = f"{label}-{secrets.token_hex(10)}" if plain else _secret(label)
        self.secrets[label] = value
        return value

    def start(self) -> None:
        """Configure every sink and record every logger at DEBUG."""
        configure(emitters=self.sinks)
        root = logging.getLogger()
        self._levels = {
            name: logging.getLogger(name).level
            for name in ("", "sqlalchemy", "sqlalchemy.engine")
        }
        root.setLevel(logging.DEBUG)
        root.addHandler(self.records)
        # SQLAlchemy keeps its loggers at WARNING unless asked: ask, as echo does.
        logging.getLogger("sqlalchemy").setLevel(logging.DEBUG)

    def stop(self) -> None:
        """Deliver everything, close the sinks and stop recording logs."""
        self.stopped = True
        flush(30)
        configure(emitters=[])
        for provider in self.tracers:
            provider.shutdown()
        self.logs.shutdown()
        logging.getLogger().removeHandler(self.records)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)

    def assert_clean(self) -> None:
        """Stop, then fail if any form of any secret is anywhere in the output."""
        self.stop()
        out, err = self.capfd.readouterr()
        assert self.secrets
        hits = self.hits(out, err)
        assert hits == [], "\n".join(hits)

    def produced(self, out: str, err: str) -> dict[str, bytes]:
        """Everything the run produced, by where it came from."""
        found = {
            "events (memory)": "\n".join(
                e.model_dump_json() for e in self.memory.events
            ).encode(),
            "console": self.console.getvalue().encode(),
            "stdout": out.encode(),
            "stderr": err.encode(),
            "log records": "\n".join(self.records.lines).encode(),
            "http and otlp bodies": b"\n".join(self.bodies),
            "postgresql rows": _rows(self.postgres_url),
            "sqlite rows": _rows(DocumentStore().url),
        }
        for folder in (self.tmp, self.home):
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    data = path.read_bytes()
                    # A spool file: a JSON header line, then the body as sent.
                    head, _, body = data.partition(b"\n")
                    if path.name.endswith(".batch") and body[:2] == b"\x1f\x8b":
                        data = head + b"\n" + gzip.decompress(body)
                    found[f"file {path.relative_to(folder)}"] = data
        for name, output in self.outputs.items():
            found[name] = output()
        return found

    def hits(self, out: str, err: str) -> list[str]:
        """Return where any form of any secret was found."""
        found: list[str] = []
        produced = self.produced(out, err)
        for label, secret in self.secrets.items():
            for where, data in produced.items():
                for form, pattern in forms(secret).items():
                    at = data.find(pattern)
                    if at >= 0:
                        context = data[max(0, at - 60) : at + len(pattern) + 20]
                        found.append(f"{label} ({form}) in {where}: {context!r}")
                        break  # one form is enough to report this place
        return found


class _Stream:
    """A text stream for the console sink."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        """Keep the text."""
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        """Nothing to flush."""

    def getvalue(self) -> str:
        """All text written."""
        return "".join(self._parts)


def _rows(url: str) -> bytes:
    """Every row of every eventblocks table, secret values of documents left out."""
    engine = sa.create_engine(url)
    lines: list[str] = []
    try:
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                if not table.startswith("eventblocks_"):
                    continue
                for row in conn.execute(sa.text(f"SELECT * FROM {table}")):
                    values = list(row)
                    if table == "eventblocks_block_documents":
                        values = [_without_ciphertext(v) for v in values]
                    lines.append(repr(values))
    finally:
        engine.dispose()
    return "\n".join(lines).encode()


def _without_ciphertext(value: Any) -> Any:
    if not isinstance(value, str) or not value.startswith("{"):
        return value

    def strip(item: Any) -> Any:
        if isinstance(item, dict):
            if "$secret" in item:
                return "<encrypted>"
            return {k: strip(v) for k, v in item.items()}
        if isinstance(item, list):
            return [strip(v) for v in item]
        return item

    return json.dumps(strip(json.loads(value)))


@pytest.fixture
def scan(
    tmp_path: Path,
    eventblocks_home: Path,
    receiver: tuple[str, list[bytes]],
    capfd: pytest.CaptureFixture[str],
    postgres_url: str,
) -> Iterator[Scan]:
    """Every sink configured, every log recorded; the test ends with assert_clean()."""
    base_url, bodies = receiver
    bodies.clear()
    result = Scan(tmp_path, eventblocks_home, base_url, bodies, capfd, postgres_url)
    result.start()
    try:
        yield result
    finally:
        if not result.stopped:
            result.stop()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    return _closed_port()


@pytest.fixture
def postgres(postgres_url: str) -> sa.URL:
    """The URL of the PostgreSQL server the scan uses (the test service)."""
    return sa.make_url(postgres_url)
