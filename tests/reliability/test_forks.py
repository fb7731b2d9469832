"""Forked children deliver what they emitted before they end, whatever ends them.

Each scenario runs a real parent process that starts 4 children (multiprocessing
fork and forkserver, ``os.fork``, a fork ``ProcessPoolExecutor``); every child
records its calls, then ends the way that start method ends it (multiprocessing
and its pools call ``os._exit()`` after their finalizers). The SQL event store in
the parent's home must hold every call of every child.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emitters.sql import SQLEventStore

CHILDREN = 4
CALLS = 1_500

SCRIPT = """
import os, sys, multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from blocks import Block
from emitters import configure, flow_run, flush
from emitters.sql import SQLEventStore


class Ledger(Block):
    def post(self, n: int) -> int:
        return n


def work(i: int) -> int:
    ledger = Ledger()
    with flow_run("forked", id=f"run-{i}"):
        for n in range(int(os.environ["CALLS"])):
            ledger.post(n)
    print("ended", flush=True)
    return i


if __name__ == "__main__":
    how = sys.argv[1]
    configure(emitters=[SQLEventStore()], exit_timeout=10.0)
    with flow_run("parent", id="run-parent"):
        Ledger().post(-1)
    assert flush(10)
    if how in ("fork", "forkserver"):
        ctx = mp.get_context(how)
        procs = [ctx.Process(target=work, args=(i,)) for i in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 4
    elif how == "os.fork":
        pids = []
        for i in range(4):
            pid = os.fork()
            if pid == 0:
                work(i)
                sys.exit(0)
            pids.append(pid)
        for pid in pids:
            assert os.waitpid(pid, 0)[1] == 0
    else:
        with ProcessPoolExecutor(4, mp_context=mp.get_context("fork")) as pool:
            assert sorted(pool.map(work, range(4), chunksize=1)) == [0, 1, 2, 3]
"""


@pytest.mark.parametrize("how", ["fork", "forkserver", "os.fork", "pool"])
def test_forked_children_deliver_what_they_emitted(tmp_path: Path, how: str) -> None:
    """4 children x 1,500 calls each: all stored, in a bounded time, no warning."""
    script = tmp_path / "forks.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTBLOCKS_")}
    env.update(
        EVENTBLOCKS_HOME=str(tmp_path / "home"),
        # A forkserver child starts afresh: it uses the default sinks.
        EVENTBLOCKS_EMITTERS="sql",
        CALLS=str(CALLS),
        PYTHONPATH=os.pathsep.join(sys.path),
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script), how],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "could not deliver" not in done.stderr
    assert done.stdout.count("ended") == CHILDREN
    store = SQLEventStore(f"sqlite:///{tmp_path / 'home' / 'eventblocks.db'}")
    stored = [len(store.timeline(f"run-{i}")) for i in range(CHILDREN)]
    assert stored == [CALLS] * CHILDREN
    assert len(store.timeline("run-parent")) == 1
    assert elapsed < 60
