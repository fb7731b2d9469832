"""A burst with the default configuration: every event stored, and a prompt exit.

Run: ``python benchmarks/bench_burst.py [--calls N] [--json]``

A child process makes ``--calls`` calls (200,000 by default) of a trivial block
method in one flow run, one of them failing, with nothing configured: events go
to the SQL event store on a fresh SQLite home database. The child prints when
its loop ended; the parent measures from then until the child has exited (the
exit hook delivers what is queued), then counts the stored events. Budget: all
``2 x calls`` events stored, the failure among them, and the exit within 10 s of
the loop's end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BUDGET_S = 10.0

CHILD = """
import sys, time
from blocks import Block
from emitters import flow_run

class Tick(Block):
    def tick(self, i: int) -> int:
        if i == 1001:
            raise ValueError("the one failure")
        return i

block = Tick()
with flow_run("burst", id="run-burst"):
    for i in range({calls}):
        try:
            block.tick(i)
        except ValueError:
            pass
print(time.time(), flush=True)
"""


def measure(calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EVENTBLOCKS_")},
            "EVENTBLOCKS_HOME": home,
        }
        started = time.time()
        done = subprocess.run(
            [sys.executable, "-c", CHILD.format(calls=calls)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        exited = time.time()
        loop_end = float(done.stdout.strip().splitlines()[-1])
        from emitters.sql import SQLEventStore

        store = SQLEventStore(f"sqlite:///{Path(home) / 'eventblocks.db'}")
        stored = store.events(flow_run="run-burst", limit=10 * calls)
        failed = [e for e in stored if e.event.endswith(".failed")]
        store_lost = list(store.events(name="pipeline.events-lost"))
    exit_s = exited - loop_end
    return {
        "calls": calls,
        "expected_events": 2 * calls,
        "stored_events": len(stored),
        "failures_stored": len(failed),
        "loss_records": len(store_lost),
        "loop_s": loop_end - started,
        "exit_s": exit_s,
        "budget_s": BUDGET_S,
        "holds": len(stored) == 2 * calls and exit_s <= BUDGET_S,
        "stderr": done.stderr[-2000:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.calls)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"calls: {result['calls']:,} in one flow run, default configuration")
    print(
        f"events stored: {result['stored_events']:,} of {result['expected_events']:,}"
        f" (failures stored: {result['failures_stored']})"
    )
    print(f"loop: {result['loop_s']:.1f} s (with interpreter start)")
    verdict = "holds" if result["holds"] else "DOES NOT HOLD"
    print(f"exit after the loop: {result['exit_s']:.1f} s (budget {BUDGET_S:.0f} s)")
    print(f"budget: {verdict}")
    if result["stderr"]:
        print("child's stderr:", result["stderr"])


if __name__ == "__main__":
    main()
