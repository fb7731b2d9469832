"""Every script in examples/ runs and exits 0; the quickstart says what it promises."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))


# Examples that run a Prefect flow use the test run's Prefect server.
PREFECT_EXAMPLES = {"prefect_flow.py"}

# Arguments that make an example end on its own: the web page example otherwise
# serves until Ctrl-C.
EXAMPLE_ARGS = {"web_ui.py": ["--check"]}


def run_script(
    script: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with this interpreter, from a clean event environment (the
    test servers' variables stay: they name this run's own databases), or ``env``."""
    if env is None:
        env = {
            key: value
            for key, value in os.environ.items()
            if key.startswith("EVENTBLOCKS_TEST_")
            or not key.startswith(("EVENTBLOCKS_", "PREFECT_", "AIRFLOW_CTX_"))
        }
    return subprocess.run(
        [sys.executable, str(script), *EXAMPLE_ARGS.get(script.name, [])],
        capture_output=True,
        text=True,
        timeout=120 if script.name in PREFECT_EXAMPLES else 60,
        cwd=script.parent.parent,
        env=env,
        check=False,
    )


def module_constant(script: Path, name: str) -> str:
    """Return the string constant ``name`` assigned at the top of ``script``."""
    for node in ast.parse(script.read_text()).body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == [name]
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    raise LookupError(f"{script.name} assigns no string constant {name}")


def test_there_are_examples() -> None:
    """The examples directory holds at least the quickstart."""
    assert EXAMPLES / "quickstart.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_example_runs(script: Path, request: pytest.FixtureRequest) -> None:
    """Each example script exits 0 within the timeout."""
    env = None
    if script.name in PREFECT_EXAMPLES:
        env = request.getfixturevalue("prefect_server").env()
    result = run_script(script, env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prefect_example_shows_prefects_runs(prefect_server: Any) -> None:
    """examples/prefect_flow.py runs a real flow: the body's calls carry the flow
    run, the task's the task run too, all with source=prefect."""
    result = run_script(EXAMPLES / "prefect_flow.py", prefect_server.env())
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.split("carry:", 1)[1].strip().splitlines()[:4]
    assert [line.split()[0] for line in lines] == [
        "block.warehouse.query.started",
        "block.warehouse.query.succeeded",
    ] * 2
    assert all("flow run" in line and "source=prefect" in line for line in lines)
    assert ["task run 'load_orders-" in line for line in lines] == [
        False,
        False,
        True,
        True,
    ]
    assert "'flow-name': 'nightly-etl'" in result.stdout
    assert "'tags': 'nightly'" in result.stdout


def test_the_prefect_example_without_prefect_says_what_to_install(
    tmp_path: Path,
) -> None:
    """Where Prefect cannot be imported, the example names the extra and exits 0."""
    (tmp_path / "prefect.py").write_text("raise ImportError('no prefect here')\n")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EVENTBLOCKS_", "PREFECT_"))
    }
    root = str(EXAMPLES.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path), env.get("PYTHONPATH", root) or root]
    )
    result = run_script(EXAMPLES / "prefect_flow.py", env)
    assert result.returncode == 0, result.stderr
    assert "pip install 'eventblocks[prefect]'" in result.stdout


def test_quickstart_names_the_first_failed_call() -> None:
    """The quickstart reads its run back from the store and names the first failure."""
    result = run_script(EXAMPLES / "quickstart.py")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    timeline = out.split("from the event store:", 1)[1].split("Which call", 1)[0]
    calls = [line.split() for line in timeline.strip().splitlines()]
    assert [c[0] for c in calls] == ["warehouse/prod.query"] * 3
    assert [c[3] for c in calls] == ["succeeded", "succeeded", "failed"]
    first = out.split("Which call failed first?", 1)[1]
    assert "warehouse/prod.query: call 3 of 3" in first
    assert "__main__.WarehouseError: relation public.refunds does not exist" in first
    runs = out.split("Which runs used warehouse/prod?", 1)[1]
    assert "nightly-etl  3 calls, 1 failed, last error __main__.WarehouseError" in runs
    assert "0 dropped" in out


def test_quickstart_never_shows_the_secret() -> None:
    """The quickstart's DSN appears in neither output stream; the mask does."""
    script = EXAMPLES / "quickstart.py"
    dsn = module_constant(script, "DSN")
    password = urlsplit(dsn).password
    assert password
    result = run_script(script)
    assert result.returncode == 0, result.stdout + result.stderr
    for stream in (result.stdout, result.stderr):
        assert dsn not in stream
        assert password not in stream
    assert "(connected to **********)" in result.stdout


def test_workers_through_nats_store_every_event_once(nats_url: str) -> None:
    """Three worker processes publish to JetStream; the ingester stores their 18
    events once, and a second run on the same durable consumer finds none."""
    result = run_script(EXAMPLES / "workers_through_nats.py")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "stored 18 events; a second run found 0" in out
    for worker in ("worker-0", "worker-1", "worker-2"):
        timeline = out.split(f"{worker}:", 1)[1].strip().splitlines()[:3]
        assert [line.split()[-1] for line in timeline] == [
            "succeeded",
            "succeeded",
            "failed",
        ]


def test_ecs_observer_example_puts_the_stop_on_the_run() -> None:
    """The ECS observer example stores the task's stop, with its reason, after the
    run's block calls."""
    script = EXAMPLES / "ecs_observer.py"
    result = run_script(script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stored 1, related to runs 1" in result.stdout
    lines = result.stdout.splitlines()
    stop = next(i for i, line in enumerate(lines) if "infra.ecs.task.stopped" in line)
    assert any("block.aws-credentials.get_client" in line for line in lines[:stop])
    assert module_constant(script, "STOPPED_REASON") in lines[stop + 1]


def test_web_ui_example_serves_the_page_and_its_api() -> None:
    """examples/web_ui.py --check starts eventblocks ui over its story's store: the
    page answers with its CSP, the API lists the three runs latest first with the
    failed one's first failure, and the server stops with status 0."""
    result = run_script(EXAMPLES / "web_ui.py")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "GET / -> 200 text/html" in out
    assert "Content-Security-Policy: default-src 'self'; script-src 'self';" in out
    runs = out.split("3 runs, latest first:", 1)[1].strip().splitlines()[:3]
    assert runs[0].endswith(
        "2 calls, 1 failed  first failure inventory/shop.stock: LookupError"
    )
    assert [run.split()[-3:] for run in runs[1:]] == [
        ["calls,", "0", "failed"],
        ["calls,", "0", "failed"],
    ]
    assert "last error LookupError: unknown product 'saucer'" in out
    assert "eventblocks ui stopped with status 0" in out
    assert "inv-token-not-shown" not in out + result.stderr
