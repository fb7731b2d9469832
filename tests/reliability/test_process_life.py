"""Process life: events queued at exit are delivered within the exit timeout, and a
process killed with SIGKILL loses at most what was still in memory.

Every scenario runs a real child process (``python -c``) with its own
eventblocks home, and checks from outside what reached the sinks.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from emitters import Event
from emitters.sql import SQLEventStore

PRELUDE = """
import os, sys, threading, time
from pathlib import Path
from blocks import Block
from emitters import Emitter, configure, flow_run, flush
from emitters.file import FileEmitter
from emitters.sql import SQLEventStore

HOME = Path(os.environ["EVENTBLOCKS_HOME"])


class Ledger(Block):
    def post(self, n: int) -> int:
        if n < 0:
            raise ValueError("negative")
        return n
"""


def _child(code: str, home: Path, **env_: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTBLOCKS_")}
    env.update({"EVENTBLOCKS_HOME": str(home), "EVENTBLOCKS_EMITTERS": "none"}, **env_)
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def _lines(path: Path) -> list[Event]:
    return [
        Event.model_validate_json(line) for line in path.read_bytes().split(b"\n")[:-1]
    ]


ENDINGS = {
    "returns": "",
    "raises": "raise RuntimeError('the flow failed')",
    "sys.exit(3)": "sys.exit(3)",
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_events_queued_at_exit_are_delivered(tmp_path: Path, ending: str) -> None:
    """A script ending without flush (return, raise, exit) delivers every event."""
    code = f"""
    configure(
        emitters=[FileEmitter(HOME / "events.jsonl"), SQLEventStore()],
    )
    ledger = Ledger()
    with flow_run("nightly", id="run-exit"):
        for i in range(5_000):
            ledger.post(i)
    {ENDINGS[ending]}
    """
    done = _child(code, tmp_path)
    assert done.returncode == {"returns": 0, "raises": 1, "sys.exit(3)": 3}[ending]
    assert "could not deliver" not in done.stderr
    assert len(_lines(tmp_path / "events.jsonl")) == 10_000
    store = SQLEventStore(f"sqlite:///{tmp_path / 'eventblocks.db'}")
    assert len(store.timeline("run-exit")) == 5_000


def test_the_default_store_has_a_scripts_events_after_it_exits(tmp_path: Path) -> None:
    """With nothing configured, a script's calls are in the home store once it exits."""
    code = """
    ledger = Ledger()
    with flow_run("nightly", id="run-default"):
        for i in range(300):
            ledger.post(i)
        try:
            ledger.post(-1)
        except ValueError:
            pass
    """
    done = _child(code, tmp_path, EVENTBLOCKS_EMITTERS="")
    assert done.returncode == 0, done.stderr
    calls = SQLEventStore(f"sqlite:///{tmp_path / 'eventblocks.db'}").timeline(
        "run-default"
    )
    assert [c.outcome for c in calls] == ["succeeded"] * 300 + ["failed"]


def test_a_hung_sink_cannot_hold_the_exit_beyond_its_timeout(tmp_path: Path) -> None:
    """A hung sink holds the exit for exit_timeout at most; other sinks get all."""
    code = """
    class Hung(Emitter):
        def emit_batch(self, events):
            threading.Event().wait()

    configure(
        emitters=[Hung(), FileEmitter(HOME / "events.jsonl")],
        exit_timeout=1.0,
    )
    ledger = Ledger()
    for i in range(2_000):
        ledger.post(i)
    """
    # Without the exit timeout the child would hang until _child's own timeout.
    done = _child(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "could not deliver every event and close every sink within 1.0s" in (
        done.stderr
    )
    assert len(_lines(tmp_path / "events.jsonl")) == 4_000


def test_sigterm_with_a_handler_that_exits_delivers_queued_events(
    tmp_path: Path,
) -> None:
    """A SIGTERM handler that calls sys.exit runs the exit hook: nothing is lost."""
    code = """
    import signal
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    configure(emitters=[SQLEventStore()], flush_interval=60)
    ledger = Ledger()
    with flow_run("nightly", id="run-term"):
        for i in range(1_000):
            ledger.post(i)
    print("ready", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
    """
    done = _child(code, tmp_path)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    store = SQLEventStore(f"sqlite:///{tmp_path / 'eventblocks.db'}")
    assert len(store.timeline("run-term")) == 1_000


KILLED = """
configure(
    emitters=[FileEmitter(HOME / "events.jsonl"), SQLEventStore()],
)
ledger = Ledger()
with flow_run("nightly", id="run-kill"):
    i = 0
    while True:
        ledger.post(i)
        i += 1
        if i % 500 == 0:
            assert flush(10)
            print(i, flush=True)
"""


def test_sigkill_loses_at_most_what_was_in_memory(tmp_path: Path) -> None:
    """After SIGKILL flushed calls are stored, files readable, writes go on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTBLOCKS_")}
    env.update({"EVENTBLOCKS_HOME": str(tmp_path), "EVENTBLOCKS_EMITTERS": "none"})
    child = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + KILLED],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    acknowledged = 0
    try:
        while acknowledged < 5_000:
            line = child.stdout.readline()
            assert line, child.stderr.read() if child.stderr else ""
            acknowledged = int(line)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        child.stdout.close()
        if child.stderr is not None:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    database = tmp_path / "eventblocks.db"
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    store = SQLEventStore(f"sqlite:///{database}")
    calls = store.timeline("run-kill")
    assert len(calls) >= acknowledged
    assert all(c.outcome == "succeeded" for c in calls[:acknowledged])
    assert len({c.event_id for c in calls}) == len(calls)
    # Every line of the file is a whole event, and the flushed calls are there.
    events = _lines(tmp_path / "events.jsonl")
    assert len(events) >= 2 * acknowledged
    # The killed process left no lock behind: a new writer gets through.
    extra = events[0].model_copy(update={"id": uuid.uuid4()})
    store.emit_batch([extra])
    assert extra in store.events(resource_id=extra.resource.id, limit=None)
