"""Block classes of a program's main module, re-created in child processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from emitters.sql import SQLEventStore

# A program whose main module defines a block type and hands work that uses it to
# a child started with multiprocessing's spawn (as Prefect's runner does). With
# "cloudpickle", the work function, and the class with it, travel by value.
SPAWN_PROGRAM = """
import multiprocessing
import pickle
import sys

import cloudpickle

from blocks import Block
from emitters import configure, flow_run, flush
from emitters.file import FileEmitter


class Warehouse(Block):
    dsn: str = "db"

    def query(self, sql: str) -> str:
        return sql


def work(events_path: str) -> None:
    configure(emitters=[FileEmitter(events_path)])
    with flow_run("by-value", id="run-by-value"):
        Warehouse(dsn="postgres://warehouse").save("main", overwrite=True)
        Warehouse.load("main").query("select 1")
        Block.load("warehouse/main").query("select 2")
    flush()


def child(payload: bytes, how: str, events_path: str) -> None:
    fn = cloudpickle.loads(payload) if how == "cloudpickle" else pickle.loads(payload)
    fn(events_path)


if __name__ == "__main__":
    how, events_path = sys.argv[1], sys.argv[2]
    payload = cloudpickle.dumps(work) if how == "cloudpickle" else pickle.dumps(work)
    process = multiprocessing.get_context("spawn").Process(
        target=child, args=(payload, how, events_path)
    )
    process.start()
    process.join(60)
    sys.exit(process.exitcode)
"""


def run_program(
    tmp_path: Path, source: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a program (its own ``__main__``) in a child interpreter."""
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )


def read_events(path: Path) -> list[dict[str, Any]]:
    """Return the events of a JSON lines file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.mark.parametrize("how", ["cloudpickle", "pickle"])
def test_a_main_module_class_works_in_a_spawned_child(tmp_path: Path, how: str) -> None:
    """A Block class of __main__, sent to a spawned child by value (cloudpickle)
    or by reference (pickle), records events and saves and loads documents there."""
    pytest.importorskip("cloudpickle")
    events_path = tmp_path / "events.jsonl"

    result = run_program(tmp_path, SPAWN_PROGRAM, how, str(events_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "BlockDefinitionError" not in result.stderr
    events = read_events(events_path)
    names = [e["event"] for e in events]
    assert names == [
        "block-document.saved",
        "block-document.loaded",
        "block.warehouse.query.started",
        "block.warehouse.query.succeeded",
        "block-document.loaded",
        "block.warehouse.query.started",
        "block.warehouse.query.succeeded",
    ]
    for event in events:
        runs = [r for r in event["related"] if r["role"] == "flow-run"]
        assert [r["id"] for r in runs] == ["flow-run.run-by-value"]
    calls = [e for e in events if e["event"].startswith("block.warehouse.query")]
    assert {e["resource"]["name"] for e in calls} == {"main"}
    assert "postgres://warehouse" not in events_path.read_text()


def test_main_and_another_module_claiming_one_slug_is_still_an_error(
    tmp_path: Path,
) -> None:
    """A class of __main__ and one of an imported module with the same slug clash."""
    (tmp_path / "warehouse_types.py").write_text(
        textwrap.dedent(
            """
            from blocks import Block


            class Warehouse(Block):
                host: str = "a"
            """
        ),
        encoding="utf-8",
    )
    program = """
    import warehouse_types

    from blocks import Block


    class Warehouse(Block):
        host: str = "b"
    """

    result = run_program(tmp_path, program)

    assert result.returncode != 0
    assert (
        "BlockDefinitionError: Block types warehouse_types:Warehouse and "
        "__main__:Warehouse both claim the slug 'warehouse'"
    ) in result.stderr


# A flow file as a Prefect user writes it: the block type is defined beside the
# flow, and the file serves the flow as a deployment. Prefect's runner starts each
# run in a child with spawn and sends the flow with cloudpickle.
SERVED_FLOW = """
from prefect import flow

from blocks import Block


class Warehouse(Block):
    dsn: str = "db"

    def query(self, sql: str) -> str:
        return sql


@flow(name="served-etl")
def served_etl() -> None:
    Warehouse(dsn="postgres://served").save("main", overwrite=True)
    Block.load("warehouse/main").query("select 1")


if __name__ == "__main__":
    served_etl.serve(name="nightly")
"""


def _wait_for(what: str, check: Any, timeout: float, process: Any) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if process.poll() is not None:
            raise AssertionError(f"the served flow exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.5)


@pytest.mark.slow
def test_a_block_class_of_a_served_flow_file_works_in_its_runs(
    tmp_path: Path, prefect_server: Any, eventblocks_home: Path
) -> None:
    """A deployment run of a flow served from its own file, with a Block class of
    that file, completes and its events carry the Prefect flow run."""
    script = tmp_path / "served_etl.py"
    script.write_text(textwrap.dedent(SERVED_FLOW), encoding="utf-8")
    env = prefect_server.env(
        EVENTBLOCKS_HOME=str(eventblocks_home), PREFECT_RUNNER_POLL_FREQUENCY="1"
    )
    log = tmp_path / "serve.log"
    api = prefect_server.api_url
    with log.open("wb") as out:
        serving = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def deployment() -> dict[str, Any] | None:
            response = httpx.get(f"{api}/deployments/name/served-etl/nightly")
            return response.json() if response.status_code == 200 else None

        deployed = _wait_for("deployment", deployment, 90, serving)

        def create() -> dict[str, Any] | None:
            # A busy server answers 503 now and then (its SQLite database is
            # locked by its own services): ask again.
            url = f"{api}/deployments/{deployed['id']}/create_flow_run"
            response = httpx.post(url, json={})
            if response.status_code >= 500:
                return None
            assert response.status_code == 201, response.text
            created: dict[str, Any] = response.json()
            return created

        flow_run = _wait_for("flow run", create, 60, serving)

        def finished() -> dict[str, Any] | None:
            response = httpx.get(f"{api}/flow_runs/{flow_run['id']}")
            if response.status_code != 200:
                return None
            state: dict[str, Any] = response.json()["state"]
            done = state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
            return state if done else None

        state = _wait_for("finished run", finished, 120, serving)
    finally:
        serving.terminate()
        serving.wait(30)
    output = log.read_text(errors="replace")
    assert state["type"] == "COMPLETED", output
    assert "BlockDefinitionError" not in output

    events = SQLEventStore().events(flow_run=flow_run["id"], limit=None)
    assert [e.event for e in events] == [
        "block-document.saved",
        "block-document.loaded",
        "block.warehouse.query.started",
        "block.warehouse.query.succeeded",
    ]
    for event in events:
        (run,) = event.related_by_role("flow-run")
        assert run.id == f"flow-run.{flow_run['id']}"
        assert run.name == flow_run["name"]
        assert run.labels["source"] == "prefect"
        assert run.labels["flow-name"] == "served-etl"
        assert run.labels["deployment-id"] == deployed["id"]
        assert run.labels["deployment-name"] == "nightly"
