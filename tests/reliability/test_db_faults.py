"""Databases that hang or refuse what is too large: timed out, named, split off.

A TCP proxy of the test's own on 127.0.0.1 stands between the stores and the real
PostgreSQL and MariaDB servers; frozen, it accepts connections and passes nothing
on, as a server that hangs would.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from blocks import Block, BlockStoreError
from blocks._documents.store import DocumentStore
from emitters import Event, PartialDelivery, Resource
from emitters.sql import SQLEventStore


class Proxy:
    """Forwards 127.0.0.1:<port> to a server; ``frozen`` passes nothing on."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.frozen = threading.Event()
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._open.append(client)
            if self.frozen.is_set():
                continue  # accepted, never answered
            server = socket.create_connection(self.target)
            self._open.append(server)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                while self.frozen.is_set() and not self._stop.is_set():
                    time.sleep(0.05)
                if self._stop.is_set():
                    return
                dst.sendall(data)

    def close(self) -> None:
        self._stop.set()
        for sock in [self._sock, *self._open]:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def proxy_url(store_url: str) -> Iterator[tuple[str, Proxy]]:
    """The store URL through a proxy, with a password that must never be shown."""
    url = make_url(store_url)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 0)
    through = url.set(host="127.0.0.1", port=proxy.port)
    if url.get_backend_name() == "postgresql":
        through = through.set(password="pw-never-shown")  # trust: ignored
    yield through.render_as_string(hide_password=False), proxy
    proxy.close()


def _event(size: int = 0) -> Event:
    return Event(
        id=uuid.uuid4(),
        occurred=datetime.now(UTC),
        event="tick",
        resource=Resource(id="clock"),
        payload={"blob": "x" * size} if size else {},
    )


class Note(Block):
    """A block with one text field."""

    text: str = ""


@pytest.mark.parametrize("store_url", ["postgresql", "mariadb"], indirect=True)
def test_a_server_that_never_answers_is_timed_out_with_a_clear_error(
    proxy_url: tuple[str, Proxy],
) -> None:
    """Frozen from the start: load and the event store fail in time, URL masked."""
    url, proxy = proxy_url
    proxy.frozen.set()
    url += ("&" if "?" in url else "?") + "connect_timeout=1"
    if url.startswith("mysql"):
        # PyMySQL reads the server's greeting under read_timeout.
        url += "&read_timeout=2"
    started = time.monotonic()
    with pytest.raises(BlockStoreError) as caught:
        Note.load("n", store=DocumentStore(url))
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert f"127.0.0.1:{proxy.port}" in message
    assert "pw-never-shown" not in message
    started = time.monotonic()
    with pytest.raises(DBAPIError) as raised:
        SQLEventStore(url).emit_batch([_event()])
    assert time.monotonic() - started < 5
    assert "pw-never-shown" not in str(raised.value)


@pytest.mark.parametrize("store_url", ["mariadb"], indirect=True)
def test_a_server_that_stops_answering_mid_run_is_timed_out(
    proxy_url: tuple[str, Proxy],
) -> None:
    """MariaDB answers, then stops: the next batch fails within read_timeout."""
    url, proxy = proxy_url
    url += ("&" if "?" in url else "?") + "read_timeout=2&write_timeout=2"
    store = SQLEventStore(url)
    first = [_event() for _ in range(10)]
    store.emit_batch(first)
    proxy.frozen.set()
    started = time.monotonic()
    with pytest.raises(DBAPIError):
        store.emit_batch([_event() for _ in range(10)])
    assert time.monotonic() - started < 2 * 2 + 3
    proxy.frozen.clear()


@pytest.mark.parametrize("store_url", ["mariadb"], indirect=True)
def test_an_event_larger_than_the_server_accepts_costs_only_itself(
    store_url: str,
) -> None:
    """One 20 MiB event among 200 on MariaDB: 199 stored, 1 counted failed alone."""
    store = SQLEventStore(store_url)
    events = [_event() for _ in range(200)]
    events[100] = _event(size=20 * 1024 * 1024)
    with pytest.raises(PartialDelivery, match="max_allowed_packet") as caught:
        store.emit_batch(events)
    assert caught.value.delivered == 199
    stored = {str(e.id) for e in store.events(limit=1_000)}
    assert stored == {str(e.id) for i, e in enumerate(events) if i != 100}


@pytest.mark.parametrize("store_url", ["mariadb"], indirect=True)
def test_a_document_larger_than_the_packet_size_names_the_limit(
    store_url: str,
) -> None:
    """A 17 MiB document on MariaDB: a clear error naming max_allowed_packet."""
    with pytest.raises(BlockStoreError, match=r"max_allowed_packet = \d+ bytes"):
        Note(text="y" * (17 * 1024 * 1024)).save("big", store=DocumentStore(store_url))
    Note(text="small").save("small", store=DocumentStore(store_url))
    assert Note.load("small", store=DocumentStore(store_url)).text == "small"
