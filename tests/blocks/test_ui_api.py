"""The web page's JSON API, through the real ASGI app, over a store that real
block calls filled: every route, its filters and errors, read-only (nothing
written, not even on SQLite's file), no secret, security headers; on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from blocks import Block
from blocks._documents.store import DocumentStore
from blocks._ui import LOOPBACK_HOSTS, create_app
from blocks.system import Secret
from emitters import (
    configure,
    emit_event,
    flow_run,
    flush,
    observed_event_id,
    related_runs,
    task_run,
)
from emitters.sql import SQLEventStore

SECRET = "pw-7f3a9c-never-shown"
TOKEN = "tok-51e2b8-never-shown"
SCRIPT = "<script>alert('x')</script>"
# Two runs whose ids share their first 8 characters: "abcdef01" is ambiguous.
TWIN_A = "abcdef01-0000-4000-8000-00000000000a"
TWIN_B = "abcdef01-0000-4000-8000-00000000000b"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class UiLogin(Block):
    """Credentials that a shelf uses (a nested saved block)."""

    password: SecretStr

    def check(self) -> bool:
        return True


class UiShelf(Block):
    """A block whose reads call its login, and fail on some keys."""

    login: UiLogin
    label: str = "main"

    def read(self, key: str) -> str:
        self.login.check()
        if key == "missing":
            raise KeyError(SCRIPT)
        if key == "denied":
            # The message holds the password: the store gets it masked.
            raise PermissionError(
                f"login refused with {self.login.password.get_secret_value()}"
            )
        return key


@dataclass
class Story:
    """What the story stored, and where."""

    url: str
    ok: str
    bad: str
    prefect: str
    database: Path | None


def _pod(run_id: str, phase: str, at: datetime) -> None:
    """A pod change, emitted as the Kubernetes observer emits it."""
    emit_event(
        f"infra.kubernetes.pod.{phase}",
        {"id": "kubernetes-pod.9f1c", "name": "etl/loader-7d9"},
        related=related_runs({"eventblocks.io/flow-run-id": run_id}),
        payload={"phase": phase, "reason": phase.capitalize()},
        id=observed_event_id("kubernetes", "9f1c", phase),
        occurred=at,
        context=False,
    )


def _lost(run_related: Any, lost: int) -> None:
    """A loss record, as the pipeline hands it to the sinks."""
    emit_event(
        "pipeline.events-lost",
        {"id": "eventblocks.pipeline", "name": "eventblocks pipeline"},
        related=[run_related],
        payload={"lost": lost, "failures": 0, "setting": "max_buffer_bytes"},
        context=False,
    )


def _tell(url: str, database: Path | None) -> Story:
    """Run the story's flows with the store at ``url`` as the only sink."""
    writer = SQLEventStore(url)
    configure(emitters=[writer])
    UiLogin(password=SecretStr(SECRET)).save("prod", overwrite=True)
    UiShelf(login=UiLogin.load("prod")).save("books", overwrite=True)
    Secret(value=SecretStr(TOKEN)).save("api-token", overwrite=True)
    UiLogin(password=SecretStr(SECRET)).save("unused", overwrite=True)
    shelf = UiShelf.load("books")
    token = Secret.load("api-token")
    with flow_run("nightly-etl", labels={"team": "data"}) as run:
        with task_run("extract"):
            shelf.read("a")
            token.get()
        shelf.read("b")
    ok = run.id
    with flow_run("nightly-etl", labels={"team": "data"}) as run:
        with task_run("load"):
            shelf.read("c")
            _pod(run.id, "running", datetime.now(UTC))
            with contextlib.suppress(KeyError):
                shelf.read("missing")
            with contextlib.suppress(PermissionError):
                shelf.read("denied")
        _pod(run.id, "evicted", datetime.now(UTC))
        _lost(run.related, 3)
    bad = run.id
    with flow_run("twin", id=TWIN_A):
        UiShelf(login=UiLogin(password=SecretStr(SECRET))).read("x")
    with flow_run("twin", id=TWIN_B):
        shelf.read("y")
    prefect = "3f2b8c1e-9d4a-4c55-8e21-7a6b5c4d3e2f"
    from emitters import Run, RunContext, register_run_context_provider

    class FromPrefect:
        def current_run_context(self) -> RunContext:
            return RunContext(Run(prefect, "orders-flow", source="prefect"))

    remove = register_run_context_provider(FromPrefect())
    shelf.read("p")
    remove()
    assert flush(30)
    configure(emitters=[])
    return Story(url=url, ok=ok, bad=bad, prefect=prefect, database=database)


@pytest.fixture(params=["sqlite", "postgresql"])
def story(request: pytest.FixtureRequest, tmp_path: Path) -> Story:
    """The story, told into a SQLite file or this run's PostgreSQL database."""
    if request.param == "sqlite":
        database = tmp_path / "events.db"
        return _tell(f"sqlite:///{database}", database)
    return _tell(request.getfixturevalue("postgres_url"), None)


@pytest.fixture
async def api(story: Story) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app over the story's store, opened read-only."""
    app = create_app(
        SQLEventStore(story.url, read_only=True), documents=DocumentStore()
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
        yield client


async def _json(api: httpx.AsyncClient, path: str, status: int = 200) -> Any:
    response = await api.get(path)
    assert response.status_code == status, (path, response.text)
    assert response.headers["content-type"] == "application/json"
    return response.json()


async def test_runs_list_the_latest_first_with_every_field(
    api: httpx.AsyncClient, story: Story
) -> None:
    """GET /api/runs: the runs, latest first, each with its counts and its first
    failure; the failed run counts its lost events and infrastructure events."""
    body = await _json(api, "/api/runs")
    runs = body["runs"]
    assert body["total_shown"] == len(runs) == 5
    assert [r["id"] for r in runs][-2:] == [story.bad, story.ok]
    started = [r["started"] for r in runs]
    assert started == sorted(started, reverse=True)
    by_id = {r["id"]: r for r in runs}
    bad = by_id[story.bad]
    assert set(bad) == {
        "id", "short_id", "name", "source", "labels", "started", "last_event",
        "duration_ms", "calls", "failures", "events_lost", "infrastructure_events",
        "first_failure",
    }  # fmt: skip
    assert bad["name"] == "nightly-etl"
    assert bad["source"] == "eventblocks"
    assert bad["labels"] == {"team": "data"}
    assert bad["short_id"] == uuid.UUID(story.bad).hex[-8:]
    assert bad["started"].endswith("Z")
    assert isinstance(bad["duration_ms"], float)
    assert bad["duration_ms"] >= 0
    # 3 reads (each with its login's check) in the task run.
    assert (bad["calls"], bad["events_lost"], bad["infrastructure_events"]) == (6, 3, 2)
    # Two failed reads and the eviction.
    assert bad["failures"] == 3
    assert bad["first_failure"] == {
        "block": "ui-shelf/books",
        "method": "read",
        "error_type": "KeyError",
        "occurred": bad["first_failure"]["occurred"],
        "event_id": None,
    }
    ok = by_id[story.ok]
    assert (ok["calls"], ok["failures"], ok["first_failure"]) == (5, 0, None)
    assert by_id[story.prefect]["source"] == "prefect"


async def test_runs_filters_and_their_errors(
    api: httpx.AsyncClient, story: Story
) -> None:
    """Each filter of GET /api/runs narrows the list; a malformed value is a 400
    that names the parameter."""

    async def ids(query: str) -> list[str]:
        return [r["id"] for r in (await _json(api, f"/api/runs?{query}"))["runs"]]

    assert await ids("failed=true") == [story.bad]
    assert story.bad not in await ids("failed=false")
    assert set(await ids("name=nightly-*")) == {story.ok, story.bad}
    assert set(await ids("name=night?y-etl&failed=true")) == {story.bad}
    assert await ids("source=prefect") == [story.prefect]
    assert len(await ids("since=1h")) == 5
    assert await ids("until=2000-01-01T00:00:00Z") == []
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert len(await ids(f"until={future.replace('+', '%2B')}")) == 5
    assert await ids(f"since={future.replace('+00:00', '')}") == []
    limited = await _json(api, "/api/runs?limit=2")
    assert limited["total_shown"] == len(limited["runs"]) == 2
    for query, message in [
        ("since=x", "since: expected a duration like 15m or an ISO time, got 'x'"),
        (
            "until=soon",
            "until: expected a duration like 15m or an ISO time, got 'soon'",
        ),
        ("limit=0", "limit: expected a whole number from 1 to 500, got '0'"),
        ("limit=501", "limit: expected a whole number from 1 to 500, got '501'"),
        ("limit=ten", "limit: expected a whole number from 1 to 500, got 'ten'"),
        ("failed=maybe", "failed: expected true or false, got 'maybe'"),
        ("name=", "name: expected a non-empty value, got ''"),
    ]:
        assert await _json(api, f"/api/runs?{query}", 400) == {"error": message}


async def test_a_run_by_each_form_of_its_reference(
    api: httpx.AsyncClient, story: Story
) -> None:
    """GET /api/runs/{ref}: the full id, a prefix, the short id and the name find
    the run; its first failure's event id is the failed call's in the timeline."""
    short = uuid.UUID(story.bad).hex[-8:]
    prefix = story.bad[:-4]  # runs of one millisecond share 13 characters
    for ref in (
        story.bad,
        prefix,
        short,
        "nightly-etl",
        f"flow-run.{story.bad}",
    ):
        run = (await _json(api, f"/api/runs/{ref}"))["run"]
        assert run["id"] == story.bad, ref
    run = (await _json(api, f"/api/runs/{story.bad}"))["run"]
    timeline = await _json(api, f"/api/runs/{story.bad}/timeline")
    assert run["first_failure"]["event_id"] == timeline["first_failure"]
    assert timeline["run"] == run
    ok = (await _json(api, f"/api/runs/{story.ok}"))["run"]
    assert ok["first_failure"] is None


async def test_unknown_and_ambiguous_runs_are_404_with_candidates(
    api: httpx.AsyncClient, story: Story
) -> None:
    """An id prefix of two runs names both; an unknown ref names close names or
    the latest runs; a misspelt name, the run of the close name."""
    body = await _json(api, "/api/runs/abcdef01", 404)
    assert "ambiguous" in body["error"]
    assert {c["id"] for c in body["candidates"]} == {TWIN_A, TWIN_B}
    assert set(body["candidates"][0]) == {"id", "short_id", "name", "started"}
    body = await _json(api, "/api/runs/abcdef01/timeline", 404)
    assert {c["id"] for c in body["candidates"]} == {TWIN_A, TWIN_B}
    body = await _json(api, "/api/runs/nightly-etk", 404)
    assert "Did you mean 'nightly-etl'" in body["error"]
    assert [c["id"] for c in body["candidates"]] == [story.bad]
    body = await _json(api, "/api/runs/zzzzzzzzzz", 404)
    assert body["error"].startswith("No run matches 'zzzzzzzzzz'")
    assert len(body["candidates"]) == 5


async def test_the_timeline_of_a_failed_run(
    api: httpx.AsyncClient, story: Story
) -> None:
    """GET /api/runs/{ref}/timeline: calls in start order, nested calls naming
    their caller, the task band, the infrastructure lane, the first failure."""
    body = await _json(api, f"/api/runs/{story.bad}/timeline")
    calls = body["calls"]
    assert [(c["block"], c["method"], c["outcome"]) for c in calls] == [
        ("ui-shelf/books", "read", "succeeded"),
        ("ui-login/prod", "check", "succeeded"),
        ("ui-shelf/books", "read", "failed"),
        ("ui-login/prod", "check", "succeeded"),
        ("ui-shelf/books", "read", "failed"),
        ("ui-login/prod", "check", "succeeded"),
    ]
    starts = [c["started"] for c in calls]
    assert starts == sorted(starts)
    for outer, inner in ((0, 1), (2, 3), (4, 5)):
        assert calls[inner]["caller"] == calls[outer]["event_id"]
        assert calls[outer]["caller"] is None
    failed = calls[2]
    assert failed["error_type"] == "KeyError"
    assert failed["error_message"] == repr(SCRIPT)
    assert failed["duration_ms"] >= 0
    assert calls[4]["error_type"] == "PermissionError"
    assert calls[4]["error_message"] == "login refused with **********"
    assert {c["task_run_name"] for c in calls} == {"load"}
    assert body["first_failure"] == failed["event_id"]
    [task] = body["tasks"]
    assert task["name"] == "load"
    assert task["id"] == calls[0]["task_run_id"]
    assert task["started"] == calls[0]["started"]
    assert task["ended"] >= calls[-1]["started"]
    infra = body["infrastructure"]
    assert [(i["event"], i["failure"]) for i in infra] == [
        ("infra.kubernetes.pod.running", False),
        ("infra.kubernetes.pod.evicted", True),
    ]
    assert infra[1]["resource"] == "kubernetes-pod.9f1c"
    assert infra[1]["summary"] == "etl/loader-7d9: evicted"
    ok = await _json(api, f"/api/runs/{story.ok}/timeline")
    assert ok["first_failure"] is None
    assert ok["infrastructure"] == []
    assert [t["name"] for t in ok["tasks"]] == ["extract"]
    assert [c["task_run_name"] for c in ok["calls"]][-2:] == [None, None]


async def test_an_event_and_its_outcome(api: httpx.AsyncClient, story: Story) -> None:
    """GET /api/events/{id}: a call's started event comes with its outcome, whose
    payload holds the error; an outcome alone; 404 unknown, 400 not a UUID."""
    timeline = await _json(api, f"/api/runs/{story.bad}/timeline")
    failed = timeline["calls"][2]
    body = await _json(api, f"/api/events/{failed['event_id']}")
    started, outcome = body["event"], body["outcome"]
    assert set(started) == {
        "id", "occurred", "event", "resource", "related", "payload", "follows",
    }  # fmt: skip
    assert started["event"] == "block.ui-shelf.read.started"
    assert started["resource"]["name"] == "books"
    assert outcome["id"] == failed["outcome_event_id"]
    assert outcome["follows"] == failed["event_id"]
    assert outcome["payload"]["error"] == {
        "type": "KeyError",
        "message": repr(SCRIPT),
    }
    roles = {r["role"] for r in started["related"]}
    assert {"flow-run", "task-run", "block-type", "nested-block"} <= roles
    alone = await _json(api, f"/api/events/{failed['outcome_event_id']}")
    assert alone["outcome"] is None
    assert alone["event"]["event"] == "block.ui-shelf.read.failed"
    infra = timeline["infrastructure"][1]
    pod = await _json(api, f"/api/events/{infra['event_id']}")
    assert pod["event"]["payload"]["reason"] == "Evicted"
    unknown = uuid.uuid4()
    body = await _json(api, f"/api/events/{unknown}", 404)
    assert body == {"error": f"No event with id '{unknown}' is stored."}
    body = await _json(api, "/api/events/not-an-id", 400)
    assert body == {"error": "event_id: expected an event's UUID, got 'not-an-id'"}


async def test_blocks_seen_in_events_and_saved_documents(
    api: httpx.AsyncClient,
) -> None:
    """GET /api/blocks: every block used, with runs and failures, the unsaved
    ones under their slug, and saved documents never used."""
    blocks = {b["block"]: b for b in (await _json(api, "/api/blocks"))["blocks"]}
    shelf = blocks["ui-shelf/books"]
    assert shelf == {
        "block": "ui-shelf/books",
        "type": "ui-shelf",
        "saved": True,
        "runs": 4,
        "calls": 7,
        "failures": 2,
        "last_used": shelf["last_used"],
    }
    # The login counts its own checks and the shelf's calls that hold it.
    assert blocks["ui-login/prod"]["runs"] == 4
    assert blocks["ui-login/prod"]["failures"] == 2
    assert blocks["ui-shelf"]["saved"] is False
    assert blocks["ui-shelf"]["runs"] == 1
    assert blocks["secret/api-token"]["runs"] == 1
    assert blocks["ui-login/unused"] == {
        "block": "ui-login/unused",
        "type": "ui-login",
        "saved": True,
        "runs": 0,
        "calls": 0,
        "failures": 0,
        "last_used": None,
    }
    assert list(blocks) == sorted(blocks)


async def test_a_blocks_runs_and_when_it_started_failing(
    api: httpx.AsyncClient, story: Story
) -> None:
    """GET /api/blocks/{slug}/{name}/runs: its runs latest first, the failing
    streak and the last error; the bare slug covers the type; errors are 400."""
    body = await _json(api, "/api/blocks/ui-shelf/books/runs")
    assert body["block"] == "ui-shelf/books"
    runs = body["runs"]
    assert [r["flow_run_id"] for r in runs] == [
        story.prefect,
        TWIN_B,
        story.bad,
        story.ok,
    ]
    bad = runs[2]
    assert bad == {
        "flow_run_id": story.bad,
        "flow_run_name": "nightly-etl",
        "first_used": bad["first_used"],
        "last_used": bad["last_used"],
        "calls": 3,
        "failures": 2,
        "last_error_type": "PermissionError",
    }
    # Runs after the failed one used it without failing: no streak now.
    assert (body["failing_since"], body["failed_runs_since"]) == (None, 0)
    assert body["last_error"] == {
        "type": "PermissionError",
        "message": "login refused with **********",
        "occurred": body["last_error"]["occurred"],
        "flow_run_id": story.bad,
    }
    typed = await _json(api, "/api/blocks/ui-shelf/runs")
    assert typed["block"] == "ui-shelf"
    assert {r["flow_run_id"] for r in typed["runs"]} == {
        story.prefect, TWIN_A, TWIN_B, story.bad, story.ok,
    }  # fmt: skip
    unused = await _json(api, "/api/blocks/ui-login/unused/runs")
    assert unused == {
        "block": "ui-login/unused",
        "runs": [],
        "failing_since": None,
        "failed_runs_since": 0,
        "last_error": None,
    }
    body = await _json(api, "/api/blocks/UI_Shelf/books/runs", 400)
    assert "block must be 'block-type/name'" in body["error"]


async def test_a_block_failing_since_its_first_failure(tmp_path: Path) -> None:
    """The streak starts at the first failure after the last run without one and
    counts the failed runs since."""
    url = f"sqlite:///{tmp_path / 'streak.db'}"
    configure(emitters=[SQLEventStore(url)])
    UiLogin(password=SecretStr(SECRET)).save("prod", overwrite=True)
    UiShelf(login=UiLogin.load("prod")).save("books", overwrite=True)
    shelf = UiShelf.load("books")
    with flow_run("night-0"):
        shelf.read("a")
    with flow_run("night-1"):
        shelf.read("a")
        with contextlib.suppress(KeyError):
            shelf.read("missing")
    with flow_run("night-2"), contextlib.suppress(PermissionError):
        shelf.read("denied")
    assert flush(30)
    app = create_app(SQLEventStore(url, read_only=True))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ui") as api:
        body = await _json(api, "/api/blocks/ui-shelf/books/runs")
        failures = (await _json(api, "/api/runs?name=night-1"))["runs"]
    assert body["failed_runs_since"] == 2
    assert body["failing_since"] == failures[0]["first_failure"]["occurred"]
    assert [r["flow_run_name"] for r in body["runs"]] == [
        "night-2",
        "night-1",
        "night-0",
    ]


async def test_stored_markup_is_a_json_string(
    api: httpx.AsyncClient, story: Story
) -> None:
    """An error message holding <script> comes back verbatim inside a JSON
    string, as application/json: escaping is the page's, on display."""
    timeline = await api.get(f"/api/runs/{story.bad}/timeline")
    failed = timeline.json()["calls"][2]
    event = await api.get(f"/api/events/{failed['event_id']}")
    for response in (timeline, event):
        assert response.headers["content-type"] == "application/json"
        assert json.dumps(repr(SCRIPT), ensure_ascii=False)[1:-1] in response.text
        assert "<script>" in response.text
        assert "\\u003c" not in response.text


async def test_no_secret_in_any_response(api: httpx.AsyncClient, story: Story) -> None:
    """No route answers a secret value: not the password in an error message, not
    the Secret block's value, not in any stored event."""
    paths = ["/api/runs?limit=500", "/api/blocks"]
    runs = (await _json(api, "/api/runs?limit=500"))["runs"]
    for run in runs:
        paths += [f"/api/runs/{run['id']}", f"/api/runs/{run['id']}/timeline"]
        timeline = await _json(api, f"/api/runs/{run['id']}/timeline")
        for call in timeline["calls"]:
            paths.append(f"/api/events/{call['event_id']}")
            paths.append(f"/api/events/{call['outcome_event_id']}")
        paths += [f"/api/events/{i['event_id']}" for i in timeline["infrastructure"]]
    for block in (await _json(api, "/api/blocks"))["blocks"]:
        paths.append(f"/api/blocks/{block['block']}/runs")
    assert len(paths) > 40
    for path in paths:
        response = await api.get(path)
        assert response.status_code == 200, path
        assert SECRET not in response.text, path
        assert TOKEN not in response.text, path


async def test_only_get_and_security_headers_everywhere(api: httpx.AsyncClient) -> None:
    """Every method but GET and HEAD is 405; every response, errors and assets
    included, carries the CSP, nosniff and no-referrer headers."""
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/api/runs", "/api/blocks", "/"):
            response = await api.request(method, path)
            assert response.status_code == 405, (method, path)
            assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}
    body = (await api.post("/api/runs")).json()
    assert body == {"error": "Method Not Allowed"}
    assert (await api.head("/api/runs")).status_code == 200
    for path, status in (
        ("/", 200),
        ("/static/index.html", 200),
        ("/api/runs", 200),
        ("/api/runs?since=x", 400),
        ("/api/nothing-here", 404),
        ("/static/no-such-file.js", 404),
    ):
        response = await api.get(path)
        assert response.status_code == status, path
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert (await api.get("/api/nothing-here")).json() == {"error": "Not Found"}


def _small_app(tmp_path: Path, **options: Any) -> Any:
    """The app over a store of one run (SQLite)."""
    url = f"sqlite:///{tmp_path / 'small.db'}"
    configure(emitters=[SQLEventStore(url)])
    with flow_run("small"):
        UiShelf(login=UiLogin(password=SecretStr(SECRET))).read("x")
    assert flush(30)
    configure(emitters=[])
    return create_app(SQLEventStore(url, read_only=True), **options)


async def _raw(
    app: Any, method: str, raw_path: bytes, host: bytes = b"127.0.0.1:8642"
) -> tuple[int, bytes]:
    """Send one request to the ASGI app as a server does (``path`` percent-decoded,
    dot segments kept: no client normalises them); return status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", host)],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8642),
    }
    sent: list[dict[str, Any]] = []
    requested, done = False, asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # the client stays until the answer is whole
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], body


async def test_static_files_stay_inside_their_folder(tmp_path: Path) -> None:
    """/static/ lists nothing, and no path (dot segments, percent-encoded, doubly
    encoded, backslashes, absolute) reaches a file outside the assets: 404."""
    app = _small_app(tmp_path)
    assert (await _raw(app, "GET", b"/static/app.js"))[0] == 200
    assert (await _raw(app, "GET", b"/static"))[0] == 307  # to /static/, below
    source = b"class Api"  # a line of blocks/_ui/_api.py
    for raw_path in (
        b"/static/",
        b"/static/../_api.py",
        b"/static/../../_ui/_api.py",
        b"/static/%2e%2e/_api.py",
        b"/static/%2E%2E%2F_api.py",
        b"/static/..%2f_api.py",
        b"/static/%252e%252e/_api.py",
        b"/static/..%5c_api.py",
        b"/static/%2f..%2f_api.py",
        b"/static//etc/passwd",
        b"/static/..%00/_api.py",
        b"/../blocks/_ui/_api.py",
    ):
        status, body = await _raw(app, "GET", raw_path)
        assert status == 404, raw_path
        assert source not in body, raw_path
        assert b"app.js" not in body, raw_path  # no listing


async def test_any_method_but_get_is_405_on_every_path(tmp_path: Path) -> None:
    """POST, PUT, PATCH, DELETE, OPTIONS and others: 405 with Allow on any path,
    known or not, page, asset or API."""
    app = _small_app(tmp_path)
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"):
        for path in (b"/", b"/api/runs", b"/api/nothing", b"/static/app.js", b"/x"):
            status, body = await _raw(app, method, path)
            assert status == 405, (method, path)
    status, body = await _raw(app, "DELETE", b"/api/nothing")
    assert json.loads(body) == {"error": "Method Not Allowed"}


async def test_a_foreign_host_is_refused_on_loopback(tmp_path: Path) -> None:
    """With the loopback names allowed, a Host of another name (a DNS rebinding
    page) is 400 with nothing read; localhost, 127.0.0.1 and [::1] with any port
    are served; with no list (a network address), any Host is."""
    app = _small_app(tmp_path, allowed_hosts=LOOPBACK_HOSTS)
    for host in (b"localhost:8642", b"127.0.0.1:8642", b"[::1]:8642", b"LOCALHOST"):
        assert (await _raw(app, "GET", b"/api/runs", host))[0] == 200, host
    for host in (
        b"attacker.example:8642",
        b"attacker.example",
        b"localhost.attacker.example:8642",
        b"127.0.0.1.nip.io:8642",
        b"10.0.0.5:8642",
        b"",
        b"localhost:8642@attacker.example",
    ):
        status, body = await _raw(app, "GET", b"/api/runs", host)
        assert status == 400, host
        assert b"small" not in body, host
    status, _ = await _raw(app, "GET", b"/", b"attacker.example")
    assert status == 400
    anyone = _small_app(
        tmp_path / "b" if (tmp_path / "b").mkdir() is None else tmp_path
    )
    assert (await _raw(anyone, "GET", b"/api/runs", b"attacker.example"))[0] == 200


async def test_the_page_and_its_assets(api: httpx.AsyncClient) -> None:
    """GET / is the page, with no inline script; its assets are served locally."""
    page = await api.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert "<script src=" in page.text
    assert "<script>" not in page.text
    for asset in ("app.js", "app.css"):
        response = await api.get(f"/static/{asset}")
        assert response.status_code == 200, asset
        assert response.text


def _state(database: Path) -> list[tuple[str, bytes, int]]:
    files = [database, database.with_name(database.name + "-wal")]
    return [(p.name, p.read_bytes(), p.stat().st_mtime_ns) for p in files if p.exists()]


async def test_serving_every_route_leaves_the_sqlite_file_as_it_was(
    tmp_path: Path,
) -> None:
    """Bytes and modification time of the database (and its WAL) are the same
    after every route was served."""
    story = _tell(f"sqlite:///{tmp_path / 'events.db'}", tmp_path / "events.db")
    assert story.database is not None
    sa.create_engine(story.url).dispose()
    before = _state(story.database)
    app = create_app(
        SQLEventStore(story.url, read_only=True), documents=DocumentStore()
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ui") as api:
        timeline = await _json(api, f"/api/runs/{story.bad}/timeline")
        for path in (
            "/",
            "/static/app.js",
            "/api/runs",
            "/api/runs?failed=true&name=nightly-*&since=1d",
            f"/api/runs/{story.bad}",
            f"/api/events/{timeline['calls'][2]['event_id']}",
            "/api/blocks",
            "/api/blocks/ui-shelf/books/runs",
            "/api/blocks/ui-shelf/runs",
        ):
            assert (await api.get(path)).status_code == 200, path
        assert (await api.post("/api/runs")).status_code == 405
    assert _state(story.database) == before


def test_a_database_without_event_tables_fails_at_start(tmp_path: Path) -> None:
    """An empty SQLite file, a missing one, a bad URL: a clear error when the app
    is made, and nothing created."""
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    before = empty.read_bytes()
    with pytest.raises(LookupError, match="holds no event store") as caught:
        create_app(SQLEventStore(f"sqlite:///{empty}", read_only=True))
    assert "no table eventblocks_events" in str(caught.value)
    assert empty.read_bytes() == before
    missing = tmp_path / "nowhere" / "events.db"
    with pytest.raises(ValueError, match="There is no SQLite database at"):
        create_app(SQLEventStore(f"sqlite:///{missing}", read_only=True))
    assert not missing.parent.exists()
    with pytest.raises(ValueError, match="not a valid SQLAlchemy database URL"):
        create_app(SQLEventStore("not a url", read_only=True))


def test_an_empty_postgresql_database_fails_at_start(postgres_url: str) -> None:
    """No event tables on PostgreSQL: LookupError, and no table is created."""
    with pytest.raises(LookupError, match="holds no event store"):
        create_app(SQLEventStore(postgres_url, read_only=True))
    engine = sa.create_engine(postgres_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("eventblocks_events")
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_a_read_only_store_refuses_every_write(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Storing, pruning, and raw SQL through its engine are refused."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}"
    else:
        url = request.getfixturevalue(
            "postgres_url" if backend == "postgresql" else "mysql_url"
        )
    writer = SQLEventStore(url)
    writer.events()  # the tables
    reader = SQLEventStore(url, read_only=True)
    assert reader.runs() == []
    with pytest.raises(PermissionError, match="read-only"):
        reader.emit_batch([_any_event()])
    with pytest.raises(PermissionError, match="read-only"):
        reader.prune(timedelta(days=1))
    with pytest.raises(sa.exc.DBAPIError), reader.engine.connect() as conn:
        conn.exec_driver_sql("DELETE FROM eventblocks_runs")


def _any_event() -> Any:
    from emitters import Event, Resource

    return Event(
        id=uuid.uuid4(),
        occurred=datetime.now(UTC),
        event="x.happened",
        resource=Resource(id="x"),
    )


def test_the_timelines_written_json_is_the_encoders() -> None:
    """The calls' JSON written directly parses to what the encoder writes for the
    same calls, with quotes, control characters, non-ASCII text and markup."""
    from blocks._ui._json import call_json, calls_json_text
    from emitters.sql import CallRecord

    at = datetime(2024, 6, 1, 2, 13, 7, 412000, tzinfo=UTC)
    odd = 'a "quoted" \\ back\nslash\t\u2028 café 🚀 </script><script>x()</script>'
    calls = [
        CallRecord(
            event_id=str(uuid.uuid4()),
            block=f"ui-shelf/{odd}",
            method="read",
            started=at,
            duration_ms=12.5,
            outcome="failed",
            error_type="builtins.KeyError",
            error_message=odd,
            caller=str(uuid.uuid4()),
            task_run_id=odd,
            task_run_name=odd,
            outcome_event_id=str(uuid.uuid4()),
        ),
        CallRecord(
            event_id=str(uuid.uuid4()),
            block="secret",
            method="get",
            started=at + timedelta(microseconds=1),
            duration_ms=None,
            outcome="running",
            error_type=None,
            error_message=None,
            caller=None,
        ),
        CallRecord(
            event_id=str(uuid.uuid4()),
            block="ui-login/prod",
            method="check",
            started=at,
            duration_ms=3,  # an int, as an older payload may hold
            outcome="succeeded",
            error_type=None,
            error_message=None,
            caller=None,
        ),
    ]
    rows = [_row_of(c) for c in calls]
    assert [CallRecord.from_row(r) for r in rows] == calls
    text = calls_json_text(rows)
    assert json.loads(text) == [call_json(c) for c in calls]
    assert json.loads(calls_json_text([])) == []


def _row_of(call: Any) -> Any:
    """The store's tuple of a call (started as microseconds since the epoch)."""
    started_us = (call.started - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        microseconds=1
    )
    return (
        started_us,
        call.event_id,
        call.block,
        call.method,
        call.duration_ms,
        call.outcome,
        call.error_type,
        call.error_message,
        call.caller,
        call.task_run_id,
        call.task_run_name,
        call.outcome_event_id,
    )


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2024, 6, 1, 2, 13, 7, tzinfo=UTC),
        datetime(2024, 6, 1, 2, 13, 7, 1, tzinfo=UTC),
        datetime(2024, 6, 1, 2, 13, 7, 999999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
    ],
)
def test_a_time_in_microseconds_is_written_as_iso_writes_it(moment: datetime) -> None:
    from blocks._ui._json import iso, iso_micros

    micros = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert iso_micros(micros) == iso(moment)


def test_a_duration_in_microseconds_is_rounded_as_a_timedelta_rounds_it() -> None:
    """The task bands' ends: ties, near-ties and plain values, over many scales."""
    import random

    from blocks._ui._api import ms_to_micros

    rng = random.Random(21)
    values = [0.0, 0.0005, 0.0015, 0.0025, 109.9025, 1.5e-3, -0.0005, -2.5e-3, 3]
    values += [i / 2000 for i in range(-2000, 20000)]
    values += [round(rng.random() * 10**6, 4) for _ in range(20000)]
    values += [rng.random() * 10 ** rng.randint(-3, 9) for _ in range(20000)]
    one = timedelta(microseconds=1)
    wrong = [v for v in values if ms_to_micros(v) != timedelta(milliseconds=v) // one]
    assert wrong == []
