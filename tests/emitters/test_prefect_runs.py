"""Block calls inside real Prefect 3 flow runs and task runs carry Prefect's runs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from typing import Any

import httpx
import pytest

# A Prefect program as a user writes it, against the test server. The flow body,
# a task called directly, a task submitted to Prefect's thread pool and a subflow
# each make a block call; the flow returns the ids Prefect's runtime reports.
FLOW_PROGRAM = """
import json

from prefect import flow, tags, task
from prefect.runtime import flow_run as this_flow_run
from prefect.runtime import task_run as this_task_run

from blocks import Block
from emitters import MemoryEmitter, configure, flush


class Warehouse(Block):
    def query(self, sql: str) -> str:
        return sql


@task(tags=["load"])
def load(sql: str) -> str:
    Warehouse().query(sql)
    return this_task_run.id


@flow(name="refresh-marts")
def refresh_marts() -> str:
    Warehouse().query("subflow")
    return this_flow_run.id


@flow(name="nightly-etl")
def nightly_etl() -> dict:
    Warehouse().query("flow body")
    direct = load("task")
    submitted = load.submit("submitted task").result()
    subflow = refresh_marts()
    return {
        "flow_run_id": this_flow_run.id,
        "flow_run_name": this_flow_run.name,
        "task_run_ids": [direct, submitted],
        "subflow_run_id": subflow,
    }


sink = MemoryEmitter()
configure(emitters=[sink])
with tags("nightly"):
    ids = nightly_etl()
Warehouse().query("after the flow")
flush()
events = [e.model_dump(mode="json") for e in sink.events]
print(json.dumps({"ids": ids, "events": events}))
"""


def runs_of(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The event's flow run and task run related resources, by role."""
    return {r["role"]: r for r in event["related"] if r["role"].endswith("-run")}


# The block calls the program makes, in the order they start.
ORDER = ["flow body", "task", "submitted task", "subflow", "after the flow"]


def calls(events: list[dict[str, Any]], sql: str) -> list[dict[str, Any]]:
    """The started and outcome events of the call that ran ``sql``."""
    started = [e for e in events if e["event"].endswith(".started")]
    assert len(started) == len(ORDER)
    call = started[ORDER.index(sql)]
    outcomes = [e for e in events if e["follows"] == call["id"]]
    assert len(outcomes) == 1
    return [call, *outcomes]


@pytest.fixture(scope="module")
def flow_result(
    prefect_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Run the Prefect program once against the test server; return its output."""
    folder = tmp_path_factory.mktemp("prefect-flow")
    script = folder / "nightly_etl.py"
    script.write_text(textwrap.dedent(FLOW_PROGRAM), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=folder,
        env=prefect_server.env(EVENTBLOCKS_HOME=str(folder / "home")),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return output


@pytest.mark.slow
def test_flow_body_calls_carry_the_prefect_flow_run(
    flow_result: dict[str, Any], prefect_server: Any
) -> None:
    """Calls in a flow's body carry Prefect's flow run id and name, with source
    prefect, the flow's name and the run's tags; the server knows that run."""
    ids, events = flow_result["ids"], flow_result["events"]
    for event in calls(events, "flow body"):
        runs = runs_of(event)
        assert list(runs) == ["flow-run"]
        flow = runs["flow-run"]
        assert flow["id"] == f"flow-run.{ids['flow_run_id']}"
        assert flow["name"] == ids["flow_run_name"]
        assert flow["labels"] == {
            "flow-name": "nightly-etl",
            "tags": "nightly",
            "source": "prefect",
        }
    url = f"{prefect_server.api_url}/flow_runs/{ids['flow_run_id']}"
    for _ in range(20):  # a busy server answers 503 now and then: ask again
        stored = httpx.get(url)
        if stored.status_code < 500:
            break
        time.sleep(0.5)
    assert stored.status_code == 200
    assert stored.json()["name"] == ids["flow_run_name"]


@pytest.mark.slow
@pytest.mark.parametrize("sql", ["task", "submitted task"])
def test_task_calls_carry_the_task_run_too(
    flow_result: dict[str, Any], sql: str
) -> None:
    """Calls in a task, called directly or submitted to Prefect's thread pool,
    carry the flow run and Prefect's task run id, name and tags."""
    ids, events = flow_result["ids"], flow_result["events"]
    task_run_id = ids["task_run_ids"][["task", "submitted task"].index(sql)]
    for event in calls(events, sql):
        runs = runs_of(event)
        assert runs["flow-run"]["id"] == f"flow-run.{ids['flow_run_id']}"
        task = runs["task-run"]
        assert task["id"] == f"task-run.{task_run_id}"
        assert task["name"].startswith("load-")
        assert task["labels"] == {
            "task-name": "load",
            "tags": "load,nightly",
            "source": "prefect",
        }


@pytest.mark.slow
def test_subflow_calls_carry_the_subflow_run(flow_result: dict[str, Any]) -> None:
    """Calls in a subflow carry the subflow's own run and no task run."""
    ids, events = flow_result["ids"], flow_result["events"]
    for event in calls(events, "subflow"):
        runs = runs_of(event)
        assert list(runs) == ["flow-run"]
        assert runs["flow-run"]["id"] == f"flow-run.{ids['subflow_run_id']}"
        assert runs["flow-run"]["labels"]["flow-name"] == "refresh-marts"


@pytest.mark.slow
def test_calls_after_the_flow_carry_no_run(flow_result: dict[str, Any]) -> None:
    """Once the flow run has ended, calls carry no run."""
    for event in calls(flow_result["events"], "after the flow"):
        assert runs_of(event) == {}


@pytest.mark.slow
def test_every_call_was_recorded(flow_result: dict[str, Any]) -> None:
    """Each of the five calls has a started and a succeeded event."""
    names = sorted(e["event"] for e in flow_result["events"])
    assert names == sorted(
        ["block.warehouse.query.started", "block.warehouse.query.succeeded"] * 5
    )
