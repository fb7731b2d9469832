"""Remake the web page's screenshots (docs/images/ui-*.png) from real runs.

Run it from the repository root::

    python docs/images/make_screenshots.py

It runs two example stories with their events and documents in one temporary
SQLite store: ``examples/s3_story.py`` (a flow whose second run fails on a missing
S3 key; it starts moto's server itself) and ``examples/expired_credentials.py``
(database credentials that stop working after three nights; it needs a PostgreSQL
server where it may create a role, ``EVENTBLOCKS_TEST_POSTGRES_URL``, by default
the local one). Then it serves the page over that store with ``eventblocks ui`` on
a free loopback port and photographs each view at 1280x800 in headless Chromium,
driven by Playwright:

- ``ui-runs.png``: the runs list, both stories' runs, the failed ones marked;
- ``ui-run.png``: the failed S3 run's timeline, its first failure clicked open;
- ``ui-block.png``: the database credentials' view: failing since, failed runs;
- ``ui-blocks.png``: the blocks list.

Needs the ``dev`` extra (moto's server, the ``ui`` extra, Playwright) and a
Chromium: Debian's ``chromium`` package, or the browser named by ``CHROMIUM``.
Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
VIEWPORT = {"width": 1280, "height": 800}


def run_story(script: str, url: str) -> str:
    """Run an example with its events and documents in the store at ``url``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key.startswith("EVENTBLOCKS_TEST_") or not key.startswith("EVENTBLOCKS_")
    }
    env["EVENTBLOCKS_DATABASE_URL"] = url
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"{script} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(url: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``eventblocks ui`` over ``url``; return it and the page's address."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen(
        [sys.executable, "-m", "blocks", "ui", "--database", url, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base, timeout=5)
            return server, base
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit("eventblocks ui did not start")
            time.sleep(0.1)


def shoot(page: Page, name: str) -> None:
    """Save the page as docs/images/<name>, the pointer out of the way."""
    page.mouse.move(0, VIEWPORT["height"] - 1)
    page.wait_for_timeout(300)  # let the last canvas frame be drawn
    page.screenshot(path=str(IMAGES / name))
    print(f"wrote docs/images/{name}")


def main() -> int:
    """Tell both stories, serve them, and photograph each view."""
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not chromium:
        sys.exit("No Chromium: apt-get install chromium, or set CHROMIUM to one.")
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'events.db'}"
        s3 = run_story("s3_story.py", url)
        bad = re.search(r"Timeline of the failing run (\S+):", s3)
        if bad is None:
            sys.exit(f"The s3 story named no failing run:\n{s3}")
        expired = run_story("expired_credentials.py", url)
        if "First failure: nightly-load #4" not in expired:
            sys.exit(f"The expired-credentials story did not run:\n{expired}")

        server, base = serve(url)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=chromium, args=["--no-sandbox"]
                )
                page = browser.new_page(viewport=VIEWPORT)

                page.goto(base)
                expect(page.locator("#runs-table tr.run")).to_have_count(7)
                shoot(page, "ui-runs.png")

                page.goto(base + f"#/runs/{bad.group(1)}")
                page.locator("#first-failure").click()
                expect(page.locator("#call-detail")).to_contain_text("Payload")
                shoot(page, "ui-run.png")

                page.goto(base + "#/blocks/database-credentials/warehouse")
                expect(page.locator("#block-runs tr.block-run")).to_have_count(5)
                shoot(page, "ui-block.png")

                page.goto(base + "#/blocks")
                page.locator("#blocks-table tr.block-row").first.wait_for()
                shoot(page, "ui-blocks.png")
                browser.close()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
