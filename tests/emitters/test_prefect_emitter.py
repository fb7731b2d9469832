"""PrefectEmitter against a real `prefect server start`: mapping, limits, spool."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from emitters import Event, PartialDelivery, RelatedResource, Resource
from emitters._ids import new_uuid7
from emitters.prefect import ID_PREFIX, Limits, PrefectEmitter
from emitters.prefect._schema import prefect_document

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prefect_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EVENTBLOCKS_", "PREFECT_"))
    }
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def prefect_api(prefect_server: Any) -> str:
    """The API URL of the test run's one real Prefect server."""
    return str(prefect_server.api_url)


def _flow_run(api: str) -> str:
    """Create a flow run through the REST API; return its id."""
    flow = httpx.post(f"{api}/flows/", json={"name": "eventblocks-tests"}).json()
    run = httpx.post(
        f"{api}/flow_runs/", json={"flow_id": flow["id"], "name": "run"}
    ).json()
    return str(run["id"])


def _events_of(api: str, flow_run_id: str, expected: int) -> list[dict[str, Any]]:
    """Read the events related to a flow run, waiting until ``expected`` are in."""
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    body = {
        "filter": {
            "related": {"id": [f"prefect.flow-run.{flow_run_id}"]},
            "occurred": {"since": since},
        },
        "limit": 50,
    }
    deadline = time.monotonic() + 30
    while True:
        page = httpx.post(f"{api}/events/filter", json=body, timeout=10).json()
        found = list(page["events"])
        while page.get("next_page"):
            page = httpx.get(page["next_page"], timeout=10).json()
            found.extend(page["events"])
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def _event(
    run_id: str, payload: dict[str, Any] | None = None, related: int = 0
) -> Event:
    return Event(
        id=new_uuid7(),
        occurred=datetime.now(UTC),
        event="block.warehouse.query.succeeded",
        resource=Resource(id=f"block-document.{uuid.uuid4()}", name="wh"),
        related=(
            RelatedResource(
                id=f"flow-run.{run_id}", role="flow-run", name="run",
                labels={"source": "prefect"},
            ),
            *(RelatedResource(id=f"thing.{i}", role="thing") for i in range(related)),
        ),
        payload=payload or {},
    )  # fmt: skip


# -- the mapping ------------------------------------------------------------------


def test_resources_map_to_prefect_labels() -> None:
    """Ids get the eventblocks. prefix, but Prefect's own runs become its ids."""
    event = Event(
        id=new_uuid7(),
        occurred=datetime.now(UTC),
        event="block.s3-bucket.read_path.failed",
        resource=Resource(
            id="block-document.1", name="raw", labels={"block-type": "s3-bucket"}
        ),
        related=(
            RelatedResource(
                id="flow-run.abc", role="flow-run", name="etl",
                labels={"source": "prefect"},
            ),
            RelatedResource(
                id="task-run.def", role="task-run", labels={"source": "prefect"}
            ),
            RelatedResource(id="flow-run.mine", role="flow-run"),
            RelatedResource(
                id="block-type.s3-bucket", role="block-type",
                labels={"prefect.resource.id": "spoofed"},
            ),
        ),
    )  # fmt: skip
    body, reason = prefect_document(event, Limits())
    assert body is not None, reason
    doc = json.loads(body)
    assert doc["id"] == str(event.id)
    assert doc["resource"] == {
        "block-type": "s3-bucket",
        "prefect.resource.id": f"{ID_PREFIX}block-document.1",
        "prefect.resource.name": "raw",
    }
    assert [
        (r["prefect.resource.id"], r["prefect.resource.role"]) for r in doc["related"]
    ] == [
        ("prefect.flow-run.abc", "flow-run"),
        ("prefect.task-run.def", "task-run"),
        ("eventblocks.flow-run.mine", "flow-run"),
        ("eventblocks.block-type.s3-bucket", "block-type"),
    ]
    assert doc["related"][0]["prefect.resource.name"] == "etl"


@pytest.mark.parametrize(
    ("event", "limit"),
    [
        (_event("r", related=100), "related resources"),
        (_event("r", payload={"x": "y" * 1_500_000}), "bytes as JSON"),
        (
            Event(
                id=new_uuid7(), occurred=datetime.now(UTC), event="e",
                resource=Resource(id="x", labels={f"l{i}": "v" for i in range(500)}),
            ),
            "labels",
        ),
    ],
)  # fmt: skip
def test_events_over_a_limit_are_refused_with_the_reason(
    event: Event, limit: str
) -> None:
    """Each of Prefect's limits is checked; the reason names it and the event."""
    body, reason = prefect_document(event, Limits())
    assert body is None
    assert limit in reason
    assert str(event.id) in reason
    assert "yyy" not in reason


def test_settings_come_from_prefects_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """PREFECT_API_URL, PREFECT_API_KEY and PREFECT_API_AUTH_STRING are read."""
    for name in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="PREFECT_API_URL"):
        PrefectEmitter()
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api/")
    emitter = PrefectEmitter(spool=False)
    assert emitter.url == "http://127.0.0.1:4200/api/events"
    assert emitter.spool_dir is None
    assert PrefectEmitter().spool_dir is not None


# -- a local receiver, and a proxy to the server ------------------------------------


class _Relay(ThreadingHTTPServer):
    """Records requests and forwards them to ``target`` (or answers 204)."""

    daemon_threads = True

    def __init__(self, port: int, target: str | None) -> None:
        self.target = target
        self.requests: list[tuple[dict[str, str], bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                relay = self.server
                assert isinstance(relay, _Relay)
                relay.requests.append((dict(self.headers), body))
                status = 204
                if relay.target:
                    status = httpx.post(
                        relay.target + self.path.removeprefix("/api"),
                        content=body,
                        headers={"Content-Type": "application/json"},
                    ).status_code
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        super().__init__(("127.0.0.1", port), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_credentials_are_sent_and_never_shown(tmp_path: Path) -> None:
    """An API key goes as a bearer token, an auth string as basic authentication;
    neither appears in repr or in an error."""
    relay = _Relay(0, None)
    api = f"http://127.0.0.1:{relay.server_address[1]}/api"
    try:
        with PrefectEmitter(api, api_key="pnu_secretkey123", spool=False) as keyed:
            keyed.emit_batch([_event("r")])
        with PrefectEmitter(api, auth_string="admin:pw-secret", spool=False) as basic:
            basic.emit_batch([_event("r")])
    finally:
        relay.shutdown()
        relay.server_close()
    (h1, body), (h2, _) = relay.requests
    assert h1["Authorization"] == "Bearer pnu_secretkey123"
    assert (
        h2["Authorization"] == "Basic " + base64.b64encode(b"admin:pw-secret").decode()
    )
    assert isinstance(json.loads(body), list)  # a JSON array, not {"events": ...}
    assert "secret" not in repr(keyed) + repr(basic)
    closed = PrefectEmitter(
        f"http://127.0.0.1:{_free_port()}/api", api_key="pnu_secretkey123",
        spool=False, max_retries=0, timeout=1,
    )  # fmt: skip
    with closed, pytest.raises(ConnectionError) as caught:
        closed.emit_batch([_event("r")])
    assert "secret" not in str(caught.value)


# -- against the server -------------------------------------------------------------

_FLOW = """
from prefect import flow
from prefect.runtime import flow_run as prefect_run
from blocks import Block
from emitters import configure, flush, stats
from emitters.prefect import PrefectEmitter

class Warehouse(Block):
    schema_name: str = "public"
    def query(self, sql: str) -> int:
        if sql == "fail":
            raise RuntimeError("boom")
        return len(sql)

@flow(name="eventblocks-prefect-test")
def nightly() -> str:
    # No scope: the Prefect run context provider relates the calls to this run.
    wh = Warehouse()
    for sql in ("select 1", "select 2", "fail"):
        try:
            wh.query(sql)
        except RuntimeError:
            pass
    return str(prefect_run.id)

emitter = PrefectEmitter(spool=False)
configure(emitters=[emitter])
run_id = nightly()
assert flush(30)
print(run_id, emitter.sent, emitter.set_aside)
"""


@pytest.mark.slow
def test_a_prefect_flows_block_calls_show_on_its_run(
    prefect_api: str, tmp_path: Path
) -> None:
    """A flow run by Prefect calls blocks; every call's events are read back from
    the server by the run's id, related as prefect.flow-run.<id>, role flow-run."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_FLOW)],
        env=_prefect_env(
            tmp_path / "client-home", PREFECT_API_URL=prefect_api,
            EVENTBLOCKS_HOME=str(tmp_path / "eb"),
        ),
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run_id, sent, set_aside = result.stdout.split()[-3:]
    assert (sent, set_aside) == ("6", "0")
    events = _events_of(prefect_api, run_id, 6)
    names = sorted(e["event"] for e in events if e["event"].startswith("block."))
    assert names == sorted(
        ["block.warehouse.query.started"] * 3
        + ["block.warehouse.query.succeeded"] * 2
        + ["block.warehouse.query.failed"]
    )
    for event in events:
        runs = [r for r in event["related"] if r["prefect.resource.role"] == "flow-run"]
        assert [r["prefect.resource.id"] for r in runs] == [
            f"prefect.flow-run.{run_id}"
        ]
        assert event["resource"]["prefect.resource.id"].startswith(ID_PREFIX)


def test_an_event_prefect_would_refuse_is_set_aside_and_the_rest_arrives(
    prefect_api: str,
) -> None:
    """Too large and too related events are counted; their batch still arrives."""
    run_id = _flow_run(prefect_api)
    good = [_event(run_id, {"n": i}) for i in range(3)]
    huge = _event(run_id, {"blob": "x" * 1_600_000})
    crowded = _event(run_id, related=100)
    emitter = PrefectEmitter(prefect_api, spool=False)
    with emitter, pytest.raises(PartialDelivery) as caught:
        emitter.emit_batch([good[0], huge, good[1], crowded, good[2]])
    assert caught.value.delivered == 3
    assert (emitter.sent, emitter.set_aside, emitter.rejected) == (3, 2, 0)
    assert [r.split()[1] for r in emitter.set_aside_reasons] == [
        str(huge.id),
        str(crowded.id),
    ]
    stored = _events_of(prefect_api, run_id, 3)
    assert sorted(e["id"] for e in stored) == sorted(str(e.id) for e in good)


def test_events_spool_while_the_server_is_away_and_arrive_after(
    prefect_api: str, tmp_path: Path
) -> None:
    """Sent while nothing answers, events wait in the spool; once the server is
    back on that address, flush() delivers them."""
    run_id = _flow_run(prefect_api)
    port = _free_port()
    emitter = PrefectEmitter(
        f"http://127.0.0.1:{port}/api", spool_dir=tmp_path / "spool",
        max_retries=0, timeout=1, backoff=0.01,
    )  # fmt: skip
    events = [_event(run_id, {"n": i}) for i in range(5)]
    with emitter:
        emitter.emit_batch(events[:3])
        emitter.emit_batch(events[3:])
        assert (emitter.sent, emitter.spooled) == (0, 5)
        relay = _Relay(port, prefect_api)
        try:
            assert emitter.flush(20)
        finally:
            relay.shutdown()
            relay.server_close()
    assert emitter.replayed == 5
    stored = _events_of(prefect_api, run_id, 5)
    assert sorted(e["id"] for e in stored) == sorted(str(e.id) for e in events)


def test_the_prefect_sink_never_imports_prefect(tmp_path: Path) -> None:
    """Building and using a PrefectEmitter loads no Prefect module."""
    code = textwrap.dedent(
        """
        import sys
        from datetime import UTC, datetime
        from emitters import Event, Resource
        from emitters._ids import new_uuid7
        from emitters.prefect import PrefectEmitter
        event = Event(id=new_uuid7(), occurred=datetime.now(UTC), event="e",
                      resource=Resource(id="x"))
        with PrefectEmitter("http://127.0.0.1:9/api", spool=False, max_retries=0,
                            timeout=0.5) as sink:
            try:
                sink.emit_batch([event])
            except ConnectionError:
                print("refused")
        print(sorted(m for m in sys.modules if m.split(".")[0] == "prefect"))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=_prefect_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["refused", "[]"]
