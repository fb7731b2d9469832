"""HttpEmitter against a real HTTP server on 127.0.0.1: delivery, retries, spool."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from blocks import Block
from emitters import Event, Resource, configure, emit_event, flow_run, flush, stats
from emitters._ids import new_uuid7
from emitters.http import HttpDeliveryError, HttpEmitter, from_environment
from emitters.http._wire import (
    backoff_delay,
    is_retryable,
    parse_headers,
    retry_after_seconds,
)
from emitters.testing import capture_events

# -- the receiver -----------------------------------------------------------------


@dataclass
class Seen:
    """One request as the receiver got it, and the status it answered."""

    headers: Message
    raw: bytes
    events: list[Event]
    status: int
    at: float  # time.monotonic() when the request arrived


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections cut by stop() or by a closing client are expected."""


class Receiver:
    """A real HTTP server that decodes batches and answers from a script.

    ``answers`` holds (status, headers) pairs used one per request, then 200.
    ``stop()`` closes the listening socket and cuts open keep-alive connections,
    so that clients get "connection refused" until ``start()`` binds the same
    port again. While ``hold`` is clear, requests wait (a hung endpoint).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers: deque[tuple[int, dict[str, str]]] = deque()
        self.requests: list[Seen] = []
        self.accepted: list[Event] = []
        self.hold = threading.Event()
        self.hold.set()
        self.port = 0
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.start()

    @property
    def url(self) -> str:
        """The events endpoint."""
        return f"http://127.0.0.1:{self.port}/events"

    def start(self) -> None:
        """Listen (again, on the same port after stop())."""
        server = _Server(("127.0.0.1", self.port), _handler(self))
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and cut every open connection."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join()
        self._server = None
        with self.lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def answer(
        self, status: int, times: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next ``times`` requests with ``status`` and ``headers``."""
        with self.lock:
            self.answers.extend([(status, headers or {})] * times)

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> None:
        """Wait until at least ``n`` requests arrived."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < n:
            assert time.monotonic() < deadline, f"only {len(self.requests)} requests"
            time.sleep(0.01)

    def unique_accepted(self) -> list[Event]:
        """Accepted events deduplicated by id, first arrival kept."""
        seen: set[Any] = set()
        out = []
        for event in self.accepted:
            if event.id not in seen:
                seen.add(event.id)
                out.append(event)
        return out


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with receiver.lock:
                receiver._connections.add(self.connection)

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                with receiver.lock:
                    receiver._connections.discard(self.connection)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output clean."""

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            at = time.monotonic()
            receiver.hold.wait(30)
            body = (
                gzip.decompress(raw)
                if self.headers.get("Content-Encoding") == "gzip"
                else raw
            )
            events = [Event.model_validate(e) for e in json.loads(body)["events"]]
            with receiver.lock:
                status, extra = (
                    receiver.answers.popleft() if receiver.answers else (200, {})
                )
                receiver.requests.append(Seen(self.headers, raw, events, status, at))
                if 200 <= status <= 299:
                    receiver.accepted.extend(events)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver, stopped at the end of the test."""
    server = Receiver()
    yield server
    server.hold.set()
    server.stop()


@pytest.fixture
def make() -> Iterator[Callable[..., HttpEmitter]]:
    """Build HttpEmitters that are closed at the end of the test."""
    made: list[HttpEmitter] = []

    def factory(url: str, **kwargs: Any) -> HttpEmitter:
        emitter = HttpEmitter(url, **kwargs)
        made.append(emitter)
        return emitter

    yield factory
    for emitter in made:
        emitter.close()


def _dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/events"


def _event(name: str = "thing.happened", **payload: object) -> Event:
    return Event(
        id=new_uuid7(),
        occurred=datetime.now(UTC),
        event=name,
        resource=Resource(id="thing.1"),
        payload=dict(payload),
    )


def _spool_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.batch"))


class HttpSinkProbe(Block):
    def query(self, sql: str) -> int:
        return len(sql)


FAST = {"backoff": 0.01, "max_backoff": 0.05}


@pytest.fixture
def name() -> str:
    """A sink name of this test's own: stats() counts per name for the process."""
    return f"http-{secrets.token_hex(4)}"


# -- delivery -----------------------------------------------------------------------


def test_pipeline_events_arrive_complete_and_decodable(
    receiver: Receiver,
    make: Callable[..., HttpEmitter],
    name: str,
) -> None:
    """Block calls and emit_event through configure() arrive whole, in order."""
    configure(emitters=[make(receiver.url, name=name)])
    with capture_events() as captured, flow_run("nightly"):
        for i in range(300):
            HttpSinkProbe().query(f"select {i}")
        emit_event("custom.done", {"id": "job.1"}, payload={"rows": 3, "t": "é"})
    assert flush()
    assert receiver.accepted == captured
    assert len(captured) == 601
    assert stats()["delivered"][name] == 601
    assert stats()["failed"][name] == 0


@pytest.mark.parametrize("compress", [True, False])
def test_emit_batch_sends_one_json_document(
    receiver: Receiver, make: Callable[..., HttpEmitter], compress: bool
) -> None:
    """One POST per batch: {"events": [...]}, headers, gzip only when asked for."""
    emitter = make(receiver.url, gzip=compress, gzip_min_bytes=100)
    events = [_event("e", i=i, pad="x" * 40) for i in range(20)]
    emitter.emit_batch(events)
    (seen,) = receiver.requests
    assert seen.events == events
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Idempotency-Key"] == f"{events[0].id}:{events[-1].id}"
    assert seen.headers["Eventblocks-Event-Count"] == "20"
    assert seen.headers["User-Agent"].startswith("eventblocks")
    if compress:
        assert seen.headers["Content-Encoding"] == "gzip"
        body = gzip.decompress(seen.raw)
    else:
        assert seen.headers.get("Content-Encoding") is None
        body = seen.raw
    assert body == (
        b'{"events":[' + b",".join(e.model_dump_json().encode() for e in events) + b"]}"
    )
    assert emitter.sent == 20


def test_small_bodies_are_not_compressed(
    receiver: Receiver, make: Callable[..., HttpEmitter]
) -> None:
    """A body under gzip_min_bytes is sent as is."""
    emitter = make(receiver.url, gzip_min_bytes=10_000)
    emitter.emit_batch([_event("small")])
    assert receiver.requests[0].headers.get("Content-Encoding") is None


def test_custom_headers_are_sent(
    receiver: Receiver, make: Callable[..., HttpEmitter]
) -> None:
    """Headers given to the emitter go with every request."""
    emitter = make(receiver.url, headers={"X-Tenant": "acme"})
    emitter.emit_batch([_event()])
    assert receiver.requests[0].headers["X-Tenant"] == "acme"


# -- retries, outage and recovery ----------------------------------------------------


def test_an_outage_loses_nothing_and_keeps_order(
    receiver: Receiver,
    make: Callable[..., HttpEmitter],
    tmp_path: Path,
    name: str,
) -> None:
    """503s, a 429 and a stopped server, then recovery: every event, once, in order."""
    emitter = make(
        receiver.url, spool_dir=tmp_path / "spool", max_retries=2, name=name, **FAST
    )
    configure(emitters=[emitter], batch_size=50)
    dropped_before = stats()["dropped"]  # counters add up per process
    emitted: list[Event] = []

    def burst(n: int) -> None:
        with capture_events() as captured:
            for i in range(n):
                emit_event("outage.test", {"id": "r"}, payload={"i": len(emitted) + i})
        emitted.extend(captured)

    receiver.answer(503, times=4)
    receiver.answer(429, times=2, headers={"Retry-After": "0"})
    burst(120)
    flush()
    receiver.stop()  # connection refused from now on
    burst(120)
    flush()
    burst(60)
    flush()
    assert list((tmp_path / "spool").glob("*.batch")), "nothing was spooled"
    receiver.start()
    burst(30)
    deadline = time.monotonic() + 20
    while not (flush() and emitter.flush(1.0)):
        assert time.monotonic() < deadline, "the spool was never replayed"
        time.sleep(0.05)
    assert receiver.unique_accepted() == emitted
    assert _spool_files(tmp_path / "spool") == []
    counters = stats()
    assert counters["failed"][name] == 0
    assert counters["dropped"] == dropped_before
    assert emitter.dropped == 0
    assert emitter.spooled > 0
    assert emitter.replayed == emitter.spooled
    statuses = {seen.status for seen in receiver.requests}
    assert {503, 429, 200} <= statuses


def test_spooled_batches_go_before_newer_ones(
    receiver: Receiver, make: Callable[..., HttpEmitter], tmp_path: Path
) -> None:
    """Once the endpoint is back, the next batch is sent after the spooled ones."""
    spool = tmp_path / "spool"
    receiver.answer(503)
    emitter = make(receiver.url, spool_dir=spool, max_retries=0, **FAST)
    old = [[_event("old")] for _ in range(3)]
    for batch in old:
        emitter.emit_batch(batch)
    assert len(_spool_files(spool)) == 3 - len(receiver.accepted)
    time.sleep(0.1)  # past the longest backoff: the endpoint counts as up again
    new = [_event("new")]
    emitter.emit_batch(new)
    assert receiver.unique_accepted() == [e for b in old for e in b] + new
    assert _spool_files(spool) == []


def test_a_batch_retried_from_the_spool_leaves_no_file(
    receiver: Receiver, make: Callable[..., HttpEmitter], tmp_path: Path
) -> None:
    """A 503 then a 200: the batch is spooled at once, retried from there, removed."""
    spool = tmp_path / "spool"
    receiver.answer(503)
    emitter = make(receiver.url, spool_dir=spool, max_retries=2, **FAST)
    events = [_event() for _ in range(3)]
    emitter.emit_batch(events)
    # No retry while the caller's batch waits: it is on disk, the endpoint down.
    assert [seen.status for seen in receiver.requests] == [503]
    assert (emitter.spooled, len(_spool_files(spool))) == (3, 1)
    assert emitter.flush(5)
    assert [seen.status for seen in receiver.requests] == [503, 200]
    assert receiver.accepted == events
    assert (emitter.sent, emitter.spooled, emitter.replayed) == (3, 3, 3)
    assert _spool_files(spool) == []


def test_retry_after_seconds_is_honoured(
    receiver: Receiver, make: Callable[..., HttpEmitter]
) -> None:
    """A 429 with Retry-After: 1 delays the retry by about a second, not by backoff."""
    receiver.answer(429, headers={"Retry-After": "1"})
    emitter = make(receiver.url, max_retries=1, backoff=0.0)
    emitter.emit_batch([_event()])
    assert len(receiver.requests) == 2
    assert emitter.sent == 1
    first, second = receiver.requests
    assert second.at - first.at >= 0.9


def test_retry_after_http_date_is_honoured(
    receiver: Receiver, make: Callable[..., HttpEmitter]
) -> None:
    """A 503 with a Retry-After date two seconds ahead delays the retry past it."""
    when = datetime.now(UTC) + timedelta(seconds=2)
    receiver.answer(503, headers={"Retry-After": format_datetime(when, usegmt=True)})
    emitter = make(receiver.url, max_retries=1, backoff=0.0)
    emitter.emit_batch([_event()])
    assert emitter.sent == 1
    first, second = receiver.requests
    assert second.at - first.at >= 0.9  # the date has whole-second precision


def test_rejection_is_not_retried_and_counts_as_failed(
    receiver: Receiver,
    make: Callable[..., HttpEmitter],
    tmp_path: Path,
    name: str,
) -> None:
    """A 400 is sent once, not spooled, and its events are counted failed."""
    receiver.answer(400)
    emitter = make(receiver.url, spool_dir=tmp_path / "spool", name=name, **FAST)
    configure(emitters=[emitter])
    for i in range(5):
        emit_event("rejected", {"id": "r"}, payload={"i": i})
    flush()
    assert len(receiver.requests) == 1
    assert stats()["failed"][name] == 5
    assert emitter.rejected == 5
    assert _spool_files(tmp_path / "spool") == []


def test_rejection_raises_with_the_status(
    receiver: Receiver, make: Callable[..., HttpEmitter]
) -> None:
    """emit_batch raises HttpDeliveryError carrying the status and the event count."""
    receiver.answer(422)
    emitter = make(receiver.url)
    with pytest.raises(HttpDeliveryError, match="rejected them with HTTP 422") as info:
        emitter.emit_batch([_event(), _event()])
    assert (info.value.status_code, info.value.events) == (422, 2)


def test_without_a_spool_undeliverable_batches_count_as_failed(
    make: Callable[..., HttpEmitter],
    name: str,
) -> None:
    """With no spool_dir, a batch that cannot be sent is counted in failed."""
    emitter = make(_dead_url(), max_retries=1, name=name, **FAST)
    with pytest.raises(HttpDeliveryError, match="ConnectError") as info:
        emitter.emit_batch([_event()])
    assert info.value.status_code is None
    configure(emitters=[emitter])
    emit_event("lost", {"id": "r"})
    flush()
    assert stats()["failed"][name] == 1


def test_a_batch_the_full_spool_cannot_take_is_a_delivery_error(
    make: Callable[..., HttpEmitter], tmp_path: Path
) -> None:
    """A batch that neither reaches the endpoint nor fits the spool is an
    HttpDeliveryError saying the spool is full, counted as dropped."""
    emitter = make(
        _dead_url(),
        spool_dir=tmp_path / "spool",
        max_spool_bytes=10,
        max_retries=0,
        **FAST,
    )
    with pytest.raises(HttpDeliveryError, match="is full") as caught:
        emitter.emit_batch([_event(), _event()])
    assert caught.value.events == 2
    assert (emitter.spooled, emitter.dropped) == (0, 2)


def test_a_full_spool_drops_and_counts(
    make: Callable[..., HttpEmitter],
    tmp_path: Path,
    name: str,
) -> None:
    """Batches that do not fit in max_spool_bytes are dropped and counted failed."""
    spool = tmp_path / "spool"
    emitter = make(
        _dead_url(),
        spool_dir=spool,
        max_spool_bytes=3000,
        max_retries=0,
        gzip=False,
        name=name,
        **FAST,
    )
    configure(emitters=[emitter], batch_size=4)
    for i in range(40):
        emit_event("spill", {"id": "r"}, payload={"i": i})
    flush()
    files = _spool_files(spool)
    assert files
    assert sum(f.stat().st_size for f in files) <= 3000
    assert emitter.dropped > 0
    assert emitter.spooled + emitter.dropped == 40
    counters = stats()
    assert counters["failed"][name] == emitter.dropped
    assert counters["delivered"][name] == emitter.spooled


def test_close_with_a_dead_endpoint_returns_promptly(
    receiver: Receiver, make: Callable[..., HttpEmitter], tmp_path: Path
) -> None:
    """close() cuts a long retry wait short; the batch waits in the spool meanwhile."""
    receiver.answer(503, times=100)
    emitter = make(
        receiver.url,
        spool_dir=tmp_path / "spool",
        max_retries=5,
        backoff=60.0,
        max_backoff=60.0,
    )
    worker = threading.Thread(target=emitter.emit_batch, args=([_event()],))
    worker.start()
    receiver.wait_for_requests(1)
    # Written before the first wait: a kill during the retries loses nothing.
    deadline = time.monotonic() + 10
    while not _spool_files(tmp_path / "spool"):
        assert time.monotonic() < deadline, "the batch was not spooled"
        time.sleep(0.01)
    started = time.monotonic()
    emitter.close()
    worker.join(10)
    # Compared with the 30 to 60 seconds the retry would otherwise wait.
    assert time.monotonic() - started < 10
    assert not worker.is_alive()
    assert emitter.spooled == 1
    assert len(_spool_files(tmp_path / "spool")) == 1


def test_flush_respects_its_timeout_against_a_hung_endpoint(
    receiver: Receiver, make: Callable[..., HttpEmitter], tmp_path: Path
) -> None:
    """flush(timeout) returns False when the endpoint does not answer in time."""
    spool = tmp_path / "spool"
    receiver.answer(503)
    emitter = make(receiver.url, spool_dir=spool, max_retries=0, timeout=60.0, **FAST)
    emitter.emit_batch([_event()])
    assert emitter.spooled == 1
    receiver.hold.clear()
    started = time.monotonic()
    assert emitter.flush(0.5) is False
    # Compared with the 60 s request timeout it would otherwise wait.
    assert time.monotonic() - started < 10
    receiver.hold.set()
    assert len(_spool_files(spool)) == 1
    # Running out of time is not an outage: the next batch is sent at once,
    # after the one spooled before it.
    emitter.emit_batch([_event("next")])
    assert _spool_files(spool) == []
    assert receiver.unique_accepted()[-1].event == "next"


def test_while_down_new_batches_queue_behind_the_spool(
    receiver: Receiver, make: Callable[..., HttpEmitter], tmp_path: Path
) -> None:
    """During an outage later batches are spooled without a request each."""
    receiver.answer(503, times=1)
    emitter = make(
        receiver.url,
        spool_dir=tmp_path / "spool",
        max_retries=0,
        backoff=30.0,
        max_backoff=30.0,
    )
    for _ in range(5):
        emitter.emit_batch([_event()])
    assert len(receiver.requests) == 1
    assert emitter.spooled == 5
    assert emitter.flush(5.0) is True  # flush tries now, whatever the schedule
    assert len(receiver.unique_accepted()) == 5


# -- the spool across processes ------------------------------------------------------

_SPOOLER = """
import sys
from emitters import configure, emit_event, flush
from emitters.http import HttpEmitter

url, spool, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sink = HttpEmitter(url, spool_dir=spool, max_retries=0, backoff=0.01, max_backoff=0.02)
configure(emitters=[sink], batch_size=25)
for i in range(n):
    emit_event("from.child", {"id": "child"}, payload={"i": i})
flush()
print(sink.spooled, flush=True)
sys.stdin.read()  # wait to be killed
"""


def test_a_spool_left_by_a_killed_process_is_replayed(
    receiver: Receiver, make: Callable[..., HttpEmitter], tmp_path: Path
) -> None:
    """Batches spooled by a process killed with SIGKILL arrive via the next emitter."""
    spool = tmp_path / "spool"
    receiver.stop()
    child = subprocess.Popen(
        [sys.executable, "-c", _SPOOLER, receiver.url, str(spool), "200"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "200"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert child.stdin is not None
        assert child.stdout is not None
        child.stdin.close()
        child.stdout.close()
    assert len(_spool_files(spool)) == 8
    receiver.start()
    emitter = make(receiver.url, spool_dir=spool)
    assert emitter.flush(10.0) is True
    got = receiver.unique_accepted()
    assert [e.payload["i"] for e in got] == list(range(200))
    assert emitter.replayed == 200
    assert _spool_files(spool) == []


def test_two_emitters_never_send_the_same_spool_file_twice(
    receiver: Receiver, make: Callable[..., HttpEmitter], tmp_path: Path
) -> None:
    """Flushing one spool from two emitters at once sends each batch exactly once."""
    spool = tmp_path / "spool"
    receiver.answer(503)
    # A long backoff keeps the writer down: every batch after the first is spooled.
    writer = make(receiver.url, spool_dir=spool, max_retries=0, backoff=30.0)
    for _ in range(10):
        writer.emit_batch([_event() for _ in range(3)])
    assert len(_spool_files(spool)) == 10
    receiver.requests.clear()
    one, two = (make(receiver.url, spool_dir=spool) for _ in range(2))
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda e=e: results.append(e.flush(20.0)))
        for e in (one, two)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = [seen.headers["Idempotency-Key"] for seen in receiver.requests]
    assert len(keys) == 10
    assert len(set(keys)) == 10
    assert results == [True, True]
    assert one.replayed + two.replayed == 30


def test_a_spool_for_another_endpoint_is_left_alone(
    receiver: Receiver, make: Callable[..., HttpEmitter], tmp_path: Path
) -> None:
    """Batches spooled for one URL are not sent to another URL sharing the folder."""
    spool = tmp_path / "spool"
    other = make(_dead_url(), spool_dir=spool, max_retries=0, **FAST)
    other.emit_batch([_event("for.other")])
    emitter = make(receiver.url, spool_dir=spool)
    assert emitter.flush(5.0) is True
    emitter.emit_batch([_event("for.me")])
    assert [e.event for e in receiver.accepted] == ["for.me"]
    assert len(_spool_files(spool)) == 1


def test_a_corrupt_spool_file_is_set_aside(
    receiver: Receiver, make: Callable[..., HttpEmitter], tmp_path: Path
) -> None:
    """An unreadable spool file is renamed .corrupt and does not block the rest."""
    spool = tmp_path / "spool"
    receiver.answer(503)
    emitter = make(receiver.url, spool_dir=spool, max_retries=0, backoff=30.0)
    emitter.emit_batch([_event("first")])
    emitter.emit_batch([_event("second")])  # spooled behind, without a request
    first, _ = _spool_files(spool)
    first.write_bytes(b"not a spool file")
    assert emitter.flush(5.0) is True
    assert [e.event for e in receiver.accepted] == ["second"]
    assert [p.name for p in spool.glob("*.corrupt")] == [first.name + ".corrupt"]


# -- secrets -------------------------------------------------------------------------


def test_header_secrets_never_show(
    receiver: Receiver,
    make: Callable[..., HttpEmitter],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    """A bearer token is in no log line, error message, event or spool file."""
    token = secrets.token_hex(8)
    api_key = secrets.token_hex(8)
    headers = {"Authorization": f"Bearer {token}", "X-Api-Key": api_key}
    spool = tmp_path / "spool"
    caplog.set_level(logging.DEBUG)
    receiver.answer(401)
    receiver.answer(503, times=50)
    emitter = make(
        receiver.url, headers=headers, spool_dir=spool, max_retries=1, name=name
    )
    configure(emitters=[emitter])
    emit_event("leak", {"id": "r"}, payload={"note": f"token {token} key {api_key}"})
    flush()
    emit_event("later", {"id": "r"})
    flush()
    messages: list[str] = []
    no_spool = make(_dead_url(), headers=headers, max_retries=0)
    with pytest.raises(HttpDeliveryError) as info:
        no_spool.emit_batch([_event()])
    messages.append(str(info.value))
    with receiver.lock:
        receiver.answers.clear()
    receiver.answer(403)
    rejected = make(receiver.url, headers=headers)
    with pytest.raises(HttpDeliveryError) as info:
        rejected.emit_batch([_event()])
    messages.append(str(info.value))
    assert receiver.requests[0].headers["Authorization"] == f"Bearer {token}"
    texts = [
        caplog.text,
        *messages,
        *(r.raw.decode("latin-1") for r in receiver.requests),
        *(p.name for p in spool.iterdir()),
        *(p.read_bytes().decode("latin-1") for p in _spool_files(spool)),
    ]
    assert emitter.spooled == 1
    for secret in (token, api_key):
        assert not [t for t in texts if secret in t]


def test_a_url_password_is_not_shown(make: Callable[..., HttpEmitter]) -> None:
    """The user info of the URL appears neither in url nor in error messages."""
    password = secrets.token_hex(8)
    emitter = make(
        _dead_url().replace("http://", f"http://user:{password}@"), max_retries=0
    )
    assert password not in emitter.url + repr(emitter)
    with pytest.raises(HttpDeliveryError) as info:
        emitter.emit_batch([_event()])
    assert password not in str(info.value)


# -- arguments and the environment ----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"backoff": -1}, "backoff"),
        ({"max_backoff": float("nan")}, "max_backoff"),
        ({"max_spool_bytes": 0}, "max_spool_bytes"),
        ({"gzip_min_bytes": -1}, "gzip_min_bytes"),
        ({"gzip_level": 0}, "gzip_level"),
        ({"gzip_level": 10}, "gzip_level"),
    ],
)
def test_bad_options_raise_value_error_naming_them(
    kwargs: dict[str, Any], argument: str
) -> None:
    """An out-of-range option raises ValueError that names it."""
    with pytest.raises(ValueError, match=rf"^{argument} must be"):
        HttpEmitter("http://127.0.0.1:9/events", **kwargs)


@pytest.mark.parametrize(
    "url", ["ftp://host/x", "/relative/path", "http:///no-host", "not a url at all"]
)
def test_a_bad_url_raises_without_echoing_it(url: str) -> None:
    """A URL that is not absolute http(s) raises ValueError naming url, not its text."""
    with pytest.raises(ValueError, match=r"^url must be") as info:
        HttpEmitter(url)
    assert url not in str(info.value)


def test_headers_must_be_strings() -> None:
    """Non-string header values raise TypeError without the value."""
    secret = secrets.token_hex(8)
    with pytest.raises(TypeError, match="headers must map strings") as info:
        HttpEmitter("http://127.0.0.1:9/", headers={"X-Key": secret.encode()})  # type: ignore[dict-item]
    assert secret not in str(info.value)


def test_from_environment_needs_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without EVENTBLOCKS_HTTP_URL, from_environment() says which variable to set."""
    monkeypatch.delenv("EVENTBLOCKS_HTTP_URL", raising=False)
    with pytest.raises(ValueError, match="EVENTBLOCKS_HTTP_URL is not set"):
        from_environment()


def test_from_environment_reads_url_headers_and_spool(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, eventblocks_home: Path
) -> None:
    """The URL, percent-decoded headers and the default spool come from the env."""
    token = secrets.token_hex(8)
    monkeypatch.setenv("EVENTBLOCKS_HTTP_URL", receiver.url)
    monkeypatch.setenv(
        "EVENTBLOCKS_HTTP_HEADERS", f"Authorization=Bearer%20{token}, X-Team = data"
    )
    monkeypatch.delenv("EVENTBLOCKS_HTTP_SPOOL_DIR", raising=False)
    with from_environment() as emitter:
        assert emitter.spool_dir == eventblocks_home / "spool"
        emitter.emit_batch([_event()])
    headers = receiver.requests[0].headers
    assert headers["Authorization"] == f"Bearer {token}"
    assert headers["X-Team"] == "data"


def test_from_environment_reports_bad_headers_without_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A malformed EVENTBLOCKS_HTTP_HEADERS names the entry, not its value."""
    secret = secrets.token_hex(8)
    monkeypatch.setenv("EVENTBLOCKS_HTTP_URL", "http://127.0.0.1:9/events")
    monkeypatch.setenv("EVENTBLOCKS_HTTP_HEADERS", f"X-A=1,{secret}")
    with pytest.raises(ValueError, match="entry 2 is not one") as info:
        from_environment()
    assert secret not in str(info.value)


# -- the wire rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        *[(500, True), (503, True), (599, True), (408, True), (429, True)],
        *[(400, False), (401, False), (404, False), (413, False), (302, False)],
    ],
)
def test_which_statuses_are_retried(status: int, retry: bool) -> None:
    """5xx, 408 and 429 are retried; other statuses are final."""
    assert is_retryable(status) is retry


def test_retry_after_forms() -> None:
    """Seconds, HTTP dates (past or future) and garbage are read as documented."""
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    past = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert retry_after_seconds(past) == 0.0
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    waited = retry_after_seconds(future)
    assert waited is not None
    assert 25 <= waited <= 31


def test_backoff_grows_and_is_capped() -> None:
    """Delays double per attempt within a jittered half, and never pass the cap."""
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (10, 30.0), (500, 30.0)]:
        delay = backoff_delay(0.5, 30.0, attempt)
        assert ceiling / 2 <= delay <= ceiling


def test_parse_headers_format() -> None:
    """name=value pairs, comma separated, values percent-decoded, blanks skipped."""
    assert parse_headers("a=1, B = x%2Cy ,,", "V") == {"a": "1", "B": "x,y"}
    with pytest.raises(ValueError, match="entry 1"):
        parse_headers("=value", "V")
