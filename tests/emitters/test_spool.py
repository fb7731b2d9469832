"""The sinks' disk spool: a batch kept, or a sentence saying why it was dropped,
which the HTTP and NATS sinks raise as their own delivery errors."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emitters import Event, Resource
from emitters._ids import new_uuid7
from emitters._spool import Batch, SpoolError, open_spool
from emitters.http import HttpDeliveryError, HttpEmitter
from emitters.nats import NatsDeliveryError, NatsEmitter


def _events(count: int) -> list[Event]:
    return [
        Event(
            id=new_uuid7(),
            occurred=datetime.now(UTC),
            event="test.happened",
            resource=Resource(id=f"r.{i}"),
            payload={"i": i},
        )
        for i in range(count)
    ]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_keep_writes_a_batch_or_says_why_not(tmp_path: Path) -> None:
    """keep() spools what fits; a full spool and an unwritable folder raise a
    SpoolError naming the folder and the count, and write nothing."""
    assert open_spool(None, 1000, "http://x") is None
    spool = open_spool(tmp_path / "spool", 200, "http://127.0.0.1/events")
    assert spool is not None
    batch = Batch(b"x" * 100, "identity", 3, "a-b")
    spool.keep(batch, "sink")
    assert len(spool.pending()) == 1
    with pytest.raises(SpoolError, match=r"is full \(max_spool_bytes=200\); 3 events"):
        spool.keep(batch, "sink")
    assert len(spool.pending()) == 1
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    unwritable = open_spool(blocked, 1000, "http://127.0.0.1/events")
    assert unwritable is not None
    with pytest.raises(SpoolError, match=r"sink could not spool 3 events to .*a-file"):
        unwritable.keep(batch, "sink")


def test_the_http_sink_raises_its_own_error_when_the_spool_is_full(
    tmp_path: Path,
) -> None:
    """An HTTP batch that neither reaches the endpoint nor fits the spool is an
    HttpDeliveryError saying the spool is full, counted as dropped."""
    emitter = HttpEmitter(
        f"http://127.0.0.1:{_closed_port()}/events",
        spool_dir=tmp_path / "spool",
        max_spool_bytes=10,
        max_retries=0,
        backoff=0.01,
        timeout=1,
    )
    with emitter, pytest.raises(HttpDeliveryError, match="is full") as caught:
        emitter.emit_batch(_events(2))
    assert caught.value.events == 2
    assert (emitter.spooled, emitter.dropped) == (0, 2)


def test_the_nats_sink_raises_its_own_error_when_the_spool_is_full(
    tmp_path: Path,
) -> None:
    """A NATS batch that neither reaches a server nor fits the spool is a
    NatsDeliveryError saying the spool is full, counted as dropped."""
    emitter = NatsEmitter(
        f"nats://127.0.0.1:{_closed_port()}",
        stream="spool-test",
        subject="spool.test",
        spool_dir=tmp_path / "spool",
        max_spool_bytes=10,
        timeout=0.5,
        backoff=0.01,
    )
    with emitter, pytest.raises(NatsDeliveryError, match="is full") as caught:
        emitter.emit_batch(_events(2))
    assert caught.value.events == 2
    assert (emitter.spooled, emitter.dropped) == (0, 2)
