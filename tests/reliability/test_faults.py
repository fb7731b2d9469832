"""Faults: sinks that raise, hang, crawl or take part of a batch, and a store whose
database goes away in the middle of a run.

In every case the caller is never affected (its calls return, its own exceptions
propagate as the same object), ``stats()`` accounts for every event exactly once
(delivered, failed or dropped), and delivery resumes when the fault clears.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from blocks import Block
from emitters import (
    Emitter,
    Event,
    MemoryEmitter,
    configure,
    emit_event,
    flow_run,
    flush,
    stats,
)
from emitters.sql import SQLEventStore


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class Faulty(Emitter):
    """A sink whose behaviour the test switches while events flow.

    ``"ok"`` keeps every event; ``"raise"`` raises; ``"hang"`` blocks until the
    mode changes; ``"slow"`` sleeps ``delay`` seconds per batch, then keeps it;
    ``"partial"`` keeps the first half of each batch and raises for the rest;
    ``"cancel"`` raises ``asyncio.CancelledError``, a ``BaseException``, as an
    asyncio client cancelled by its own timeout does.
    """

    def __init__(self, mode: str = "ok", *, name: str = "faulty") -> None:
        super().__init__(name=name)
        self.mode = mode
        self.delay = 0.02
        self.kept: list[Event] = []
        self.handed = 0
        self.entered = threading.Event()

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Behave as the current mode says."""
        self.handed += len(events)
        self.entered.set()
        if self.mode == "raise":
            raise ConnectionError("the collector is down")
        if self.mode == "cancel":
            raise asyncio.CancelledError()
        while self.mode == "hang":
            time.sleep(0.005)
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "partial":
            half = len(events) // 2
            self.kept.extend(events[:half])
            if half < len(events):
                raise ConnectionError(f"took {half} of {len(events)} events")
            return
        self.kept.extend(events)


class FaultAccount(Block):
    """A block whose calls succeed, or fail with the caller's own exception."""

    def post(self, n: int) -> int:
        """Return ``n``; a negative ``n`` raises ValueError."""
        if n < 0:
            raise ValueError(f"negative amount {n}")
        return n


@pytest.fixture
def faulty() -> Iterator[Faulty]:
    """A switchable sink, released at the end so that no thread stays blocked."""
    sink = Faulty()
    yield sink
    sink.mode = "ok"
    configure(emitters=[])


def _calls(account: FaultAccount, n: int, start: int = 0) -> None:
    """Make ``n`` calls; every tenth one fails with the caller's own exception."""
    for i in range(start, start + n):
        if i % 10 == 9:
            with pytest.raises(ValueError, match="negative amount") as raised:
                account.post(-i)
            assert raised.value.args == (f"negative amount {-i}",)
        else:
            assert account.post(i) == i


class Counters:
    """``stats()`` since the test began: the counters are cumulative per process."""

    def __init__(self) -> None:
        self.base = stats()

    def now(self) -> dict[str, Any]:
        """Return the counters minus those at the start."""
        current, base = stats(), self.base
        out: dict[str, Any] = {}
        for key, value in current.items():
            if isinstance(value, dict):
                old = base.get(key, {})
                out[key] = {k: v - old.get(k, 0) for k, v in value.items()}
            elif key == "queued":
                out[key] = value
            else:
                out[key] = value - base.get(key, 0)
        return out

    def accounted(self, name: str) -> int:
        """Events the sink ``name`` delivered, failed or dropped since the start."""
        now = self.now()
        return int(
            now["delivered"][name]
            + now["failed"][name]
            + now["dropped_by_emitter"][name]
        )


@pytest.mark.parametrize("mode", ["raise", "partial"])
def test_a_failing_sink_never_reaches_the_caller_and_recovers(
    faulty: Faulty, mode: str
) -> None:
    """A raising or half-taking sink costs the caller nothing; counted; it recovers."""
    memory = MemoryEmitter()
    configure(emitters=[faulty, memory])
    counters = Counters()
    account = FaultAccount()
    faulty.mode = mode
    _calls(account, 2_000)
    assert flush(10) is False  # the faulty sink refused events: flush says so
    during = counters.now()
    assert during["failed"]["faulty"] > 0
    assert during["delivered"]["faulty"] == 0
    assert during["failed"]["faulty"] == faulty.handed == 4_000
    assert len(faulty.kept) <= faulty.handed // 2
    faulty.mode = "ok"
    kept_before = len(faulty.kept)
    _calls(account, 1_000, start=2_000)
    assert flush(10)
    after = counters.now()
    assert after["delivered"]["faulty"] == len(faulty.kept) - kept_before == 2_000
    assert counters.accounted("faulty") == after["emitted"] == 6_000
    assert len(memory.events) == 6_000


def test_a_hung_sink_delays_nobody_and_its_losses_are_counted(faulty: Faulty) -> None:
    """A hung sink delays no caller or sink; its overflow is counted; it recovers."""
    memory = MemoryEmitter()
    configure(emitters=[faulty, memory], batch_size=100)
    counters = Counters()
    account = FaultAccount()
    faulty.mode = "hang"
    _calls(account, 1)
    assert faulty.entered.wait(5)
    for start in range(1, 10_001, 500):
        _calls(account, 500, start=start)
        # Let the dispatcher take each burst: the hung sink's own backlog
        # overflows (once it has been stalled for a second), not the buffer.
        assert _wait_until(lambda: stats()["queued"] == 0)
    assert flush(0.5) is False  # bounded: the hung sink cannot be flushed
    assert _wait_until(lambda: len(memory.events) == 20_002)
    during = counters.now()
    assert during["dropped_by_emitter"]["faulty"] > 0
    assert during["dropped_by_emitter"]["MemoryEmitter"] == 0
    faulty.mode = "ok"
    assert flush(10)
    assert counters.accounted("faulty") == counters.now()["emitted"] == 20_002
    assert faulty.kept[-1].id == memory.events[-1].id  # the newest arrived
    assert counters.now()["delivered"]["faulty"] == len(faulty.kept)


def test_a_slow_sink_loses_nothing_when_the_queue_can_hold_the_burst(
    faulty: Faulty,
) -> None:
    """A sink that takes 20 ms a batch keeps up in the end: nothing dropped."""
    configure(emitters=[faulty], batch_size=256)
    counters = Counters()
    faulty.mode = "slow"
    account = FaultAccount()
    _calls(account, 5_000)
    assert flush(30)
    now = counters.now()
    assert now["dropped"] == 0
    assert now["delivered"]["faulty"] == len(faulty.kept) == 10_000


def test_a_slow_sink_with_a_small_queue_drops_and_counts(faulty: Faulty) -> None:
    """A slow sink behind a small buffer drops the overflow, counted, never waited
    on; the loss reaches the sink as a pipeline.events-lost record."""
    configure(emitters=[faulty], max_buffer_bytes=70_000, batch_size=100)
    counters = Counters()
    faulty.mode = "slow"
    faulty.delay = 0.05
    _calls(FaultAccount(), 10_000)
    assert flush(30) is False  # events were lost since the last flush
    now = counters.now()
    assert now["dropped"] > 0
    lost = [e for e in faulty.kept if e.event == "pipeline.events-lost"]
    assert sum(e.payload["lost"] for e in lost) == now["dropped"]
    # Each loss record is counted as emitted and delivered, like any event.
    assert now["emitted"] == 20_000 + len(lost)
    assert now["delivered"]["faulty"] + now["dropped"] == now["emitted"]


def test_a_sink_raising_a_base_exception_keeps_its_worker_alive(
    faulty: Faulty,
) -> None:
    """A sink raising CancelledError is counted failed and then still delivers."""
    configure(emitters=[faulty])
    counters = Counters()
    faulty.mode = "cancel"
    emit_event("tick", {"id": "clock"})
    flush(2)
    faulty.mode = "ok"
    emit_event("tick", {"id": "clock"})
    assert flush(5)
    now = counters.now()
    assert now["failed"]["faulty"] == 1
    assert now["delivered"]["faulty"] == 1


def test_a_processor_raising_a_base_exception_keeps_the_pipeline_alive() -> None:
    """A processor raising asyncio.CancelledError drops its event only."""
    memory = MemoryEmitter()
    cancelled = threading.Event()

    def cancel_once(event: Event) -> Event:
        if not cancelled.is_set():
            cancelled.set()
            raise asyncio.CancelledError()
        return event

    configure(emitters=[memory], processors=[cancel_once])
    emit_event("tick", {"id": "clock"})
    flush(2)
    emit_event("tock", {"id": "clock"})
    assert flush(5)
    assert [e.event for e in memory.events] == ["tock"]


# -- the SQL store's database going away -------------------------------------------


def test_a_sqlite_store_locked_by_another_process_waits_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """A SQLite store locked by another connection waits, then stores it all."""
    database = tmp_path / "events.db"
    store = SQLEventStore(f"sqlite:///{database}")
    store.events()  # create the tables
    configure(emitters=[store], flush_interval=0.05)
    counters = Counters()
    account = FaultAccount()
    blocker = sqlite3.connect(database, isolation_level=None, timeout=30)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with flow_run("locked", id="run-locked"):
            _calls(account, 2_000)
            time.sleep(1.0)  # the store's batches wait on the lock meanwhile
            blocker.execute("COMMIT")
            _calls(account, 500, start=2_000)
    finally:
        blocker.close()
    assert flush(30)
    now = counters.now()
    assert now["failed"]["SQLEventStore"] == 0
    assert now["delivered"]["SQLEventStore"] == 5_000
    assert len(store.timeline("run-locked")) == 2_500


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of a database server, that can be cut.

    While cut, every relayed connection is reset and new ones are accepted only to
    be reset at once: to the driver the server has gone away.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)  # so that close() is noticed
        self.port = self.listener.getsockname()[1]
        self.up = True
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if not self.up:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        """Reset every relayed connection and refuse new ones until restored."""
        self.up = False
        with self._lock:
            opened, self._open = self._open, []
        for sock in opened:
            _reset(sock)

    def restore(self) -> None:
        """Relay new connections again."""
        self.up = True

    def close(self) -> None:
        """Stop listening and reset everything."""
        self._stop = True
        self._thread.join(5)
        self.cut()
        self.listener.close()


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        # Linger 0: close with a reset, as a crashed server or a dropped link does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        sock.close()


@pytest.fixture
def proxied_url(store_url: str) -> Iterator[tuple[str, Proxy]]:
    """The database of store_url behind a proxy the test can cut (servers only)."""
    url = sa.make_url(store_url)
    if url.get_backend_name() == "sqlite":
        pytest.skip("SQLite has no server to lose; see the locked-file test")
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=proxy.port)
    yield proxied.render_as_string(hide_password=False), proxy
    configure(emitters=[])
    proxy.close()


def _stored_run(url: str, run_id: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT COUNT(*) FROM eventblocks_events WHERE flow_run_id = :r"
                    ),
                    {"r": run_id},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_the_store_survives_its_database_going_away_mid_run(
    store_url: str, proxied_url: tuple[str, Proxy]
) -> None:
    """Server lost mid-run: calls go on, losses counted, stats() matches the rows."""
    url, proxy = proxied_url
    store = SQLEventStore(url, name="store")
    store.events()  # tables ready before the run
    configure(emitters=[store], flush_interval=0.05)
    counters = Counters()
    account = FaultAccount()
    with flow_run("outage", id="run-outage"):
        _calls(account, 300)
        assert flush(20)
        proxy.cut()
        deadline = time.monotonic() + 1.5
        n = 300
        while time.monotonic() < deadline:
            _calls(account, 50, start=n)
            n += 50
            time.sleep(0.02)
        flush(15)  # the batches of the outage fail, counted
        proxy.restore()
        _calls(account, 300, start=n)
        n += 300
    assert flush(30)
    now = counters.now()
    emitted = 2 * n
    assert now["emitted"] == emitted
    assert now["failed"]["store"] > 0
    assert now["delivered"]["store"] + now["failed"]["store"] == emitted
    stored = _stored_run(store_url, "run-outage")
    # A batch cut after its commit reached the server is stored yet counted failed:
    # stats() never claims more than the database holds.
    assert now["delivered"]["store"] <= stored <= emitted
    timeline = store.timeline("run-outage")
    assert [c.outcome for c in timeline[-300:]] == (["succeeded"] * 9 + ["failed"]) * 30
