"""Memory stays bounded: 1,000,000 block calls against a sink that never returns.

Run: ``python benchmarks/bench_memory.py [--calls N] [--max-buffer-bytes B] [--json]``

The sink's ``emit_batch`` blocks until the calls are done, so nothing is
delivered meanwhile: the buffer of queued records fills up to its byte budget
(64 MiB by default) and is then shed, the ``started`` halves of successful calls
first, then whole successful calls, failures last; every loss is counted. One
call in the middle fails: it must survive. The figure is the growth of the
process's resident set size (``VmRSS``) from just before the calls to just after,
and the rise of the peak RSS over the same span (the larger of the two counts).
Budget (docs/performance.md): under 100 MB with the byte budget full.

Then the sink is released and the pipeline flushed, and the JSON output also gives
the counters before and after (``stalled``, ``final``), how many events the sink
received, whether the failed call arrived and what the ``pipeline.events-lost``
records said, so that a test can check that every event was either delivered or
counted and recorded as lost (the reliability suite runs this script as its load
test).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import threading
import time
from collections.abc import Sequence
from typing import Any

from blocks import Block
from emitters import Emitter, Event, configure, flush, stats

BUDGET_MB = 100.0
WARMUP_CALLS = 50_000
# The one call that fails, counted from the start of the measured calls.
FAILING_CALL = 1001


class StalledEmitter(Emitter):
    """A sink whose ``emit_batch`` does not return until released; then it counts."""

    def __init__(self) -> None:
        super().__init__(name="stalled")
        self.release = threading.Event()
        self.entered = threading.Event()
        self.received = 0
        self.failed_calls = 0
        self.lost_records: list[dict[str, Any]] = []

    def emit_batch(self, events: Sequence[Event]) -> None:
        self.entered.set()
        self.release.wait()
        self.received += len(events)
        for event in events:
            if event.event.endswith(".failed"):
                self.failed_calls += 1
            elif event.event == "pipeline.events-lost":
                self.lost_records.append(dict(event.payload))


class Probe(Block):
    rows: int = 10

    def query(self, sql: str) -> int:
        if sql == "fail":
            raise ValueError("the one failure")
        return self.rows + len(sql)


def rss_bytes() -> int:
    """Return this process's resident set size, from /proc (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def measure(calls: int, max_buffer_bytes: int | None = None) -> dict[str, Any]:
    sink = StalledEmitter()
    configure(emitters=[sink], max_buffer_bytes=max_buffer_bytes)
    probe = Probe()
    # Warm up: the sink is stuck from the first batch on, the queues fill up.
    for _ in range(WARMUP_CALLS):
        probe.query("select 1")
    sink.entered.wait(10)
    time.sleep(0.5)
    before_stats = stats()
    before = rss_bytes()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    for i in range(calls):
        if i == FAILING_CALL:
            with contextlib.suppress(ValueError):
                probe.query("fail")
        else:
            probe.query("select 1")
    elapsed = time.perf_counter() - started
    time.sleep(0.5)  # let the dispatcher drain what it can into the backlog
    after = rss_bytes()
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    after_stats = stats()
    sink.release.set()
    flushed = flush(30)
    final_stats = stats()
    configure(emitters=[])
    emitted = after_stats["emitted"] - before_stats["emitted"]
    dropped = after_stats["dropped"] - before_stats["dropped"]
    # The peak can only have risen during the calls; count the larger of the two.
    growth_mb = max(after - before, peak_after - max(peak_before, before)) / 1e6
    return {
        "calls": calls,
        "events_emitted": emitted,
        "events_dropped": dropped,
        "dropped_by_emitter": after_stats["dropped_by_emitter"],
        "delivered": after_stats["delivered"],
        "rss_before_mb": before / 1e6,
        "rss_after_mb": after / 1e6,
        "peak_rss_mb": peak_after / 1e6,
        "growth_mb": growth_mb,
        "budget_mb": BUDGET_MB,
        "holds": growth_mb < BUDGET_MB,
        "seconds": elapsed,
        "max_buffer_bytes": max_buffer_bytes or 64 * 1024 * 1024,
        "warmup_calls": WARMUP_CALLS,
        "stalled": after_stats,
        "final": final_stats,
        "flushed": flushed,
        "received": sink.received,
        "failed_calls_received": sink.failed_calls,
        "lost_records": sink.lost_records,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--max-buffer-bytes", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.calls, args.max_buffer_bytes)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"calls: {result['calls']:,} against a sink that never returns")
    print(f"events emitted: {result['events_emitted']:,}")
    print(f"events dropped (counted by stats()): {result['events_dropped']:,}")
    recorded = sum(r["lost"] for r in result["lost_records"])
    print(f"losses recorded in pipeline.events-lost events: {recorded:,}")
    print(f"the failed call arrived: {result['failed_calls_received'] == 1}")
    verdict = "holds" if result["holds"] else "DOES NOT HOLD"
    print(
        f"resident memory: {result['rss_before_mb']:.1f} MB -> "
        f"{result['rss_after_mb']:.1f} MB (peak {result['peak_rss_mb']:.1f} MB)"
    )
    print(
        f"growth {result['growth_mb']:.1f} MB (budget < {BUDGET_MB:.0f} MB): {verdict}"
    )


if __name__ == "__main__":
    main()
