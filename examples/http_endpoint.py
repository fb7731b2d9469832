"""An HTTP API called from a flow run: every call observable, the token nowhere.

Run it from the repository root::

    python examples/http_endpoint.py

It starts a stand-in API on 127.0.0.1 that wants a bearer token, then calls it
through an ``HttpEndpoint`` inside ``flow_run("sync-orders")``: two calls answer,
the third gets a 500 and, with ``raise_for_status=True``, fails the flow. The script
prints one line per event and checks that the token appears in none of them and
nowhere in its output.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from blocks.http import BearerAuth, HttpEndpoint
from emitters import Event, MemoryEmitter, configure, flow_run, flush

TOKEN = "tok-example-3f9a61d2c7"

DATA = {
    "/v1/orders": [{"id": 10, "total": 9.5}, {"id": 11, "total": 120.0}],
    "/v1/customers": [{"id": 1}, {"id": 3}],
}


class StandInApi(BaseHTTPRequestHandler):
    """Answers GET /v1/orders and /v1/customers; /v1/refunds is broken."""

    def do_GET(self) -> None:
        """Check the token, then answer from DATA (or 500 for refunds)."""
        path = self.path.split("?", 1)[0]
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            status, body = 401, {"error": "unauthorized"}
        elif path in DATA:
            status, body = 200, {"items": DATA[path]}
        else:
            status, body = 500, {"error": "refunds service down"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the example's output to the events."""


def sync_orders(api: HttpEndpoint) -> int:
    """The flow: read orders and customers, then refunds (which fails)."""
    rows = 0
    for resource in ("orders", "customers", "refunds"):
        response = api.get(resource, params={"limit": 100}, raise_for_status=True)
        rows += len(response.json()["items"])
    return rows


def describe(event: Event) -> str:
    """One line per event: name, method, URL, status, and the error if any."""
    payload = event.payload
    line = f"{event.event:<36}"
    if "url" in payload:
        line += f" {payload['method']} {payload['url']}"
    if "status_code" in payload:
        line += f" -> {payload['status_code']} ({payload['bytes_received']} bytes)"
    error = payload.get("error")
    if error:
        line += f"\n{'':<37}{error['type']}: {error['message']}"
    return line.rstrip()


def main() -> int:
    """Run the flow against the stand-in API and print its events."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandInApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink = MemoryEmitter()
    configure(emitters=[sink])

    api = HttpEndpoint(
        base_url=f"http://127.0.0.1:{server.server_port}/v1",
        auth=BearerAuth(token=TOKEN),
        timeout=5,
    )
    try:
        with api, flow_run("sync-orders") as run:
            sync_orders(api)
    except httpx.HTTPStatusError as exc:
        print(f"The flow failed: {exc}\n")
    finally:
        server.shutdown()
        server.server_close()
    flush()

    lines = [f"Events of flow run {run.name}:"]
    lines += [f"  {describe(event)}" for event in sink.events]
    print("\n".join(lines))

    leaked = [e for e in sink.events if TOKEN in e.model_dump_json()]
    if leaked or any(TOKEN in line for line in lines) or TOKEN in repr(api):
        print(f"The token leaked into {len(leaked)} events.", file=sys.stderr)
        return 1
    print(f"\nThe token appears in none of the {len(sink.events)} events.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
