"""``eventblocks runs``: a script's runs listed and shown through the CLI, found by
name, short id, prefix and full id; the error cases; ``events --flow-run`` forms.

A script makes three runs in a subprocess with nothing configured (the embedded
default store); the CLI then runs in other subprocesses on the same home.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

PREFECT_ID = "3f2b8c1e-9d4a-4c55-8e21-7a6b5c4d3e2f"

FLOW = textwrap.dedent(
    f"""
    import json
    from blocks import Block
    from emitters import flow_run, task_run

    class Ledger(Block):
        shelf: str = "a"

        def read(self, key: str) -> str:
            if key == "missing":
                raise KeyError(key)
            return key

    Ledger().save("books", overwrite=True)
    ledger = Ledger.load("books")
    ids = {{}}
    with flow_run("nightly-etl", labels={{"team": "data"}}) as run:
        with task_run("extract"):
            ledger.read("a")
        ledger.read("b")
    ids["ok"] = run.id
    with flow_run("nightly-etl", labels={{"team": "data"}}) as run:
        with task_run("load") as task:
            try:
                ledger.read("missing")
            except KeyError:
                pass
            ledger.read("c")
        ids["task"] = task.id
    ids["bad"] = run.id
    # A run that an orchestrator's provider reports (Prefect's, as seen here).
    from emitters import Run, RunContext, register_run_context_provider

    class FromPrefect:
        def current_run_context(self):
            run = Run(
                "{PREFECT_ID}", "orders-flow", {{"deployment": "orders/prod"}},
                source="prefect",
            )
            return RunContext(run)

    remove = register_run_context_provider(FromPrefect())
    ledger.read("x")
    remove()
    print(json.dumps(ids))
    """
)


def _cli(
    *args: str, home: Path, columns: int = 250
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVENTBLOCKS_HOME": str(home), "COLUMNS": str(columns)}
    env.pop("EVENTBLOCKS_EMITTERS", None)
    env.pop("EVENTBLOCKS_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "blocks", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _json(*args: str, home: Path) -> Any:
    done = _cli(*args, "--json", home=home)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the flow script once; return its home and its run ids."""
    home = tmp_path_factory.mktemp("runs-home")
    script = home / "flow.py"
    script.write_text(FLOW)
    env = {**os.environ, "EVENTBLOCKS_HOME": str(home)}
    env.pop("EVENTBLOCKS_EMITTERS", None)
    env.pop("EVENTBLOCKS_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return {"home": home, **json.loads(done.stdout)}


def test_runs_ls_json_field_by_field(story: dict[str, Any]) -> None:
    """runs ls --json: latest first, each field of each summary as stored."""
    runs = _json("runs", "ls", home=story["home"])
    assert [r["id"] for r in runs] == [PREFECT_ID, story["bad"], story["ok"]]
    orders, bad, ok = runs
    assert set(ok) == {
        "id",
        "short_id",
        "name",
        "source",
        "labels",
        "started",
        "last_event",
        "duration_s",
        "calls",
        "failures",
        "first_failure",
        "events_lost",
        "infrastructure_events",
    }
    assert ok["short_id"] == uuid.UUID(story["ok"]).hex[-8:]
    assert (ok["name"], ok["source"], ok["labels"]) == (
        "nightly-etl",
        "eventblocks",
        {"team": "data"},
    )
    assert (ok["calls"], ok["failures"], ok["first_failure"]) == (2, 0, None)
    assert (ok["events_lost"], ok["infrastructure_events"]) == (0, 0)
    started = datetime.fromisoformat(ok["started"])
    last = datetime.fromisoformat(ok["last_event"])
    assert started.tzinfo is not None
    assert ok["duration_s"] == pytest.approx((last - started).total_seconds())
    assert (bad["calls"], bad["failures"]) == (2, 1)
    failure = bad["first_failure"]
    assert failure["block"] == "ledger/books"
    assert failure["method"] == "read"
    assert failure["error_type"].endswith("KeyError")
    assert datetime.fromisoformat(failure["occurred"]) >= datetime.fromisoformat(
        bad["started"]
    )
    assert (orders["source"], orders["labels"]) == (
        "prefect",
        {"deployment": "orders/prod"},
    )
    assert orders["short_id"] == "7a6b5c4d3e2f"[-8:]


def test_runs_ls_filters(story: dict[str, Any]) -> None:
    """--name, --failed, --source, --since and --limit narrow the list."""
    home = story["home"]

    def ids(*args: str) -> list[str]:
        return [r["id"] for r in _json("runs", "ls", *args, home=home)]

    assert ids("--name", "nightly-*") == [story["bad"], story["ok"]]
    assert ids("--failed") == [story["bad"]]
    assert ids("--source", "prefect") == [PREFECT_ID]
    assert ids("--limit", "1") == [PREFECT_ID]
    assert len(ids("--since", "1h")) == 3
    assert ids("--name", "nothing-*") == []
    bad_since = _cli("runs", "ls", "--since", "yesterday", home=home)
    assert bad_since.returncode == 2
    assert "--since takes a duration" in bad_since.stderr


def test_runs_ls_table_fits_80_columns(story: dict[str, Any]) -> None:
    """At 80 columns each line fits; short ids, names and the failure show."""
    done = _cli("runs", "ls", home=story["home"], columns=80)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    short_bad = uuid.UUID(story["bad"]).hex[-8:]
    row = next(line for line in lines if line.startswith(short_bad))
    assert "nightly-etl" in row
    assert "ledger/books.read:" in done.stdout
    assert story["ok"] not in done.stdout  # the full id does not wrap the table
    empty = _cli("runs", "ls", "--name", "nothing-*", home=story["home"])
    assert empty.stdout.strip() == "No runs match."


def test_runs_show_finds_a_run_by_each_form(story: dict[str, Any]) -> None:
    """Full id, short id, unique prefix and name show the same run."""
    home, bad = story["home"], story["bad"]
    forms = [bad, uuid.UUID(bad).hex[-8:], "nightly-etl", f"flow-run.{bad}"]
    shown = [_json("runs", "show", form, home=home) for form in forms]
    assert all(s == shown[0] for s in shown)
    assert _json("runs", "show", PREFECT_ID[:6], home=home)["run"]["id"] == PREFECT_ID
    run, calls = shown[0]["run"], shown[0]["calls"]
    assert (run["id"], run["name"], run["calls"], run["failures"]) == (
        bad,
        "nightly-etl",
        2,
        1,
    )
    assert [
        (c["block"], c["method"], c["outcome"], c["first_failure"]) for c in calls
    ] == [
        ("ledger/books", "read", "failed", True),
        ("ledger/books", "read", "succeeded", False),
    ]
    assert {c["task_run_id"] for c in calls} == {story["task"]}
    assert {c["task_run_name"] for c in calls} == {"load"}
    assert calls[0]["error_type"].endswith("KeyError")
    assert calls[0]["duration_ms"] >= 0


def test_runs_show_table_groups_calls_under_task_runs(story: dict[str, Any]) -> None:
    """The header names the run; calls sit under their task run; first failure."""
    done = _cli("runs", "show", "nightly-etl", home=story["home"], columns=80)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    assert story["bad"] in out
    assert "team=data" in out
    assert f"load ({uuid.UUID(story['task']).hex[-8:]})" in out
    assert "  ledger/books.read" in out
    assert "<- first failure" in out
    ok = _cli("runs", "show", story["ok"], home=story["home"]).stdout
    lines = ok.splitlines()
    extract = next(i for i, line in enumerate(lines) if "extract (" in line)
    # The call of the task run, indented under it, then the call made outside it.
    inside = lines[extract + 1].index("ledger/books.read")
    outside = lines[extract + 2].index("ledger/books.read")
    assert inside == outside + 2


def test_a_run_that_matches_nothing_or_several_is_an_error(
    story: dict[str, Any],
) -> None:
    """Exit 1, one line: what was tried, and the candidates."""
    home = story["home"]
    missing = _error(_cli("runs", "show", "nightly-elt", home=home))
    assert "No run matches 'nightly-elt'" in missing
    assert "tried: full id, short id, id prefix, run name" in missing
    assert "Did you mean 'nightly-etl'" in missing
    # UUIDv7 ids of the same minute share their first 8 characters.
    shared = story["ok"][:8]
    assert story["bad"].startswith(shared)
    ambiguous = _error(_cli("runs", "show", shared, home=home))
    assert "ambiguous" in ambiguous
    assert story["ok"] in ambiguous
    assert story["bad"] in ambiguous
    short = _error(_cli("runs", "show", "3f2b", home=home))
    assert "needs 6 characters" in short


def test_events_commands_take_the_same_run_forms(story: dict[str, Any]) -> None:
    """events timeline/ls --flow-run accept a name or short id; unknown fails."""
    home = story["home"]
    timeline = _json("events", "timeline", "--flow-run", "nightly-etl", home=home)
    assert [c["outcome"] for c in timeline] == ["failed", "succeeded"]
    short = uuid.UUID(story["ok"]).hex[-8:]
    events = _json("events", "ls", "--flow-run", short, home=home)
    assert len(events) == 4
    for event in events:
        runs = [r for r in event["related"] if r["role"] == "flow-run"]
        assert runs[0]["id"] == f"flow-run.{story['ok']}"
    line = _error(_cli("events", "timeline", "--flow-run", "no-such-run", home=home))
    assert "No run matches 'no-such-run'" in line
    _error(_cli("events", "ls", "--flow-run", "no-such-run", home=home))


def test_events_runs_of_a_document_that_does_not_exist(story: dict[str, Any]) -> None:
    """A misspelt document or type is an error naming the close ones."""
    home = story["home"]
    runs = _json("events", "runs", "--block", "ledger/books", home=home)
    assert [r["flow_run_id"] for r in runs] == [story["ok"], story["bad"], PREFECT_ID]
    line = _error(_cli("events", "runs", "--block", "ledger/bookz", home=home))
    assert "no ledger document named 'bookz'" in line
    assert "Did you mean 'books'" in line
    line = _error(_cli("events", "runs", "--block", "ledgr/books", home=home))
    assert "no block type 'ledgr'" in line
    assert "'ledger'" in line


def test_type_ls_lists_the_built_in_types_on_a_fresh_home(tmp_path: Path) -> None:
    """Nothing registered: the SDK's own types are listed, marked built-in."""
    listed = _json("type", "ls", home=tmp_path / "fresh")
    by_slug = {t["slug"]: t for t in listed}
    for slug in ("s3-bucket", "aws-credentials", "sqlalchemy-connector", "secret"):
        assert by_slug[slug]["built_in"] is True
        assert by_slug[slug]["registered"] is False
        assert by_slug[slug]["documents"] == 0
    assert by_slug["s3-bucket"]["class_path"] == "blocks.aws:S3Bucket"
    table = _cli("type", "ls", home=tmp_path / "fresh").stdout
    assert "s3-bucket (built-in)" in table


def test_runs_ls_says_when_events_were_lost(
    story: dict[str, Any], tmp_path: Path
) -> None:
    """A run whose summary counts lost events says "N lost" in the listing."""
    home = tmp_path / "copy"
    home.mkdir()
    for name in ("eventblocks.db", "eventblocks.db-wal"):
        if (story["home"] / name).exists():
            shutil.copy(story["home"] / name, home / name)
    with sqlite3.connect(home / "eventblocks.db") as db:
        db.execute(
            "UPDATE eventblocks_runs SET events_lost = 3 WHERE id = ?", (story["ok"],)
        )
        db.execute(
            "UPDATE eventblocks_runs SET events_lost = 2 WHERE id = ?", (story["bad"],)
        )
    lines = _cli("runs", "ls", home=home).stdout.splitlines()
    ok_line = next(line for line in lines if uuid.UUID(story["ok"]).hex[-8:] in line)
    bad_line = next(line for line in lines if uuid.UUID(story["bad"]).hex[-8:] in line)
    assert ok_line.rstrip().endswith("3 lost")
    assert "KeyError; 2 lost" in bad_line
    listed = {r["id"]: r for r in _json("runs", "ls", home=home)}
    assert listed[story["ok"]]["events_lost"] == 3


INFRA_FLOW = textwrap.dedent(
    """
    import json, time
    from datetime import UTC, datetime
    from blocks import Block
    from emitters import emit_event, flow_run, observed_event_id, related_runs

    class Loader(Block):
        def fetch(self, key: str) -> str:
            if key == "late":
                raise TimeoutError("the pod is gone")
            return key

    def pod(phase: str, reason: str) -> None:
        emit_event(
            f"infra.kubernetes.pod.{phase}",
            {"id": "kubernetes-pod.9f1c", "name": "etl/loader-7d9"},
            related=related_runs({"eventblocks.io/flow-run-id": run.id}),
            payload={"reason": reason},
            id=observed_event_id("kubernetes", "9f1c", phase),
            occurred=datetime.now(UTC),
            context=False,
        )

    with flow_run("loader") as run:
        Loader().fetch("a")
        time.sleep(0.01)
        pod("running", "Started")
        time.sleep(0.01)
        pod("evicted", "Evicted")
        time.sleep(0.01)
        try:
            Loader().fetch("late")
        except TimeoutError:
            pass
    print(run.id)
    """
)


def test_runs_show_puts_infrastructure_beside_the_calls(tmp_path: Path) -> None:
    """A pod's eviction shows in the run's timeline among its calls, and is the
    run's first failure because it came before the failed call."""
    script = tmp_path / "flow.py"
    script.write_text(INFRA_FLOW)
    env = {**os.environ, "EVENTBLOCKS_HOME": str(tmp_path)}
    env.pop("EVENTBLOCKS_EMITTERS", None)
    env.pop("EVENTBLOCKS_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env,
        timeout=60, check=True,
    )  # fmt: skip
    run_id = done.stdout.split()[-1]
    shown = _json("runs", "show", run_id, home=tmp_path)
    infra = shown["infrastructure"]
    assert [e["event"] for e in infra] == [
        "infra.kubernetes.pod.running",
        "infra.kubernetes.pod.evicted",
    ]
    assert [e["failure"] for e in infra] == [None, "evicted"]
    assert [e["first_failure"] for e in infra] == [False, True]
    assert [c["outcome"] for c in shown["calls"]] == ["succeeded", "failed"]
    assert not any(c["first_failure"] for c in shown["calls"])
    summary = shown["run"]
    assert summary["infrastructure_events"] == 2
    assert summary["failures"] == 2  # the failed call and the eviction
    assert summary["first_failure"]["error_type"] == "evicted"
    assert summary["first_failure"]["block"] == "etl/loader-7d9"
    table = _cli("runs", "show", run_id, home=tmp_path, columns=80).stdout
    lines = table.splitlines()
    evicted = next(
        i
        for i, line in enumerate(lines)
        if "[etl/loader-7d9]" in line and "evicted" in line
    )
    failed = next(i for i, line in enumerate(lines) if "TimeoutError" in line)
    assert lines[evicted].startswith("infra")
    assert "<- first failure" in lines[evicted]
    assert "first failure" not in lines[failed]
    assert evicted < failed
