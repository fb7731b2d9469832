"""Throughput of HttpEmitter into a local receiver, batched and gzip-compressed.

Run: ``python benchmarks/bench_http.py [--calls N] [--repeats R] [--json]``

Each repetition makes N block method calls (two events each: started and
succeeded) through the pipeline into an ``HttpEmitter`` with gzip, and times the
wall clock from the first call until ``flush()`` has returned and the receiver has
counted every event. The figure is the median of R repetitions, in events per
second, against the budget of docs/performance.md: at least 50,000 events/s.

The receiver runs in a child process (a real receiver is another program, and in
this process it would compete for the interpreter lock): a standard library
``ThreadingHTTPServer`` with keep-alive that reads each body and answers 204 at
once, while a thread of its own decompresses each body, parses the JSON and counts
the events (a collector that queues what it receives). The clock stops when that
count reaches every event emitted. For scale, each repetition also times the same
calls into a sink that does nothing (the pipeline's own cost, the ceiling for any
sink in this run). The pipeline's queue is sized to hold every
event of a repetition, so nothing is dropped; the report shows drops and failures
anyway.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from blocks import Block
from emitters import Emitter, Event, configure, flush, stats
from emitters.http import HttpEmitter

BUDGET_EVENTS_PER_S = 50_000.0


class NullEmitter(Emitter):
    """A sink that takes every batch and does nothing: the pipeline's own cost."""

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Drop the batch."""


class Probe(Block):
    """A block whose method does almost nothing, so the sink's cost shows."""

    rows: int = 10

    def query(self, sql: str) -> int:
        return self.rows + len(sql)


# -- the receiver (child process) ----------------------------------------------------


class _Counter:
    """Decompresses, parses and counts batches on a thread of its own.

    The request handler acknowledges a batch as soon as it has read it, as a
    collector that queues what it receives does, so the sender's next batch
    overlaps with this thread's parsing; the parent stops its clock only once this
    thread has counted every event.
    """

    def __init__(self) -> None:
        self.events = 0
        self.requests = 0
        self.bytes_received = 0
        # Delivery is at least once: a batch retried after a timeout under load
        # may arrive twice. Events are counted once each, as a receiver would.
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.inbox: queue.SimpleQueue[tuple[bytes, bool]] = queue.SimpleQueue()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            raw, compressed = self.inbox.get()
            body = gzip.decompress(raw) if compressed else raw
            ids = [event["id"] for event in json.loads(body)["events"]]
            with self.lock:
                new = set(ids) - self.seen
                self.seen |= new
                self.events += len(new)
                self.requests += 1
                self.bytes_received += len(raw)

    def reset(self) -> None:
        with self.lock:
            self.events = self.requests = self.bytes_received = 0
            self.seen.clear()

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {
                "events": self.events,
                "requests": self.requests,
                "bytes": self.bytes_received,
            }


def _receiver_handler(counter: _Counter) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silence: the parent reads this process's stdout."""

        def _reply(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def do_POST(self) -> None:
            """Take a batch for counting; /reset zeroes the counts."""
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/reset":
                counter.reset()
            else:
                counter.inbox.put((raw, self.headers.get("Content-Encoding") == "gzip"))
            self._reply(204)

        def do_GET(self) -> None:
            """Return the counts as JSON."""
            self._reply(200, json.dumps(counter.snapshot()).encode())

    return Receiver


def run_receiver() -> None:
    """Serve until stdin closes; print the port first."""
    # The counting thread holds the interpreter lock while it parses; hand it
    # over often, so that acknowledging a batch never waits for a parse.
    sys.setswitchinterval(0.0002)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _receiver_handler(_Counter()))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()
    server.server_close()


# -- the sender (this process) -------------------------------------------------------


class _GcClock:
    """Adds up the time the cyclic garbage collector runs (any thread)."""

    def __init__(self) -> None:
        self.total_ns = 0
        self._started = 0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
        else:
            self.total_ns += time.perf_counter_ns() - self._started


_gc_clock = _GcClock()


def _cpu_seconds(pid: int) -> float | None:
    """Return a process's user + system CPU time, from /proc (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_for_count(control: httpx.Client, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        got = int(control.get("/count").json()["events"])
        if got >= expected or time.monotonic() > deadline:
            return got
        # Each poll is a request of this process: keep them rare enough not to
        # compete with the sink for the interpreter.
        time.sleep(0.005)


def _repetition(
    probe: Probe, calls: int, sink: HttpEmitter, control: httpx.Client, pid: int
) -> dict[str, Any]:
    """Time one repetition: the calls, flush(), and the receiver's count."""
    expected = 2 * calls
    control.post("/reset")
    before = stats()
    r0 = _cpu_seconds(pid)
    c0 = time.process_time()
    g0 = _gc_clock.total_ns
    t0 = time.perf_counter()
    for _ in range(calls):
        probe.query("select 1")
    t1 = time.perf_counter()
    if not flush(timeout=None):
        raise RuntimeError("flush() did not complete")
    got = _wait_for_count(control, expected, timeout=60.0)
    t2 = time.perf_counter()
    c1 = time.process_time()
    r1 = _cpu_seconds(pid)
    after = stats()
    counts = control.get("/count").json()
    name = sink.name
    return {
        "wall": t2 - t0,
        "caller": t1 - t0,
        "sender_cpu": c1 - c0,
        "sender_gc": (_gc_clock.total_ns - g0) / 1e9,
        "receiver_cpu": None if r0 is None or r1 is None else r1 - r0,
        "received": got,
        "requests": int(counts["requests"]),
        "bytes": int(counts["bytes"]),
        "dropped": after["dropped"] - before["dropped"],
        "failed": after["failed"].get(name, 0) - before["failed"].get(name, 0),
    }


def _null_repetition(probe: Probe, calls: int) -> float:
    """Time the same calls into a sink that does nothing, until flush() returns."""
    configure(emitters=[NullEmitter()])
    flush(timeout=None)
    t0 = time.perf_counter()
    for _ in range(calls):
        probe.query("select 1")
    flush(timeout=None)
    return time.perf_counter() - t0


def measure(
    calls: int, repeats: int, gzip_level: int, batch_size: int
) -> dict[str, Any]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--receiver"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    port = int(child.stdout.readline())
    base = f"http://127.0.0.1:{port}"
    expected = 2 * calls
    probe = Probe()
    runs: list[dict[str, Any]] = []
    try:
        with httpx.Client(base_url=base) as control:
            for _ in range(repeats):
                # A new sink per repetition, its connection opened by a warm-up
                # call before the clock starts. The queue holds a whole
                # repetition, so nothing is dropped.
                sink = HttpEmitter(f"{base}/events", gzip_level=gzip_level)
                configure(emitters=[sink], batch_size=batch_size)
                probe.query("warm up")
                flush(timeout=None)
                runs.append(_repetition(probe, calls, sink, control, child.pid))
                if sink.spooled or sink.dropped or sink.rejected:
                    raise RuntimeError("the sink spooled, dropped or rejected events")
                # Alternating with the null sink, so a noisy moment hits both.
                runs[-1]["null_wall"] = _null_repetition(probe, calls)
            configure(emitters=[])
    finally:
        child.stdin.close()
        child.wait(10)
        child.stdout.close()

    def median(key: str) -> float:
        return float(statistics.median(run[key] for run in runs))

    receiver_cpu = [r["receiver_cpu"] for r in runs if r["receiver_cpu"] is not None]
    rate = expected / median("wall")
    return {
        "calls": calls,
        "events": expected,
        "repeats": repeats,
        "gzip_level": gzip_level,
        "batch_size": batch_size,
        "wall_s": median("wall"),
        "caller_s": median("caller"),
        "sender_cpu_us_per_event": median("sender_cpu") / expected * 1e6,
        "sender_gc_us_per_event": median("sender_gc") / expected * 1e6,
        "receiver_cpu_us_per_event": (
            statistics.median(receiver_cpu) / expected * 1e6 if receiver_cpu else None
        ),
        "events_per_s": rate,
        "null_sink_events_per_s": expected / median("null_wall"),
        "http_vs_null_sink": rate / (expected / median("null_wall")),
        "budget_events_per_s": BUDGET_EVENTS_PER_S,
        "ratio_to_budget": rate / BUDGET_EVENTS_PER_S,
        "received_events": min(r["received"] for r in runs),
        "requests": median("requests"),
        "wire_bytes_per_event": median("bytes") / expected,
        "dropped": sum(r["dropped"] for r in runs),
        "failed": sum(r["failed"] for r in runs),
    }


def _us(value: float | None) -> str:
    return "       n/a" if value is None else f"{value:10.1f} us"


def report(result: dict[str, Any]) -> str:
    holds = result["events_per_s"] >= result["budget_events_per_s"]
    return "\n".join(
        [
            f"block calls per repetition: {result['calls']:,} "
            f"({result['events']:,} events), repetitions: {result['repeats']} "
            "(medians)",
            f"batch size {result['batch_size']}, gzip level {result['gzip_level']}, "
            f"{result['requests']:.0f} requests, "
            f"{result['wire_bytes_per_event']:.1f} bytes per event on the wire",
            "",
            f"  caller's loop              {result['caller_s'] * 1000:10.1f} ms",
            f"  until all were received    {result['wall_s'] * 1000:10.1f} ms",
            f"  events received            {result['received_events']:10,}",
            f"  sender CPU per event       {_us(result['sender_cpu_us_per_event'])}",
            f"    of which the collector   {_us(result['sender_gc_us_per_event'])}",
            f"  receiver CPU per event     {_us(result['receiver_cpu_us_per_event'])}",
            f"  dropped / failed           {result['dropped']:>5} / {result['failed']}",
            "",
            f"  same calls into a sink that does nothing: "
            f"{result['null_sink_events_per_s']:,.0f} events/s; the HTTP sink runs "
            f"at {result['http_vs_null_sink']:.2f}x that",
            "",
            "budget                       measured     budget   ratio   holds",
            f"  events/s                 {result['events_per_s']:10,.0f} "
            f"{result['budget_events_per_s']:10,.0f}  "
            f"{result['ratio_to_budget']:5.2f}x   {'yes' if holds else 'NO'}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gzip-level", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        run_receiver()
        return
    result = measure(args.calls, args.repeats, args.gzip_level, args.batch_size)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
