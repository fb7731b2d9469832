"""Workers publish their events to NATS JetStream; an ingester stores them once.

Run it from the repository root, with a NATS server (JetStream enabled) on
127.0.0.1:4222 (or ``NATS_URL``)::

    python examples/workers_through_nats.py

Three worker processes each run a small flow that calls a ``Warehouse`` block
three times (the third call fails), with a ``NatsEmitter`` as their only sink:
18 events in all. Then ``NatsIngester`` (what ``eventblocks events ingest``
runs) pulls them from the stream into a SQLite event store and acknowledges
them; run again on the same durable consumer, it finds nothing left. The script
prints each run's timeline from the store, and deletes the stream it made.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import nats

from blocks import Block
from emitters import configure, flow_run, flush
from emitters.nats import NatsEmitter, NatsIngester
from emitters.sql import SQLEventStore

URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")


class Warehouse(Block):
    """A pretend warehouse: querying ``refunds`` fails."""

    def query(self, table: str) -> int:
        """Return a row count."""
        if table == "refunds":
            raise LookupError(f"relation {table} does not exist")
        return len(table)


def worker(stream: str, subject: str, name: str) -> None:
    """One worker process: a flow run whose events go to the stream."""
    configure(emitters=[NatsEmitter(URL, stream=stream, subject=subject)])
    with flow_run(name):
        warehouse = Warehouse()
        for table in ("orders", "customers", "refunds"):
            with contextlib.suppress(LookupError):
                warehouse.query(table)
    flush()
    configure(emitters=[])


async def _delete(stream: str) -> None:
    client = await nats.connect(URL)
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await client.jetstream().delete_stream(stream)
    await client.close()


def main() -> int:
    if len(sys.argv) == 4:  # a worker process
        worker(*sys.argv[1:])
        return 0
    tag = secrets.token_hex(4)
    stream, subject = f"EXAMPLE_{tag.upper()}", f"example.{tag}.events"
    # The stream is made once, by whoever deploys NATS (or by an emitter with
    # create_stream=True).
    asyncio.run(_create(stream, subject))
    try:
        names = [f"worker-{n}" for n in range(3)]
        procs = [
            subprocess.Popen([sys.executable, __file__, stream, subject, name])
            for name in names
        ]
        if any(proc.wait(60) != 0 for proc in procs):
            return 1
        with tempfile.TemporaryDirectory() as folder:
            store = SQLEventStore(f"sqlite:///{Path(folder) / 'events.db'}")
            ingester = NatsIngester(
                URL, stream=stream, durable="example", store=store, status=print
            )
            first = ingester.run(once=True)
            again = NatsIngester(URL, stream=stream, durable="example", store=store)
            second = again.run(once=True)
            print(f"\nstored {first.stored} events; a second run found {second.stored}")
            runs = {
                run.id.removeprefix("flow-run."): run.name
                for event in store.events(limit=100)
                for run in event.related_by_role("flow-run")
            }
            for run_id, name in sorted(runs.items(), key=lambda item: item[1] or ""):
                print(f"\n{name}:")
                for call in store.timeline(run_id):
                    print(f"  {call.block:<12} {call.method:<6} {call.outcome}")
            store.engine.dispose()
    finally:
        asyncio.run(_delete(stream))
    return 0 if (first.stored, second.stored, len(runs)) == (18, 0, 3) else 1


async def _create(stream: str, subject: str) -> None:
    client = await nats.connect(URL)
    js = client.jetstream()
    with contextlib.suppress(nats.js.errors.BadRequestError):
        await js.add_stream(name=stream, subjects=[subject])
    await client.close()


if __name__ == "__main__":
    sys.exit(main())
