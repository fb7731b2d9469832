"""NatsEmitter and NatsIngester against the real NATS JetStream server."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import pytest

from emitters import Event, Resource, configure, emit_event, flush
from emitters._ids import new_uuid7
from emitters.nats import (
    NatsDeliveryError,
    NatsEmitter,
    NatsIngester,
    from_environment,
)
from emitters.sql import SQLEventStore

ROOT = Path(__file__).resolve().parents[2]


def _events(count: int, prefix: str = "r") -> list[Event]:
    return [
        Event(
            id=new_uuid7(),
            occurred=datetime.now(UTC),
            event="test.happened",
            resource=Resource(id=f"{prefix}.{i}"),
            payload={"i": i},
        )
        for i in range(count)
    ]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _admin(url: str, action: str, stream: str) -> Any:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        if action == "delete":
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
            return None
        if action.startswith("create "):
            await js.add_stream(name=stream, subjects=[action.split()[1]])
            return None
        if action == "count":
            return (await js.stream_info(stream)).state.messages
        if action == "messages":
            info = await js.stream_info(stream)
            found = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(stream, seq)
                found.append((dict(msg.headers or {}), msg.data))
            return found
        raise AssertionError(action)
    finally:
        await client.close()


def admin(url: str, action: str, stream: str) -> Any:
    """Run a management action on the server from a test."""
    return asyncio.run(_admin(url, action, stream))


@pytest.fixture
def stream(nats_url: str) -> Iterator[tuple[str, str]]:
    """A unique stream and subject name; the stream is deleted afterwards."""
    tag = secrets.token_hex(5)
    name = f"TEST_{tag.upper()}"
    yield name, f"test.{tag}.events"
    admin(nats_url, "delete", name)


def _publish(
    url: str, names: tuple[str, str], events: list[Event], **options: Any
) -> NatsEmitter:
    emitter = NatsEmitter(
        url, stream=names[0], subject=names[1], create_stream=True, **options
    )
    with emitter:
        for start in range(0, len(events), 250):
            emitter.emit_batch(events[start : start + 250])
    return emitter


# -- the emitter ------------------------------------------------------------------


def test_events_round_trip_with_their_id_as_message_id(
    nats_url: str, stream: tuple[str, str]
) -> None:
    """Each event is one message: its JSON, with its id as Nats-Msg-Id."""
    events = _events(600)
    emitter = _publish(nats_url, stream, events)
    assert emitter.sent == 600
    stored = admin(nats_url, "messages", stream[0])
    assert [Event.model_validate_json(data) for _, data in stored] == events
    assert [headers["Nats-Msg-Id"] for headers, _ in stored] == [
        str(e.id) for e in events
    ]


def test_a_batch_published_twice_is_stored_once(
    nats_url: str, stream: tuple[str, str]
) -> None:
    """The stream's duplicate window drops messages whose id it has seen."""
    events = _events(300)
    emitter = _publish(nats_url, stream, events + events[:100])
    assert emitter.sent == 400  # acknowledged, as duplicates are
    assert admin(nats_url, "count", stream[0]) == 300


def test_the_pipeline_delivers_to_nats(nats_url: str, stream: tuple[str, str]) -> None:
    """emit_event through the pipeline reaches the stream; the caller never waits."""
    emitter = NatsEmitter(nats_url, stream=stream[0], subject=stream[1])
    admin(nats_url, f"create {stream[1]}", stream[0])
    configure(emitters=[emitter])
    sent = [emit_event("job.done", {"id": f"job.{i}"}) for i in range(50)]
    assert flush(10)
    configure(emitters=[])
    stored = [
        Event.model_validate_json(d) for _, d in admin(nats_url, "messages", stream[0])
    ]
    assert [e.id for e in stored] == [e.id for e in sent]


def test_batches_spool_while_the_server_is_away_and_arrive_later(
    nats_url: str, stream: tuple[str, str], tmp_path: Path
) -> None:
    """Published at a closed port, events wait in the spool; an emitter on the
    same folder and stream sends them once a server answers."""
    spool = tmp_path / "spool"
    events = _events(700)
    away = NatsEmitter(
        f"nats://127.0.0.1:{_closed_port()}",
        stream=stream[0],
        subject=stream[1],
        spool_dir=spool,
        timeout=0.5,
        backoff=0.05,
    )
    with away:
        started = time.monotonic()
        for start in range(0, 700, 100):
            away.emit_batch(events[start : start + 100])
        assert time.monotonic() - started < 5
    assert (away.sent, away.spooled, away.dropped) == (0, 700, 0)
    assert len(list(spool.glob("*.batch"))) == 7

    back = NatsEmitter(
        nats_url,
        stream=stream[0],
        subject=stream[1],
        create_stream=True,
        spool_dir=spool,
    )
    with back:
        assert back.flush(10)
    assert back.replayed == 700
    assert list(spool.glob("*.batch")) == []
    stored = admin(nats_url, "messages", stream[0])
    assert [Event.model_validate_json(d).id for _, d in stored] == [
        e.id for e in events
    ]


def test_a_batch_the_full_spool_cannot_take_is_a_delivery_error(
    tmp_path: Path,
) -> None:
    """A batch that neither reaches a server nor fits the spool is a
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


def test_spooled_batches_go_before_newer_ones(
    nats_url: str, stream: tuple[str, str], tmp_path: Path
) -> None:
    """A batch published after an outage follows the ones spooled during it."""
    spool = tmp_path / "spool"
    old, new = _events(40, "old"), _events(40, "new")
    with NatsEmitter(
        f"nats://127.0.0.1:{_closed_port()}",
        stream=stream[0],
        subject=stream[1],
        spool_dir=spool,
        timeout=0.5,
    ) as away:
        away.emit_batch(old)
    _publish(nats_url, stream, new, spool_dir=spool)
    stored = admin(nats_url, "messages", stream[0])
    assert [Event.model_validate_json(d).id for _, d in stored] == [
        e.id for e in old + new
    ]


def test_without_a_spool_an_unreachable_server_fails_the_batch(
    stream: tuple[str, str],
) -> None:
    """The error names the server without its password, and counts the events."""
    port = _closed_port()
    emitter = NatsEmitter(
        f"nats://ingest:s3cret-pw@127.0.0.1:{port}",
        stream=stream[0],
        subject=stream[1],
        timeout=0.5,
        backoff=30,
    )
    with emitter:
        with pytest.raises(NatsDeliveryError) as caught:
            emitter.emit_batch(_events(3))
        assert caught.value.events == 3
        assert f"nats://127.0.0.1:{port}" in str(caught.value)
        assert "s3cret" not in str(caught.value)
        assert "s3cret" not in repr(emitter)
        # The server is counted as away: the next batch fails at once.
        started = time.monotonic()
        with pytest.raises(NatsDeliveryError, match="next attempt is due"):
            emitter.emit_batch(_events(1))
        assert time.monotonic() - started < 0.5
    with pytest.raises(NatsDeliveryError, match="closed"):
        emitter.emit_batch(_events(1))


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"servers": "http://127.0.0.1:4222"}, "servers"),
        ({"servers": ""}, "servers"),
        ({"stream": "a.b"}, "stream"),
        ({"subject": "has space"}, "subject"),
        ({"timeout": 0}, "timeout"),
        ({"max_spool_bytes": 0}, "max_spool_bytes"),
    ],
)
def test_bad_options_are_refused_by_name(options: dict[str, Any], field: str) -> None:
    """A malformed option raises ValueError naming it."""
    with pytest.raises(ValueError, match=field):
        NatsEmitter(**options)


def test_from_environment_reads_the_nats_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, eventblocks_home: Path
) -> None:
    """The `nats` sink's factory takes its settings from EVENTBLOCKS_NATS_*."""
    emitter = from_environment()
    assert (emitter.servers, emitter.stream, emitter.subject) == (
        "nats://127.0.0.1:4222",
        "EVENTBLOCKS",
        "eventblocks.events",
    )
    assert emitter.spool_dir == (eventblocks_home / "nats-spool").absolute()
    monkeypatch.setenv("EVENTBLOCKS_NATS_URL", "nats://u:pw@a:1,nats://b:2")
    monkeypatch.setenv("EVENTBLOCKS_NATS_STREAM", "JOBS")
    monkeypatch.setenv("EVENTBLOCKS_NATS_SUBJECT", "jobs.events")
    monkeypatch.setenv("EVENTBLOCKS_NATS_SPOOL_DIR", str(tmp_path / "s"))
    emitter = from_environment()
    assert (emitter.servers, emitter.stream, emitter.subject) == (
        "nats://a:1,nats://b:2",
        "JOBS",
        "jobs.events",
    )
    assert emitter.spool_dir == tmp_path / "s"
    monkeypatch.setenv("EVENTBLOCKS_NATS_CREATE_STREAM", "maybe")
    with pytest.raises(ValueError, match="EVENTBLOCKS_NATS_CREATE_STREAM"):
        from_environment()
    monkeypatch.setenv("EVENTBLOCKS_NATS_CREATE_STREAM", "true")
    monkeypatch.setenv("EVENTBLOCKS_NATS_STREAM", "bad.name")
    with pytest.raises(ValueError, match=r"the NATS sink.s settings: stream"):
        from_environment()


def test_the_nats_sink_name_and_extra_are_declared() -> None:
    """pyproject.toml names the factory for EVENTBLOCKS_EMITTERS=nats, and the
    nats extra (in all) brings the client."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    group = project["entry-points"]["eventblocks.emitters"]
    module, _, attr = group["nats"].partition(":")
    assert getattr(importlib.import_module(module), attr) is from_environment
    extras = project["optional-dependencies"]
    assert any(dep.startswith("nats-py") for dep in extras["nats"])
    assert "nats" in extras["all"][0]


# -- the ingester -----------------------------------------------------------------


def test_the_ingester_stores_each_event_once(
    nats_url: str, stream: tuple[str, str], tmp_path: Path
) -> None:
    """Events published (some twice, past the duplicate window's reach) are
    stored once; a message that is no event is refused and not redelivered."""
    events = _events(500)
    _publish(nats_url, stream, events)

    async def publish_raw() -> None:
        client = await nats.connect(nats_url)
        js = client.jetstream()
        await js.publish(stream[1], b"not an event")
        # The same event again under another message id: only the store sees it.
        await js.publish(stream[1], events[0].model_dump_json().encode())
        await client.close()

    asyncio.run(publish_raw())
    store = SQLEventStore(f"sqlite:///{tmp_path / 'store.db'}")
    lines: list[str] = []
    ingester = NatsIngester(
        nats_url,
        stream=stream[0],
        durable="one",
        store=store,
        batch_size=128,
        status=lines.append,
    )
    stats = ingester.run(once=True)
    assert (stats.stored, stats.refused) == (501, 1)
    assert [e.id for e in store.events(limit=1000)] == [e.id for e in events]
    assert lines
    assert lines[-1].startswith("ingest stopped: 501 events stored")
    # Nothing is left for the durable consumer: a second run stores nothing.
    again = NatsIngester(nats_url, stream=stream[0], durable="one", store=store)
    assert again.run(once=True).stored == 0


def _ingest_command(url: str, stream: str, to: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "blocks", "events", "ingest", "--from", url,
        "--stream", stream, "--durable", "cli", "--to", to, *extra,
    ]  # fmt: skip


def test_sigterm_stops_the_ingest_command_cleanly(
    nats_url: str, stream: tuple[str, str], tmp_path: Path
) -> None:
    """The command runs until SIGTERM, then acks what it stored and exits 0."""
    _publish(nats_url, stream, _events(200))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    proc = subprocess.Popen(
        _ingest_command(nats_url, stream[0], url, "--status-interval", "0.2"),
        stderr=subprocess.PIPE,
        text=True,
    )
    store = SQLEventStore(url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if len(store.events(limit=500)) == 200:
                break
        except Exception:  # the tables are not there yet
            pass
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "ingest stopped: 200 events stored" in err
    assert "200 events stored (+" in err  # a periodic status line came first

    async def pending() -> int:
        client = await nats.connect(nats_url)
        info = await client.jetstream().consumer_info(stream[0], "cli")
        await client.close()
        return int(info.num_pending + info.num_ack_pending)

    assert asyncio.run(pending()) == 0


def test_the_ingest_command_names_an_unreachable_server(
    tmp_path: Path, eventblocks_home: Path
) -> None:
    """Exit status 1 and the server's address, without its password."""
    port = _closed_port()
    result = subprocess.run(
        _ingest_command(
            f"nats://u:hunter22@127.0.0.1:{port}",
            "S",
            f"sqlite:///{tmp_path / 's.db'}",
            "--once",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"nats://127.0.0.1:{port}" in result.stderr
    assert "hunter22" not in result.stderr + result.stdout


def test_bad_ingester_options_are_refused_by_name() -> None:
    """NatsIngester names the malformed option."""
    with pytest.raises(ValueError, match="durable"):
        NatsIngester(durable="a.b", store=SQLEventStore("sqlite://"))
    with pytest.raises(ValueError, match="batch_size"):
        NatsIngester(batch_size=0, store=SQLEventStore("sqlite://"))


# -- many workers, one killed ingester ------------------------------------------

_WORKER = """
import sys
from datetime import UTC, datetime
from emitters import Event, Resource
from emitters._ids import new_uuid7
from emitters.nats import NatsEmitter

url, stream, subject, worker, count = sys.argv[1:6]
emitter = NatsEmitter(url, stream=stream, subject=subject)
now = datetime.now(UTC)
for start in range(0, int(count), 500):
    emitter.emit_batch([
        Event(id=new_uuid7(), occurred=now, event="work.done",
              resource=Resource(id=f"worker.{worker}"), payload={"n": n})
        for n in range(start, min(start + 500, int(count)))
    ])
emitter.close()
assert emitter.sent == int(count), emitter.sent
print(emitter.sent)
"""


def acceptance_count() -> int:
    """Events per worker: EVENTBLOCKS_TEST_NATS_EVENTS, or a CI-sized default."""
    import os

    return int(os.environ.get("EVENTBLOCKS_TEST_NATS_EVENTS", "5000"))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_four_workers_and_a_killed_ingester_store_every_event_once(
    nats_url: str, stream: tuple[str, str], postgres_url: str
) -> None:
    """4 processes publish; an ingester writing to PostgreSQL is SIGKILLed midway
    and restarted: every event is stored, none twice."""
    per_worker = acceptance_count()
    total = 4 * per_worker
    with NatsEmitter(
        nats_url, stream=stream[0], subject=stream[1], create_stream=True
    ) as e:
        e.emit_batch(_events(1))  # creates the stream
    ingest = subprocess.Popen(
        _ingest_command(
            nats_url, stream[0], postgres_url, "--batch-size", "500", "--ack-wait", "5"
        ),
        stderr=subprocess.DEVNULL,
    )
    started = time.monotonic()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, nats_url, *stream, str(n), str(per_worker)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    store = SQLEventStore(postgres_url)

    def stored() -> tuple[int, int]:
        with store.engine.connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT count(*), count(DISTINCT id) FROM eventblocks_events"
            ).one()
        return int(row[0]), int(row[1])

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with_tables = True
        try:
            count = stored()[0]
        except Exception:
            with_tables, count = False, 0
        if with_tables and count >= total // 3:
            break
        time.sleep(0.05)
    ingest.send_signal(signal.SIGKILL)
    ingest.wait(30)
    killed_at = stored()[0]
    for worker in workers:
        out, _ = worker.communicate(timeout=600)
        assert worker.returncode == 0
        assert int(out) == per_worker
    published = time.monotonic() - started
    restarted = subprocess.run(
        [
            *_ingest_command(
                nats_url,
                stream[0],
                postgres_url,
                "--batch-size",
                "500",
                "--ack-wait",
                "5",
            ),
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert restarted.returncode == 0, restarted.stderr
    rows, distinct = stored()
    assert admin(nats_url, "count", stream[0]) == total + 1
    assert (rows, distinct) == (total + 1, total + 1)
    assert 0 < killed_at < total + 1
    print(
        f"{total} events from 4 workers: published in {published:.1f}s; "
        f"ingester killed at {killed_at}, all stored after the restart"
    )
