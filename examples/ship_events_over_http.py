"""Ship a flow's events to a collector over HTTP, through a brief outage.

Run it from the repository root::

    python examples/ship_events_over_http.py

It starts a stand-in event collector on 127.0.0.1 that wants a bearer token and
answers the first batch with 503 (as a collector does while it restarts). A small
flow run then calls a ``Warehouse`` block three times (the third call fails), with
an ``HttpEmitter`` as the only sink. The emitter retries the batch, the collector
accepts it, and the script prints what the collector received: every event once,
in order, decoded from the gzip-compressed JSON body.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from blocks import Block
from emitters import Event, configure, flow_run, flush, stats
from emitters.http import HttpEmitter

TOKEN = "tok-collector-5d1e0b7a94"

batches: list[dict[str, Any]] = []
"""What the collector saw: one entry per request."""


class Collector(BaseHTTPRequestHandler):
    """Accepts POST /events with the right token; the first batch gets a 503."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        """Decode the batch, then answer 503 once and 204 after that."""
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        compressed = self.headers.get("Content-Encoding") == "gzip"
        body = gzip.decompress(raw) if compressed else raw
        events = [Event.model_validate(e) for e in json.loads(body)["events"]]
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            status = 401
        else:
            status = 503 if not batches else 204
        batches.append(
            {
                "status": status,
                "bytes": len(raw),
                "gzip": compressed,
                "key": self.headers["Idempotency-Key"],
                "events": events,
            }
        )
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Keep the example's output to the events."""


class Warehouse(Block):
    """A pretend warehouse: querying ``refunds`` fails."""

    def query(self, table: str) -> int:
        """Return a row count."""
        if table == "refunds":
            raise LookupError(f"relation {table} does not exist")
        return len(table)


def nightly_etl(warehouse: Warehouse) -> None:
    """The flow: three queries, the last one fails."""
    for table in ("orders", "customers", "refunds"):
        # The failure is in the events; the flow goes on.
        with contextlib.suppress(LookupError):
            warehouse.query(table)


def main() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/events"
    try:
        with tempfile.TemporaryDirectory() as spool:
            sink = HttpEmitter(
                url,
                headers={"Authorization": f"Bearer {TOKEN}"},
                spool_dir=spool,
                backoff=0.05,
                gzip_min_bytes=256,
            )
            configure(emitters=[sink])
            with flow_run("nightly-etl"):
                nightly_etl(Warehouse())
            flush()
            configure(emitters=[])  # closes the sink
    finally:
        server.shutdown()
        server.server_close()

    print(f"The collector at {url} got {len(batches)} requests:")
    for batch in batches:
        size = f"{batch['bytes']} bytes{' gzip' if batch['gzip'] else ''}"
        print(f"  HTTP {batch['status']}  {len(batch['events'])} events, {size}")
    accepted = [e for b in batches if b["status"] == 204 for e in b["events"]]
    unique = list({e.id: e for e in accepted}.values())
    print("\nEvents accepted (deduplicated by id, in order):")
    for event in unique:
        run = event.related_by_role("flow-run")[0].name
        error = event.payload.get("error")
        detail = f"  {error['type']}: {error['message']}" if error else ""
        print(f"  {event.event:<34} flow-run={run}{detail}")
    counters = stats()
    print(
        f"\nstats(): delivered={counters['delivered'].get('HttpEmitter', 0)}, "
        f"failed={counters['failed'].get('HttpEmitter', 0)}"
    )
    retried = len({b["key"] for b in batches}) < len(batches)
    ok = len(unique) == 6 and batches[0]["status"] == 503 and retried
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
