"""Every script in examples/ runs and exits 0; the quickstart says what it promises."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))


def run_script(script: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with this interpreter, from a clean event environment (the
    test servers' variables stay: they name this run's own databases)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key.startswith("EVENTBLOCKS_TEST_")
        or not key.startswith(("EVENTBLOCKS_", "PREFECT__"))
    }
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
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
def test_example_runs(script: Path) -> None:
    """Each example script exits 0 within the timeout."""
    result = run_script(script)
    assert result.returncode == 0, result.stdout + result.stderr


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
