"""The web page in a real browser: Debian's Chromium, headless, driven by Playwright.

The app is the real one (``blocks._ui.create_app``), served by uvicorn on a free
loopback port in a thread, over a SQLite event store that ``examples/s3_story.py``
filled (run as the example tests run it, with its own moto server). Playwright
drives the system's Chromium and never downloads a browser. Without Chromium or
Playwright the tests skip, saying why; when ``CI=true`` they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from blocks import Block
from emitters import (
    configure,
    current_run,
    emit_event,
    flow_run,
    flush,
    observed_event_id,
    related_runs,
    task_run,
)
from emitters.sql import SQLEventStore

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    expect = sync_playwright = None  # the browser fixture says what is missing

ROOT = Path(__file__).resolve().parents[2]
S3_STORY = ROOT / "examples" / "s3_story.py"
NO_SUCH_KEY = "botocore.errorfactory.NoSuchKey"
SCROLLER = "document.querySelector('#timeline .chart-scroll')"
MARKUP = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'

# Records what the page reports of itself: CSP violations the browser saw.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def _unavailable(reason: str) -> None:
    """Skip, or fail when CI=true: CI installs Chromium and Playwright."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _chromium() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        _unavailable(
            "Debian's chromium is not installed (apt-get install -y chromium); "
            "the browser tests use it headless"
        )
    return found


@dataclass
class Story:
    """The store the s3 story filled, and the runs it told."""

    url: str
    good: str
    bad: str


@dataclass
class Served:
    """The app on a loopback port."""

    base: str
    story: Story


@dataclass
class Watched:
    """A page, with the console errors and page errors it produced."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def clean(self) -> None:
        """Assert that nothing went wrong inside the page."""
        csp = self.page.evaluate("window.__csp")
        assert csp == [], csp
        assert self.errors == []


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    """Run examples/s3_story.py with its events (and documents) in a SQLite file."""
    folder = tmp_path_factory.mktemp("ui-store")
    url = f"sqlite:///{folder / 'events.db'}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EVENTBLOCKS_", "PREFECT_", "AIRFLOW_CTX_"))
    }
    env["EVENTBLOCKS_DATABASE_URL"] = url
    result = subprocess.run(
        [sys.executable, str(S3_STORY)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    bad = re.search(r"Timeline of the failing run (\S+):", result.stdout)
    good = re.search(r"daily-orders (\S+): 4 calls, no failure", result.stdout)
    assert bad, result.stdout
    assert good, result.stdout
    return Story(url=url, good=good.group(1), bad=bad.group(1))


@pytest.fixture(scope="module")
def served(story: Story) -> Iterator[Served]:
    """Serve the real app over the story's store with uvicorn, in a thread."""
    import uvicorn

    from blocks._ui import create_app

    app = create_app(SQLEventStore(story.url, read_only=True))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped before it started serving"
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.02)
    try:
        yield Served(base=f"http://127.0.0.1:{port}/", story=story)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (no browser download)."""
    executable = _chromium()
    if sync_playwright is None:
        _unavailable("playwright is not installed (pip install 'eventblocks[dev]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Watched]:
    """A fresh 1280x800 page that records its console errors and page errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    watched = Watched(page)
    page.add_init_script(WATCH_CSP)
    page.on(
        "console",
        lambda message: (
            watched.errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: watched.errors.append(str(error)))
    try:
        yield watched
    finally:
        context.close()


def write_run(url: str, name: str, body: Any) -> str:
    """Run ``body()`` in a flow run named ``name``, into the store at ``url``;
    return the run's id once its events are stored."""
    configure(emitters=[SQLEventStore(url)])
    with flow_run(name) as run:
        body()
    assert flush(30)
    configure(emitters=[])
    return run.id


class Prober(Block):
    """A block whose failures carry whatever message it is given."""

    def touch(self, number: int) -> int:
        """Return ``number``."""
        return number

    def fail(self, message: str) -> None:
        """Raise ValueError(message)."""
        raise ValueError(message)


def test_runs_list_shows_the_failed_run(served: Served, page: Watched) -> None:
    """The landing page lists the story's runs, the failed one marked failed, with
    its first failure as block.method: ErrorType."""
    page.page.goto(served.base)
    bad = page.page.locator(f'tr.run.failed[data-run-id="{served.story.bad}"]')
    bad.wait_for()
    first = bad.locator("td.first-failure").inner_text()
    assert first == f"s3-bucket/shop.read_path: {NO_SUCH_KEY}"
    good = page.page.locator(f'#runs-table tr.run[data-run-id="{served.story.good}"]')
    assert "failed" not in (good.get_attribute("class") or "")
    assert good.locator("td.first-failure").inner_text() == ""
    page.page.locator("#filter-name").fill("nothing-*")
    expect(page.page.locator("#runs-table tr.run")).to_have_count(0)
    expect(page.page.locator("#runs-table")).to_contain_text("No run matches")
    page.page.locator("#filter-name").fill("daily-*")
    expect(page.page.locator("#runs-table tr.run")).to_have_count(2)
    page.page.locator("#filter-since").select_option("1h")
    expect(page.page.locator("#runs-table tr.run")).to_have_count(2)
    page.page.locator("#filter-failed").check()
    expect(page.page.locator("#runs-table tr.run:not(.failed)")).to_have_count(0)
    expect(bad).to_be_visible()
    assert page.page.url.endswith("#/?name=daily-*&failed=true&since=1h")
    page.clean()


def test_run_view_shows_the_first_failure_and_the_missing_key(
    served: Served, page: Watched
) -> None:
    """The failed run's view names read_path's NoSuchKey as its first failure; on
    a click the detail panel shows the missing key; hovering shows the duration;
    the block's name leads to its view."""
    p = page.page
    p.goto(served.base)
    p.locator(f'tr.run[data-run-id="{served.story.bad}"] a').click()
    first = p.locator("#first-failure")
    first.wait_for()
    assert first.inner_text() == f"s3-bucket/shop.read_path: {NO_SUCH_KEY}"
    detail = p.locator("#call-detail")
    assert "orders/2024-06-02.csv" not in detail.inner_text()
    first.click()
    expect(detail).to_contain_text('"key"')
    shown = detail.inner_text()
    assert "orders/2024-06-02.csv" in shown
    assert NO_SUCH_KEY in shown
    assert "block.s3-bucket.read_path.failed" in shown

    box = p.locator("#first-failure-mark").bounding_box()
    assert box is not None
    p.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tip = p.locator("#tooltip")
    tip.wait_for(state="visible")
    assert "s3-bucket/shop.read_path" in tip.inner_text()
    assert re.search(r"\d ms · failed", tip.inner_text())

    p.locator('#timeline a[href="#/blocks/s3-bucket/shop"]').click()
    p.locator(f'#block-runs tr.block-run[data-run-id="{served.story.bad}"]').wait_for()
    page.clean()


def test_block_view_lists_the_run(served: Served, page: Watched) -> None:
    """The S3 bucket's view lists both runs, the failed one with its error, and
    says since when the block fails; the blocks list leads there."""
    p = page.page
    p.goto(served.base + "#/blocks")
    p.locator('#blocks-table a[href="#/blocks/s3-bucket/shop"]').click()
    bad = p.locator(f'#block-runs tr.block-run[data-run-id="{served.story.bad}"]')
    bad.wait_for()
    assert "failed" in (bad.get_attribute("class") or "")
    assert bad.locator("td.failures").inner_text() == "1"
    assert bad.locator("td.error").inner_text() == NO_SUCH_KEY
    good = p.locator(f'#block-runs tr.block-run[data-run-id="{served.story.good}"]')
    assert good.locator("td.failures").inner_text() == "0"
    assert p.locator("#failing-since .value").inner_text() != "not failing"
    assert p.locator("#failed-runs-since .value").inner_text() == "1"
    assert "NoSuchKey" in p.locator("#last-error").inner_text()
    bad.locator("a").click()
    p.locator("#first-failure").wait_for()
    assert p.url.endswith(f"#/runs/{served.story.bad}")
    page.clean()


def test_markup_in_stored_text_is_shown_as_text(served: Served, page: Watched) -> None:
    """A run name and an error message holding a script and an onerror handler
    show as text in every view, and nothing of them runs."""
    prober = Prober()

    def body() -> None:
        with pytest.raises(ValueError, match="__pwned"):
            prober.fail(MARKUP)

    run_id = write_run(served.story.url, MARKUP, body)
    p = page.page
    p.goto(served.base)
    row = p.locator(f'tr.run[data-run-id="{run_id}"]')
    row.wait_for()
    assert row.locator("td").first.inner_text() == MARKUP

    row.locator("a").click()
    p.locator("#first-failure").click()
    detail = p.locator("#call-detail")
    expect(detail).to_contain_text("Payload")
    assert MARKUP in detail.inner_text()
    assert p.locator("h1").inner_text() == MARKUP
    assert p.locator("#call-detail img, #call-detail script, h1 *").count() == 0

    p.goto(served.base + "#/blocks/prober")
    p.locator(f'tr.block-run[data-run-id="{run_id}"]').wait_for()
    assert MARKUP in p.locator("#last-error").inner_text()
    assert p.locator("#last-error img, #last-error script").count() == 0
    assert p.evaluate("typeof window.__pwned") == "undefined"
    page.clean()


# Event names are dotted: a method's markup has no dot.
METHOD_MARKUP = "<b>m</b><img src=x onerror=__pwned=3>"


def test_markup_in_every_field_is_shown_as_text(served: Served, page: Watched) -> None:
    """Markup in a run's labels, a document's name, a method, an error's type and
    message, payload keys and values, a task run's name and an infrastructure
    resource and reason: shown as text in the runs list, the run view, a call's
    and an infrastructure event's detail, the tooltip, the block view and the
    blocks list; no element is made of it and nothing runs."""
    resource = {
        "id": "block-document.00000000-0000-4000-8000-00000000ba5e",
        "name": MARKUP,
        "labels": {"block-type": "prober"},
    }

    def body() -> None:
        run = current_run()
        assert run is not None
        emit_event(
            "infra.kubernetes.pod.evicted",
            {"id": "kubernetes-pod.0bad", "name": MARKUP},
            related=related_runs({"eventblocks.io/flow-run-id": run.id}),
            payload={"reason": MARKUP, MARKUP: MARKUP},
            id=observed_event_id("kubernetes", "0bad", run.id),
            occurred=datetime.now(UTC),
            context=False,
        )
        time.sleep(0.01)
        with task_run(MARKUP):
            started = emit_event(
                f"block.prober.{METHOD_MARKUP}.started", resource, payload={}
            )
            emit_event(
                f"block.prober.{METHOD_MARKUP}.failed",
                resource,
                payload={
                    "duration_ms": 1.0,
                    "error": {"type": MARKUP, "message": MARKUP},
                    MARKUP: [MARKUP],
                },
                follows=started.id,
            )

    configure(emitters=[SQLEventStore(served.story.url)])
    with flow_run(MARKUP, labels={MARKUP: MARKUP}) as run:
        body()
    assert flush(30)
    configure(emitters=[])
    block = f"prober/{MARKUP}"
    p = page.page
    p.goto(served.base)
    row = p.locator(f'tr.run[data-run-id="{run.id}"]')
    row.wait_for()
    assert MARKUP in row.inner_text()
    assert f"{MARKUP}={MARKUP}" in row.inner_text()  # the labels
    assert row.locator("td.first-failure").inner_text() == f"{MARKUP}.evicted: evicted"
    assert row.locator("img, script, b").count() == 0

    row.locator("a").first.click()
    first = p.locator("#first-failure")
    first.wait_for()
    assert first.inner_text() == f"{MARKUP}: evicted ({MARKUP})"  # the summary
    assert f"{MARKUP}={MARKUP}" in p.locator("#app").inner_text()
    first.click()
    detail = p.locator("#call-detail")
    expect(detail).to_contain_text("infra.kubernetes.pod.evicted")
    expect(detail).to_contain_text("Payload")
    assert detail.inner_text().count(MARKUP) >= 3  # resource, reason, payload key
    p.get_by_role("button", name="failure ▶").click()
    expect(detail).to_contain_text(f"{block}.{METHOD_MARKUP}")
    expect(detail).to_contain_text("Payload")
    shown = detail.inner_text()
    assert f"task run\n{MARKUP}" in shown or f"task run\t{MARKUP}" in shown
    assert shown.count(MARKUP) >= 5  # block, task, type, message, payload
    labels = " ".join(p.locator("#timeline .row-label").all_inner_texts())
    assert block in labels
    assert MARKUP in labels  # the task run's row
    box = p.locator("#first-failure-mark").bounding_box()
    assert box is not None
    p.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(p.locator("#tooltip")).to_contain_text(f"{MARKUP}: evicted")
    assert p.locator("#app img, #app script, #tooltip *").count() == 0

    p.locator("#timeline").get_by_role("link", name=block, exact=True).first.click()
    p.locator(f'tr.block-run[data-run-id="{run.id}"]').wait_for()
    assert p.locator("h1").inner_text() == block
    assert MARKUP in p.locator("#last-error").inner_text()
    p.goto(served.base + "#/blocks")
    p.locator("#blocks-table").get_by_text(block, exact=True).wait_for()
    assert p.locator("#app img, #app script").count() == 0
    assert p.evaluate("typeof window.__pwned") == "undefined"
    page.clean()


def test_new_runs_appear_without_a_reload(served: Served, page: Watched) -> None:
    """A run written while the runs list is open shows up in it on its own."""
    p = page.page
    p.goto(served.base)
    p.locator(f'tr.run[data-run-id="{served.story.bad}"]').wait_for()
    p.evaluate("window.__same_page = true")
    prober = Prober()
    run_id = write_run(served.story.url, "arrives-later", lambda: prober.touch(1))
    p.locator(f'tr.run[data-run-id="{run_id}"]').wait_for(timeout=20_000)
    assert p.evaluate("window.__same_page") is True
    # the latest run comes first
    assert p.locator("#runs-table tr.run").first.get_attribute("data-run-id") == run_id
    page.clean()


def test_an_unknown_run_says_so(served: Served, page: Watched) -> None:
    """A run reference that matches nothing shows the API's error, as text."""
    p = page.page
    p.goto(served.base + "#/runs/no-such-run")
    banner = p.locator(".error-banner")
    banner.wait_for()
    assert "no-such-run" in banner.inner_text()
    # the browser reports the 404 answer itself as a console error: that one only
    assert all("404" in error for error in page.errors), page.errors


def test_a_run_of_10000_calls_renders_with_its_first_failure_in_view(
    served: Served, page: Watched
) -> None:
    """A run of 10,000 calls opens with its first failure (call 7,001) scrolled
    into view and marked, drawing only the calls in view; zooming out to the
    whole run keeps it drawable."""
    prober = Prober()

    def body() -> None:
        for number in range(10_000):
            if number == 7_000:
                with pytest.raises(ValueError, match="7001"):
                    prober.fail("call 7001 of 10000")
            else:
                prober.touch(number)

    run_id = write_run(served.story.url, "ten-thousand", body)
    p = page.page
    p.goto(served.base + f"#/runs/{run_id}")
    first = p.locator("#first-failure")
    first.wait_for(timeout=30_000)
    assert first.inner_text() == "prober.fail: ValueError"
    mark = p.locator("#first-failure-mark").bounding_box()
    view = p.locator("#timeline .chart-scroll").bounding_box()
    assert mark is not None
    assert view is not None
    # the bar's start is in view (a slow call's bar may reach beyond the right edge)
    start = mark["x"] + 4  # the mark's border stands 4 px off the bar
    assert view["x"] <= start <= view["x"] + view["width"]
    assert view["y"] <= mark["y"]
    assert mark["y"] + mark["height"] <= view["y"] + view["height"]
    assert p.evaluate(f"{SCROLLER}.scrollLeft") > 0
    drawn = int(p.locator("#timeline").get_attribute("data-drawn") or "0")
    assert 0 < drawn < 10_000

    p.get_by_role("button", name="Fit").click()
    assert p.evaluate(f"{SCROLLER}.scrollLeft") == 0
    first.click()
    expect(p.locator("#call-detail")).to_contain_text("call 7001 of 10000")
    page.clean()


def test_infrastructure_and_task_runs_have_their_lanes(
    served: Served, page: Watched
) -> None:
    """A pod evicted mid-run is a marker in the infrastructure lane and, coming
    before the failed call, the run's first failure; task runs get their row."""
    prober = Prober()

    def body() -> None:
        run = current_run()
        assert run is not None
        with task_run("extract"):
            prober.touch(1)
        time.sleep(0.01)
        emit_event(
            "infra.kubernetes.pod.evicted",
            {"id": "kubernetes-pod.9f1c", "name": "etl/loader-7d9"},
            related=related_runs({"eventblocks.io/flow-run-id": run.id}),
            payload={"reason": "Evicted"},
            id=observed_event_id("kubernetes", "9f1c", "evicted"),
            occurred=datetime.now(UTC),
            context=False,
        )
        time.sleep(0.01)
        with task_run("load"), pytest.raises(ValueError, match="pod is gone"):
            prober.fail("the pod is gone")

    run_id = write_run(served.story.url, "evicted", body)
    p = page.page
    p.goto(served.base + f"#/runs/{run_id}")
    first = p.locator("#first-failure")
    first.wait_for()
    assert first.inner_text() == "etl/loader-7d9: evicted"
    labels = p.locator("#timeline .row-label").all_inner_texts()
    assert [label.split()[0] for label in labels] == [
        "task",
        "infrastructure",
        "prober",
    ]
    box = p.locator("#first-failure-mark").bounding_box()
    assert box is not None
    p.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(p.locator("#tooltip")).to_contain_text("infra.kubernetes.pod.evicted")
    p.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(p.locator("#call-detail")).to_contain_text('"reason": "Evicted"')
    page.clean()
