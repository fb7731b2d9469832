"""Exits and outages against misbehaving endpoints: nothing a spool can hold is
lost, nothing outlasts its budget.

The endpoints are real sockets on 127.0.0.1 that refuse, hang, drip, send an
endless body, answer 500 or close half the connection. Exits run in real child
processes, timed from the end of the script to the last exit handler.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emitters import Event, Resource, configure, emit_event, flush, shutdown, stats
from emitters._ids import new_uuid7
from emitters.http import HttpDeliveryError, HttpEmitter
from emitters.http._emitter import MAX_RESPONSE_BYTES


class BadServer:
    """A TCP server on 127.0.0.1 that misbehaves as ``mode`` says.

    ``refuse``: nothing listens. ``hang``: reads the request, never answers.
    ``drip``: answers one byte every 0.2 s. ``endless``: a 200 with an endless
    chunked body. ``500``: answers 500. ``halfclose``: reads the request, then
    shuts its side down without answering. ``sent`` counts the bytes written.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sent = 0
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/events"
        if mode == "refuse":
            self._sock.close()
            return
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _read_request(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return
            body += chunk

    def _one(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            conn.settimeout(30)
            self._read_request(conn)
            if self.mode == "hang":
                self._stop.wait(60)
            elif self.mode == "halfclose":
                conn.shutdown(socket.SHUT_WR)
                self._stop.wait(60)
            elif self.mode == "500":
                conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")
            elif self.mode == "drip":
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                    if self._stop.wait(0.2):
                        return
                    conn.sendall(bytes([byte]))
                    self.sent += 1
            elif self.mode == "endless":
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
                while not self._stop.is_set():
                    conn.sendall(chunk)
                    self.sent += len(chunk)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()


@pytest.fixture
def bad_server(request: pytest.FixtureRequest) -> Iterator[BadServer]:
    """A misbehaving endpoint, its mode given by the test's parameter."""
    server = BadServer(request.param)
    yield server
    server.close()


def _event(**payload: object) -> Event:
    return Event(
        id=new_uuid7(),
        occurred=datetime.now(UTC),
        event="tick",
        resource=Resource(id="clock"),
        payload=dict(payload),
    )


def _spooled_events(spool: Path) -> int:
    total = 0
    for path in spool.glob("*.batch"):
        header = path.read_bytes().partition(b"\n")[0]
        total += int(json.loads(header)["count"])
    return total


EXIT_CHILD = """
import atexit, json, sys, time
# Registered first, so it runs last: after the exit hook of eventblocks.
atexit.register(lambda: print(json.dumps({
    "exit_s": time.monotonic() - END[0], "stats": stats(),
}), flush=True))
END = [0.0]
from emitters import configure, emit_event, stats
from emitters.http import HttpEmitter

url, spool, events = sys.argv[1], sys.argv[2], int(sys.argv[3])
sink = HttpEmitter(
    url, spool_dir=spool or None, timeout=3.0, name="http", max_retries=5
)
configure(emitters=[sink], exit_timeout=2.0)
for i in range(events):
    emit_event("tick", {"id": "clock"}, payload={"i": i})
END[0] = time.monotonic()
"""

EXIT_TIMEOUT = 2.0
# Interpreter start-up is outside the measure; this covers scheduling on a busy
# machine and the close grace.
MARGIN = 1.5


def _run_exit_child(url: str, spool: str, events: int, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTBLOCKS_")}
    env.update(EVENTBLOCKS_HOME=str(home), EVENTBLOCKS_EMITTERS="none")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EXIT_CHILD), url, spool, str(events)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["stderr"] = done.stderr
    return report


MODES = ["refuse", "hang", "drip", "endless", "500", "halfclose"]


@pytest.mark.parametrize("bad_server", MODES, indirect=True)
def test_exit_during_an_outage_spools_every_event_in_time(
    bad_server: BadServer, tmp_path: Path
) -> None:
    """4,000 events at exit, endpoint broken: all spooled, exit within its budget."""
    spool = tmp_path / "spool"
    report = _run_exit_child(bad_server.url, str(spool), 4_000, tmp_path)
    assert report["exit_s"] < EXIT_TIMEOUT + MARGIN
    spooled = _spooled_events(spool)
    counted = report["stats"]
    assert counted["emitted"] == 4_000
    assert counted["dropped"] == 0
    assert spooled == 4_000
    # A spooled event counts as delivered (the sink holds it durably).
    assert counted["delivered"]["http"] == 4_000


@pytest.mark.parametrize("bad_server", ["refuse", "hang"], indirect=True)
def test_exit_without_a_spool_counts_what_it_lost_in_time(
    bad_server: BadServer, tmp_path: Path
) -> None:
    """Without a spool the events are counted failed and said lost, within budget."""
    report = _run_exit_child(bad_server.url, "", 4_000, tmp_path)
    assert report["exit_s"] < EXIT_TIMEOUT + MARGIN
    counted = report["stats"]
    lost = counted["failed"].get("http", 0) + counted["dropped"]
    assert counted["delivered"].get("http", 0) + lost == 4_000
    assert lost == 4_000
    assert "failed to deliver" in report["stderr"]


@pytest.mark.parametrize("bad_server", ["refuse", "500"], indirect=True)
def test_an_outage_goes_to_the_spool_not_to_the_floor(
    bad_server: BadServer, tmp_path: Path
) -> None:
    """20,000 events in bursts during an outage, an 8 MiB buffer: none dropped."""
    spool = tmp_path / "spool"
    name = f"http-{bad_server.port}"
    sink = HttpEmitter(bad_server.url, spool_dir=spool, timeout=2.0, name=name)
    before = stats()
    configure(emitters=[sink], max_buffer_bytes=8 * 1024 * 1024, batch_size=500)
    try:
        for _ in range(40):
            for _ in range(500):
                emit_event("tick", {"id": "clock"})
            time.sleep(0.05)
        flush(5)
        after = stats()
    finally:
        shutdown(5)
        configure()
    assert after["dropped"] == before["dropped"]
    assert after["dropped_by_emitter"].get(name, 0) == 0
    assert after["delivered"][name] == 20_000
    assert sink.spooled == 20_000 == _spooled_events(spool)


@pytest.mark.parametrize("bad_server", ["drip", "hang", "halfclose"], indirect=True)
def test_a_request_ends_by_its_total_deadline(bad_server: BadServer) -> None:
    """timeout=1.0 bounds the whole request, however slowly the server answers."""
    sink = HttpEmitter(bad_server.url, timeout=1.0, max_retries=0)
    event = _event()
    started = time.monotonic()
    with pytest.raises(HttpDeliveryError):
        sink.emit_batch([event])
    assert time.monotonic() - started < 1.0 + 0.5
    sink.close()


@pytest.mark.parametrize("bad_server", ["endless"], indirect=True)
def test_an_endless_body_is_cut_and_counted_failed(bad_server: BadServer) -> None:
    """A 200 whose body never ends fails the request after a few MB read."""
    sink = HttpEmitter(bad_server.url, timeout=30.0, max_retries=0)
    event = _event()
    with pytest.raises(HttpDeliveryError, match="longer than"):
        sink.emit_batch([event])
    time.sleep(0.2)
    # What the server managed to write: the limit plus the sockets' buffers.
    assert bad_server.sent < MAX_RESPONSE_BYTES + 16 * 1024 * 1024
    assert sink.sent == 0
    sink.close()


def test_spool_files_that_cannot_be_sent_are_set_aside(tmp_path: Path) -> None:
    """A truncated file and one the endpoint rejects become .corrupt; the rest go."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[str] = []

    class Strict(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                events = json.loads(body)["events"]
            except Exception:
                status = 500  # the receiver of the finding: 500 for garbage
            else:
                poisoned = any(e["payload"].get("poison") for e in events)
                status = 422 if poisoned else 200
                if status == 200:
                    received.extend(e["payload"]["n"] for e in events)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    spool = tmp_path / "spool"
    down = BadServer("refuse")
    writer = HttpEmitter(down.url, spool_dir=spool, max_retries=0)

    def batch(n: str, **extra: object) -> list[Event]:
        return [_event(n=f"{n}{i}", **extra) for i in range(50)]

    for name, extra in (("a", {}), ("b", {}), ("c", {"poison": True}), ("d", {})):
        writer.emit_batch(batch(name, **extra))
        writer._retry_at = 0.0  # let the next batch try (and spool) at once
    writer.close()
    files = sorted(spool.glob("*.batch"))
    assert len(files) == 4
    files[1].write_bytes(files[1].read_bytes()[:-40])  # truncated: a full disk
    server = ThreadingHTTPServer(("127.0.0.1", down.port), Strict)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        reader = HttpEmitter(down.url, spool_dir=spool)
        assert reader.flush(10)
        reader.close()
    finally:
        server.shutdown()
        server.server_close()
    assert received == [f"a{i}" for i in range(50)] + [f"d{i}" for i in range(50)]
    assert reader.corrupt == 2
    assert sorted(p.name for p in spool.glob("*.corrupt")) == sorted(
        f.name + ".corrupt" for f in (files[1], files[2])
    )
    assert list(spool.glob("*.batch")) == []


BLOCKED_CHILD = """
import atexit, json, os, sys, threading, time
atexit.register(lambda: print(json.dumps({"exit_s": time.monotonic() - END[0]}),
                              flush=True))
END = [0.0]
from emitters import Emitter, MemoryEmitter, configure, emit_event
from emitters.file import FileEmitter


class StuckClose(Emitter):
    def emit_batch(self, events):
        pass

    def close(self):
        threading.Event().wait()


fifo = os.path.join(os.environ["EVENTBLOCKS_HOME"], "events.fifo")
os.mkfifo(fifo)
reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open, never read
configure(
    emitters=[StuckClose(), FileEmitter(fifo), MemoryEmitter()],
    exit_timeout=1.0,
)
for i in range(20_000):
    emit_event("tick", {"id": "clock"}, payload={"i": i})
END[0] = time.monotonic()
"""


def test_a_blocking_close_and_a_pipe_nobody_reads_cannot_hold_the_exit(
    tmp_path: Path,
) -> None:
    """A sink whose close() blocks, a FileEmitter on a full pipe: exit on time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTBLOCKS_")}
    env.update(EVENTBLOCKS_HOME=str(tmp_path), EVENTBLOCKS_EMITTERS="none")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(BLOCKED_CHILD)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    exit_s = json.loads(done.stdout.strip().splitlines()[-1])["exit_s"]
    assert exit_s < 1.0 + MARGIN
    # The warning says what was left: the sinks that did not close.
    assert "'StuckClose' did not close" in done.stderr
    assert "'FileEmitter'" in done.stderr


FULL_DISK_CHILD = """
import json, os, resource, signal, sys
from emitters import configure, emit_event, flush, stats
from emitters.file import FileEmitter

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
path = os.path.join(os.environ["EVENTBLOCKS_HOME"], "events.jsonl")
configure(emitters=[FileEmitter(path, max_bytes=None)], batch_size=7)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, hard))  # the disk is full
for i in range(400):
    emit_event("tick", {"id": "clock"}, payload={"i": i})
flush(10)
full = stats()
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # room again
for i in range(400, 500):
    emit_event("tick", {"id": "clock"}, payload={"i": i})
flush(10)
print(json.dumps({"full": full, "after": stats()}))
"""


def test_a_full_disk_leaves_whole_lines_and_exact_counts(tmp_path: Path) -> None:
    """RLIMIT_FSIZE mid-batch: whole lines only, delivered = lines, then recovery."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTBLOCKS_")}
    env.update(EVENTBLOCKS_HOME=str(tmp_path), EVENTBLOCKS_EMITTERS="none")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FULL_DISK_CHILD)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    full, after = report["full"], report["after"]
    raw = (tmp_path / "events.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    lines = [Event.model_validate_json(line) for line in raw.split(b"\n")[:-1]]
    written = [line.payload["i"] for line in lines]
    # While full: some lines went in, the rest counted failed, nothing twice.
    assert 0 < full["delivered"]["FileEmitter"] < 400
    assert full["delivered"]["FileEmitter"] + full["failed"]["FileEmitter"] == 400
    # Every line parses (none glued to a half line), and the count is exact.
    assert len(written) == after["delivered"]["FileEmitter"]
    assert written[-100:] == list(range(400, 500))
    assert written[:-100] == list(range(full["delivered"]["FileEmitter"]))
