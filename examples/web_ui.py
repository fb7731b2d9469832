"""The web page over a small story: runs, a failing call, a block's runs.

Run it from the repository root (it needs the ``ui`` extra:
``pip install 'eventblocks[ui]'``)::

    python examples/web_ui.py            # then open http://127.0.0.1:8642/
    python examples/web_ui.py --check    # start, ask the page and the API, stop

The script saves an ``Inventory`` block as ``inventory/shop`` and runs the flow
``restock-check`` three times in a temporary eventblocks home; the third run asks
for a product the inventory does not know, and fails. Then it starts
``eventblocks ui`` over that home's event store, as you would over your own
(``eventblocks ui`` alone serves the home database), and leaves it running until
Ctrl-C. With ``--check`` it starts the page on a free port, fetches ``/`` and
``/api/runs``, prints what it found, and stops it.

What to look at in the browser: the runs list (the failed run is marked), the
failed run's timeline (its first failure is highlighted; click it for the error),
and the block's view (``inventory/shop``: when it started failing).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx
from pydantic import SecretStr

from blocks import Block
from emitters import configure, flow_run, flush, task_run
from emitters.sql import SQLEventStore

STOCK = {"kettle": 12, "teapot": 3, "mug": 40}


class Inventory(Block):
    """A pretend inventory service: how many of a product are in stock."""

    api_token: SecretStr

    def stock(self, sku: str) -> int:
        """Return how many of ``sku`` are in stock."""
        if sku not in STOCK:
            raise LookupError(f"unknown product {sku!r}")
        return STOCK[sku]


def restock_check(inventory: Inventory, skus: list[str]) -> None:
    """The flow: look up each product's stock, in one task run."""
    with flow_run("restock-check", labels={"skus": ",".join(skus)}):
        with task_run("look-up"):
            try:
                for sku in skus:
                    inventory.stock(sku)
            except LookupError as exc:
                print(f"restock-check {skus}: FAILED: {exc}")
                return
        print(f"restock-check {skus}: ok")


def tell_the_story() -> None:
    """Save the block and run the flow three times; the last run fails."""
    Inventory(api_token=SecretStr("inv-token-not-shown")).save("shop")
    inventory = Inventory.load("shop")
    restock_check(inventory, ["kettle", "mug"])
    restock_check(inventory, ["teapot", "mug", "kettle"])
    restock_check(inventory, ["mug", "saucer"])
    flush()


def free_port() -> int:
    """A port nothing listens on now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ui_command(url: str, port: int, *extra: str) -> list[str]:
    """``eventblocks ui`` over the store at ``url``, as this interpreter runs it."""
    return [
        sys.executable,
        "-m",
        "blocks",
        "ui",
        "--database",
        url,
        "--port",
        str(port),
        *extra,
    ]


def wait_for_page(base: str, server: subprocess.Popen[Any]) -> httpx.Response:
    """Ask for ``/`` until the server answers; return that answer."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.get(base, timeout=5)
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("eventblocks ui did not start") from None
            time.sleep(0.1)


def check(url: str) -> int:
    """Start the page, fetch ``/`` and ``/api/runs``, print them, stop it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen(ui_command(url, port), stdout=subprocess.DEVNULL)
    try:
        page = wait_for_page(base, server)
        print(f"\nGET / -> {page.status_code} {page.headers['content-type']}")
        print(f"  Content-Security-Policy: {page.headers['content-security-policy']}")
        answer = httpx.get(base + "api/runs", timeout=5)
        runs = answer.json()["runs"]
        print(f"GET /api/runs -> {answer.status_code}, {len(runs)} runs, latest first:")
        for run in runs:
            first = run["first_failure"]
            failure = (
                f"  first failure {first['block']}.{first['method']}: "
                f"{first['error_type']}"
                if first
                else ""
            )
            print(
                f"  {run['name']}  {run['short_id']}  {run['calls']} calls, "
                f"{run['failures']} failed{failure}"
            )
        block = httpx.get(base + "api/blocks/inventory/shop/runs", timeout=5).json()
        print(
            f"GET /api/blocks/inventory/shop/runs -> {len(block['runs'])} runs, "
            f"failing since {block['failing_since']}, last error "
            f"{block['last_error']['type']}: {block['last_error']['message']}"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        status = server.wait(30)
    print(f"eventblocks ui stopped with status {status}")
    return 0 if status == 0 and page.status_code == 200 else 1


def main() -> int:
    """Tell the story, then serve it (or check that it is served)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="start the page, ask it, stop it"
    )
    parser.add_argument("--port", type=int, default=8642, help="default 8642")
    parser.add_argument("--open", action="store_true", help="open a browser")
    args = parser.parse_args()
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        print("This example needs the ui extra: pip install 'eventblocks[ui]'")
        return 0

    home = tempfile.TemporaryDirectory()
    os.environ["EVENTBLOCKS_HOME"] = home.name
    os.environ.pop("EVENTBLOCKS_DATABASE_URL", None)
    url = f"sqlite:///{os.path.join(home.name, 'eventblocks.db')}"
    configure(emitters=[SQLEventStore(url)])
    try:
        tell_the_story()
        configure(emitters=[])
        if args.check:
            return check(url)
        extra = ["--open"] if args.open else []
        server = subprocess.Popen(ui_command(url, args.port, *extra))
        try:
            return server.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the server too: it stops
            return server.wait(30)
    finally:
        configure()
        home.cleanup()


if __name__ == "__main__":
    sys.exit(main())
