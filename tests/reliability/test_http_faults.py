"""HTTP faults: an endpoint that resets connections, a full spool, and a process
killed while its batches wait for the endpoint; the next start replays them.

The endpoint is a real HTTP server on 127.0.0.1 whose behaviour the test switches:
answer 204, answer 503, reset the connection before answering, or reset it after
reading the whole body (so the emitter cannot know whether it arrived).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from blocks import Block
from emitters import configure, emit_event, flow_run, flush, stats
from emitters.http import HttpEmitter


class _Handler(BaseHTTPRequestHandler):
    server: Endpoint

    def do_POST(self) -> None:
        mode = self.server.mode
        if mode == "reset-early":
            _reset(self.connection)
            self.close_connection = True
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if mode == "reset-late":
            _reset(self.connection)  # received, but the answer never leaves
            self.close_connection = True
        elif mode == "503":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            with self.server.lock:
                self.server.ids += [e["id"] for e in json.loads(body)["events"]]
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


class Endpoint(ThreadingHTTPServer):
    """The switchable endpoint; ``ids`` are the event ids it accepted, in order."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "ok"
        self.ids: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        """The events URL."""
        return f"http://127.0.0.1:{self.server_address[1]}/events"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections the test resets are expected."""


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        sock.close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """A running endpoint, shut down after the test."""
    server = Endpoint()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    configure(emitters=[])
    server.shutdown()
    server.server_close()
    thread.join(5)


class SpoolPump(Block):
    """A block with one call."""

    def push(self, n: int) -> int:
        """Return ``n``."""
        return n


def _delta(before: dict[str, Any], key: str, name: str) -> int:
    return int(stats()[key].get(name, 0) - before[key].get(name, 0))


def _first_seen(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


@pytest.mark.parametrize("mode", ["reset-early", "reset-late", "503"])
def test_an_endpoint_that_resets_connections_loses_nothing(
    endpoint: Endpoint, tmp_path: Path, mode: str
) -> None:
    """Resets or 503s for a while: every event arrives, in order, afterwards."""
    sink = HttpEmitter(
        endpoint.url,
        spool_dir=tmp_path / "spool",
        max_retries=2,
        backoff=0.01,
        max_backoff=0.05,
        timeout=2,
        name="http",
    )
    configure(emitters=[sink], batch_size=100)
    before = stats()
    sent: list[str] = []
    endpoint.mode = mode
    for i in range(1_000):
        sent.append(str(emit_event("tick", {"id": "clock"}, payload={"i": i}).id))
    flush(10)  # cannot succeed while the endpoint misbehaves
    assert sink.spooled > 0
    endpoint.mode = "ok"
    for i in range(1_000, 1_200):
        sent.append(str(emit_event("tick", {"id": "clock"}, payload={"i": i}).id))
    assert flush(20)
    assert sink.flush(10)
    assert _first_seen(endpoint.ids) == sent
    assert _delta(before, "failed", "http") == 0
    assert _delta(before, "delivered", "http") == 1_200
    if mode != "reset-late":  # only an answer lost after arrival duplicates
        assert len(endpoint.ids) == 1_200


def test_a_full_spool_drops_counted_and_recovers(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    """A full spool drops batches counted failed; the spooled ones arrive later."""
    sink = HttpEmitter(
        endpoint.url,
        spool_dir=tmp_path / "spool",
        max_spool_bytes=20_000,
        max_retries=0,
        gzip=False,
        name="http",
    )
    configure(emitters=[sink], batch_size=20)
    before = stats()
    endpoint.mode = "503"
    pump = SpoolPump()
    with flow_run("full-spool"):
        for i in range(1_000):
            pump.push(i)
    flush(10)
    failed = _delta(before, "failed", "http")
    assert failed > 0
    assert failed == sink.dropped
    assert _delta(before, "delivered", "http") == sink.spooled
    assert _delta(before, "delivered", "http") + failed == 2_000
    spool_bytes = sum(p.stat().st_size for p in (tmp_path / "spool").glob("*.batch"))
    assert spool_bytes <= 20_000
    endpoint.mode = "ok"
    assert sink.flush(10)
    assert len(set(endpoint.ids)) == sink.spooled
    sent = [str(emit_event("tock", {"id": "clock"}).id) for _ in range(300)]
    assert flush(10)
    assert endpoint.ids[-300:] == sent
    assert _delta(before, "failed", "http") == failed  # no new failures


CHILD = """
import json, os, sys, time
from emitters import configure, emit_event
from emitters.http import HttpEmitter

url, spool = sys.argv[1], sys.argv[2]
retries, wait_for = int(sys.argv[3]), int(sys.argv[4])
sink = HttpEmitter(url, spool_dir=spool, max_retries=retries, backoff=30)
configure(emitters=[sink], batch_size=50)
ids = [str(emit_event("tick", {"id": "clock"}).id) for _ in range(500)]
print(json.dumps(ids), flush=True)
while sink.spooled < wait_for:
    time.sleep(0.01)
print(sink.spooled, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize(
    ("retries", "wait_for"),
    [(0, 500), (5, 50)],
    ids=["after-giving-up", "while-waiting-to-retry"],
)
def test_a_killed_process_leaves_its_spool_for_the_next_start(
    endpoint: Endpoint, tmp_path: Path, retries: int, wait_for: int
) -> None:
    """After SIGKILL the next emitter on the spool sends every spooled event once."""
    endpoint.mode = "503"
    spool = tmp_path / "spool"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTBLOCKS_")}
    env.update({"EVENTBLOCKS_HOME": str(tmp_path), "EVENTBLOCKS_EMITTERS": "none"})
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(CHILD),
            endpoint.url,
            str(spool),
            str(retries),
            str(wait_for),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    assert child.stderr is not None
    try:
        ids = json.loads(child.stdout.readline() or "null")
        assert ids, child.stderr.read()
        spooled = int(child.stdout.readline())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert endpoint.ids == []
    endpoint.mode = "ok"
    with HttpEmitter(endpoint.url, spool_dir=spool) as restarted:
        assert restarted.flush(20)
        # Batches spooled between the child's report and the kill count too.
        assert restarted.replayed >= spooled >= wait_for
    assert endpoint.ids == ids[: restarted.replayed]
    assert list(spool.glob("*.batch")) == []
