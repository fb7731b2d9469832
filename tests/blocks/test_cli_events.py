"""``eventblocks events``: a script's calls land in the default store, and the CLI
shows them from a run's side and from a block's side.

A script runs in a subprocess with nothing configured (the embedded default), then
the CLI runs as users run it, in another subprocess, on the same home.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

FLOW = textwrap.dedent(
    """
    import json, sys
    from pydantic import SecretStr
    from blocks import Block
    from emitters import flow_run

    class Ledger(Block):
        token: SecretStr

        def read(self, key: str) -> str:
            if key == "missing":
                raise KeyError(f"no {key} with token {self.token.get_secret_value()}")
            return key

        def total(self) -> int:
            return len(self.read("a"))

    Ledger(token=sys.argv[1]).save("books", overwrite=True)
    ledger = Ledger.load("books")
    ids = {}
    with flow_run("monthly") as run:
        ledger.read("jan")
        ledger.total()
    ids["ok"] = run.id
    with flow_run("monthly") as run:
        ledger.read("feb")
        try:
            ledger.read("missing")
        except KeyError:
            pass
        ledger.read("mar")
    ids["bad"] = run.id
    print(json.dumps(ids))
    """
)


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVENTBLOCKS_HOME": str(home), "COLUMNS": "250"}
    env.pop("EVENTBLOCKS_EMITTERS", None)
    return subprocess.run(
        [sys.executable, "-m", "blocks", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the flow script once with nothing configured; return its home and runs."""
    home = tmp_path_factory.mktemp("events-home")
    script = home / "flow.py"
    script.write_text(FLOW)
    token = "tok-" + secrets.token_hex(8)
    env = {**os.environ, "EVENTBLOCKS_HOME": str(home)}
    env.pop("EVENTBLOCKS_EMITTERS", None)
    env.pop("EVENTBLOCKS_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, str(script), token],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return {"home": home, "token": token, **json.loads(done.stdout)}


def test_the_default_store_records_a_script_with_nothing_configured(
    story: dict[str, Any],
) -> None:
    """With no configuration, events reach the home database; events ls shows them."""
    done = _cli("events", "ls", "--json", "--limit", "100", home=story["home"])
    assert done.returncode == 0, done.stderr
    names = [e["event"] for e in json.loads(done.stdout)]
    assert names[:2] == ["block-document.saved", "block-document.loaded"]
    assert names.count("block.ledger.read.started") == 4
    assert names.count("block.ledger.read.failed") == 1
    assert (story["home"] / "eventblocks.db").is_file()


def test_events_ls_filters_and_table(story: dict[str, Any]) -> None:
    """events ls --failed shows the failure; the table names block and run."""
    done = _cli("events", "ls", "--failed", home=story["home"])
    assert done.returncode == 0, done.stderr
    assert "block.ledger.read.failed" in done.stdout
    assert "ledger/books" in done.stdout
    assert f"monthly ({story['bad']})" in done.stdout
    assert "block.ledger.read.succeeded" not in done.stdout
    limited = _cli("events", "ls", "--json", "--limit", "2", home=story["home"])
    assert [e["event"] for e in json.loads(limited.stdout)] == [
        "block.ledger.read.started",
        "block.ledger.read.succeeded",
    ]
    by_run = _cli(
        "events", "ls", "--json", "--flow-run", story["ok"], home=story["home"]
    )
    assert len(json.loads(by_run.stdout)) == 4
    named = _cli("events", "ls", "--json", "--name", "*.total.*", home=story["home"])
    assert [e["event"] for e in json.loads(named.stdout)] == [
        "block.ledger.total.started",
        "block.ledger.total.succeeded",
    ]
    recent = _cli("events", "ls", "--json", "--since", "1h", home=story["home"])
    assert len(json.loads(recent.stdout)) == 12


def test_events_timeline_marks_the_first_failure(story: dict[str, Any]) -> None:
    """events timeline lists calls in order with durations and marks the failure."""
    done = _cli("events", "timeline", "--flow-run", story["bad"], home=story["home"])
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "ledger/books" in line]
    assert len(lines) == 3
    assert "succeeded" in lines[0]
    assert "ms" in lines[0]
    assert "first failure" in lines[1]
    assert "KeyError" in lines[1]
    assert "first failure" not in lines[2]
    as_json = _cli(
        "events", "timeline", "--flow-run", story["bad"], "--json", home=story["home"]
    )
    records = json.loads(as_json.stdout)
    assert [(r["method"], r["outcome"], r["first_failure"]) for r in records] == [
        ("read", "succeeded", False),
        ("read", "failed", True),
        ("read", "succeeded", False),
    ]
    assert all(r["duration_ms"] >= 0 for r in records)
    whole = _cli(
        "events", "timeline", "--flow-run", story["ok"], "--json", home=story["home"]
    )
    # total() calls read() on the same block: only the outer call is recorded.
    assert [r["method"] for r in json.loads(whole.stdout)] == ["read", "total"]


def test_events_runs_shows_the_block_side(story: dict[str, Any]) -> None:
    """events runs --block lists each run with calls, failures and last error."""
    done = _cli(
        "events", "runs", "--block", "ledger/books", "--json", home=story["home"]
    )
    assert done.returncode == 0, done.stderr
    runs = {r["flow_run_id"]: r for r in json.loads(done.stdout)}
    assert runs[story["ok"]]["calls"] == 2
    assert runs[story["ok"]]["failures"] == 0
    assert runs[story["bad"]]["calls"] == 3
    assert runs[story["bad"]]["failures"] == 1
    assert runs[story["bad"]]["last_error_type"] == "KeyError"
    assert runs[story["bad"]]["flow_run_name"] == "monthly"
    table = _cli("events", "runs", "--block", "ledger/books", home=story["home"])
    assert story["bad"] in table.stdout
    assert "KeyError" in table.stdout


def test_no_secret_reaches_the_store_or_the_cli(story: dict[str, Any]) -> None:
    """The token in the failure's message is masked in the database and every output."""
    token = story["token"]
    outputs = [
        _cli("events", "ls", "--json", "--limit", "100", home=story["home"]).stdout,
        _cli(
            "events", "timeline", "--flow-run", story["bad"], home=story["home"]
        ).stdout,
    ]
    assert all(token not in out for out in outputs)
    assert "**********" in outputs[0]
    for path in story["home"].glob("eventblocks.db*"):
        assert token.encode() not in path.read_bytes()


@pytest.mark.parametrize("since", ["3x", "yesterday", "-2h", "h", "1.5h"])
def test_since_rejects_what_is_not_a_duration(
    story: dict[str, Any], since: str
) -> None:
    """--since takes 30m, 2h, 7d; anything else is a usage error naming the option."""
    done = _cli("events", "ls", "--since", since, home=story["home"])
    assert done.returncode == 2
    assert "--since" in done.stderr
    assert "30m" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_block_and_empty_results_are_clear(story: dict[str, Any]) -> None:
    """A malformed --block, a document or a run that does not exist: one error line."""
    bad = _cli("events", "runs", "--block", "Not A Block", home=story["home"])
    assert bad.returncode == 1
    assert bad.stderr.startswith("Error: block must be")
    assert "Traceback" not in bad.stderr
    none = _cli("events", "runs", "--block", "ledger/other", home=story["home"])
    assert none.returncode == 1
    assert "There is no ledger document named 'other'" in none.stderr
    empty = _cli("events", "timeline", "--flow-run", "nope", home=story["home"])
    assert empty.returncode == 1
    assert "No run matches 'nope'" in empty.stderr
    missing = _cli("events", "runs", home=story["home"])
    assert missing.returncode == 2
    assert "--block" in missing.stderr
