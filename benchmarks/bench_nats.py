"""Throughput through NATS JetStream: worker processes publishing, an ingester storing.

Run: ``python benchmarks/bench_nats.py [--workers W] [--events N] [--nats URL]
[--to DATABASE_URL] [--json]``

Needs a NATS server with JetStream (default ``nats://127.0.0.1:4222``). A stream
of the run's own is created and deleted at the end.

- publish: W processes each build N events and hand them to ``NatsEmitter``
  in batches of 512 (the pipeline's batch size), starting together; the rate is
  W x N over the time from the common start until the last one has every
  acknowledgement. The same with one process gives the scaling ratio, and the
  plain ``nats-py`` client publishing the same bytes with ``publish_async``
  (no event serialisation) gives the emitter's cost.
- ingest: one ``NatsIngester`` (batches of 1,000) drains the stream into an
  ``SQLEventStore`` at ``--to`` (default: ``EVENTBLOCKS_BENCH_DATABASE_URL``, or
  SQLite in a temporary folder); compared with ``SQLEventStore.emit_batch`` of
  the same events straight into a second stream-free run of the store.

The report counts what was stored (every event once expected).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import sqlalchemy as sa

from emitters import Event, Resource
from emitters._ids import new_uuid7
from emitters.nats import NatsIngester
from emitters.sql import SQLEventStore

BATCH = 512

_WORKER = """
import json, sys, time
from datetime import UTC, datetime
from emitters import Event, Resource
from emitters._ids import new_uuid7
from emitters.nats import NatsEmitter

url, stream, subject, name, worker, count, start_at, raw = sys.argv[1:9]
count, start_at = int(count), float(start_at)
BATCH = 512
now = datetime.now(UTC)
events = [
    Event(id=new_uuid7(), occurred=now, event=name,
          resource=Resource(id=f"worker.{worker}"), payload={"n": n})
    for n in range(count)
]
if raw == "raw":
    import asyncio, nats
    payloads = [(str(e.id), e.model_dump_json().encode()) for e in events]
    async def main():
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.publish_async(subject, b"{}", headers={"Nats-Msg-Id": "warm"+worker})
        await js.publish_async_completed()
        time.sleep(max(0.0, start_at - time.time()))
        t = time.perf_counter()
        for i, p in payloads:
            await js.publish_async(subject, p, headers={"Nats-Msg-Id": i})
        await js.publish_async_completed()
        elapsed = time.perf_counter() - t
        await nc.close()
        return elapsed
    elapsed = asyncio.run(main())
    sent = count
else:
    emitter = NatsEmitter(url, stream=stream, subject=subject)
    emitter.emit_batch(events[:1])  # connect before the clock starts
    time.sleep(max(0.0, start_at - time.time()))
    t = time.perf_counter()
    for start in range(1, count, BATCH):
        emitter.emit_batch(events[start : start + BATCH])
    elapsed = time.perf_counter() - t
    sent = emitter.sent
    emitter.close()
print(json.dumps({"elapsed": elapsed, "sent": sent, "end": time.time()}))
"""


async def _admin(url: str, action: str, stream: str, subject: str) -> int:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        if action == "create":
            await js.add_stream(name=stream, subjects=[subject])
        elif action == "delete":
            await js.delete_stream(stream)
        elif action == "purge":
            await js.purge_stream(stream)
        return (
            int((await js.stream_info(stream)).state.messages)
            if action != "delete"
            else 0
        )
    finally:
        await client.close()


def _admin_sync(url: str, action: str, stream: str, subject: str) -> int:
    return asyncio.run(_admin(url, action, stream, subject))


def _publish(
    url: str, stream: str, subject: str, name: str, workers: int, events: int, raw: bool
) -> dict[str, float]:
    """Run W publishing processes from a common start; return their figures."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    start_at = time.time() + 3.0 + 0.5 * workers  # time to import and build
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                url,
                stream,
                subject,
                name,
                str(n),
                str(events),
                str(start_at),
                "raw" if raw else "emitter",
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(workers)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed with status {proc.returncode}")
        results.append(json.loads(out))
    # From the first one's start (they may start late on a busy machine) to the
    # last one's last acknowledgement.
    wall = max(r["end"] for r in results) - min(
        r["end"] - r["elapsed"] for r in results
    )
    return {
        "sent": sum(r["sent"] for r in results),
        "wall_s": wall,
        "events_per_s": workers * events / wall,
    }


def _events(count: int, name: str) -> list[Event]:
    now = datetime.now(UTC)
    return [
        Event(
            id=new_uuid7(),
            occurred=now,
            event=name,
            resource=Resource(id="x"),
            payload={"n": n},
        )
        for n in range(count)
    ]


def _count(store: SQLEventStore, name: str) -> int:
    query = sa.text("SELECT count(*) FROM eventblocks_events WHERE event = :name")
    with store.engine.connect() as conn:
        return int(conn.execute(query, {"name": name}).scalar_one())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--events", type=int, default=50_000, help="per worker")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument(
        "--to", default=os.environ.get("EVENTBLOCKS_BENCH_DATABASE_URL", "")
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    tag = secrets.token_hex(4)
    stream, subject = f"BENCH_{tag.upper()}", f"bench.{tag}"
    folder = tempfile.TemporaryDirectory()
    url = args.to or f"sqlite:///{Path(folder.name) / 'store.db'}"
    total = args.workers * args.events
    _admin_sync(args.nats, "create", stream, subject)
    try:
        raw = _publish(
            args.nats, stream, subject, f"bench.raw.{tag}", 1, args.events, raw=True
        )
        _admin_sync(args.nats, "purge", stream, subject)
        one = _publish(
            args.nats, stream, subject, f"bench.one.{tag}", 1, args.events, raw=False
        )
        _admin_sync(args.nats, "purge", stream, subject)
        name = f"bench.nats.{tag}"
        many = _publish(
            args.nats, stream, subject, name, args.workers, args.events, raw=False
        )
        in_stream = _admin_sync(args.nats, "info", stream, subject)
        store = SQLEventStore(url)
        store.engine  # noqa: B018 - create the tables before timing
        ingester = NatsIngester(
            args.nats,
            stream=stream,
            durable="bench",
            store=store,
            batch_size=1000,
            fetch_timeout=0.5,
        )
        started = time.perf_counter()
        stats = ingester.run(once=True)
        ingest_s = time.perf_counter() - started - 0.5  # the last, empty fetch
        stored = _count(store, name)
        direct_events = _events(min(total, 50_000), f"bench.direct.{tag}")
        started = time.perf_counter()
        for start in range(0, len(direct_events), 1000):
            store.emit_batch(direct_events[start : start + 1000])
        direct_rate = len(direct_events) / (time.perf_counter() - started)
    finally:
        _admin_sync(args.nats, "delete", stream, subject)
        folder.cleanup()
    ingest_rate = stats.stored / ingest_s
    result: dict[str, Any] = {
        "workers": args.workers,
        "events": total,
        "in_stream": in_stream,
        "stored": stored,
        "store": store.display_url.split(":", 1)[0],
        "events_per_s": {
            "raw_client_one_process": raw["events_per_s"],
            "emitter_one_process": one["events_per_s"],
            "emitter_all_workers": many["events_per_s"],
            "ingest_into_store": ingest_rate,
            "store_emit_batch_direct": direct_rate,
        },
        "ratios": {
            "emitter_vs_raw_client": one["events_per_s"] / raw["events_per_s"],
            "workers_vs_one": many["events_per_s"] / one["events_per_s"],
            "ingest_vs_direct_store": ingest_rate / direct_rate,
        },
    }
    if args.json:
        print(json.dumps(result))
    else:
        rates, ratios = result["events_per_s"], result["ratios"]
        print(
            f"{total:,} events from {args.workers} workers; {in_stream:,} in the "
            f"stream, {stored:,} stored ({result['store']})"
        )
        for key, value in rates.items():
            print(f"  {key:28} {value:>12,.0f} events/s")
        for key, value in ratios.items():
            print(f"  {key:28} {value:>12.2f}")
    return result


if __name__ == "__main__":
    main()
