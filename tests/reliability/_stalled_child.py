"""A child process for the load test: many block calls against a stalled sink.

Run: ``python _stalled_child.py CALLS POLICY``; prints one JSON object.

The sink's ``emit_batch`` blocks until released, so the main queue and the sink's
backlog fill up and everything after that must be dropped and counted. The child
measures its resident set size (``VmRSS``, and the peak from ``getrusage``) before
and after the calls, then releases the sink, flushes, and reports the counters, so
the parent can check that every event was either delivered or counted as dropped.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from collections.abc import Sequence

from blocks import Block
from emitters import Emitter, Event, configure, flush, stats


class Stalled(Emitter):
    """A sink that blocks in ``emit_batch`` until released, then counts events."""

    def __init__(self) -> None:
        super().__init__(name="stalled")
        self.entered = threading.Event()
        self.release = threading.Event()
        self.received = 0

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Block until released, then count the batch."""
        self.entered.set()
        self.release.wait()
        self.received += len(events)


class Probe(Block):
    """A block with one cheap method."""

    rows: int = 10

    def query(self, sql: str) -> int:
        """Return a number."""
        return self.rows + len(sql)


def rss_bytes() -> int:
    """Return this process's resident set size, from /proc (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def main() -> None:
    """Run the calls and print the measurements as JSON."""
    calls, policy = int(sys.argv[1]), sys.argv[2]
    sink = Stalled()
    configure(emitters=[sink], queue_size=10_000, on_full=policy)  # type: ignore[arg-type]
    probe = Probe()
    # Warm up until the sink is stuck and both queues are full.
    for _ in range(30_000):
        probe.query("select 1")
    sink.entered.wait(10)
    time.sleep(0.3)
    before = rss_bytes()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    for _ in range(calls):
        probe.query("select 1")
    seconds = time.perf_counter() - started
    time.sleep(0.3)  # let the dispatcher move what it can into the backlog
    after = rss_bytes()
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    stalled_stats = stats()
    sink.release.set()
    flushed = flush(30)
    final = stats()
    growth = max(after - before, peak_after - max(peak_before, before))
    print(
        json.dumps(
            {
                "calls": calls,
                "seconds": seconds,
                "rss_before_mb": before / 1e6,
                "rss_after_mb": after / 1e6,
                "growth_mb": growth / 1e6,
                "stalled": stalled_stats,
                "final": final,
                "flushed": flushed,
                "received": sink.received,
            }
        )
    )


if __name__ == "__main__":
    main()
