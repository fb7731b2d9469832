"""The web page's JSON API over a SQLite event store of 1,000,000 events.

Run: ``python benchmarks/bench_ui.py [--events N] [--runs R] [--big-calls C]
[--repeats K] [--json]``

The store is filled by its own writer: events are built as the SDK builds them
(``Event.model_construct`` from shared resources, UUIDv7 ids in time order) and
handed to ``SQLEventStore.emit_batch`` in batches of 20,000, so the rows, the
links of nested documents and the run summaries are exactly what a real
workload leaves. One run (``big``) makes ``--big-calls`` calls (10,000 by
default: 20,000 events) spread over 10 task runs, with failures and two pod
events; the other runs share the rest of the events (about 49 calls each) over
200 block documents, half of which hold a credentials document, 5% of calls
failing.

Each route is then asked through the ASGI app in this process (httpx's
``ASGITransport``: the request, the handler, the queries, JSON encoding), median
of K repeats, and compared with the 200 ms budget (ratio = time / 200 ms):

- ``GET /api/runs``, and ``/api/runs?failed=true&name=etl-1*``;
- ``GET /api/runs/{big}`` and ``/api/runs/{big}/timeline``;
- ``GET /api/blocks`` and ``/api/blocks/s3-bucket/doc-42/runs``;
- ``GET /api/events/{id}`` (a call's started event, with its outcome).

Beside each wall time it prints the CPU time the process spent on the request (all
its threads): on a machine shared with other work, that one moves less.

``--events 20000 --runs 200`` is the quick mode the test suite and ``make bench``
run (the big run then makes 200 calls: ``--big-calls`` is ``events // 100`` at
most 10,000 unless given).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _common import documents

from blocks._ui import create_app
from emitters import Event, RelatedResource, Resource
from emitters._ids import uuid7_from_ns
from emitters.sql import SQLEventStore

BUDGET_MS = 200.0
BATCH = 20_000
T0 = datetime(2026, 6, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _documents() -> list[tuple[Resource, RelatedResource | None]]:
    """Each document's resource, and its nested credentials (half have one)."""
    docs = []
    for doc in documents():
        nested = None
        if doc.credentials is not None:
            nested = RelatedResource(
                id=doc.credentials[0],
                role="nested-block",
                name=doc.credentials[1],
                labels={"block-type": "aws-credentials", "field": "credentials"},
            )
        resource = Resource(
            id=doc.id, name=doc.name, labels={"block-type": "s3-bucket"}
        )
        docs.append((resource, nested))
    return docs


_BLOCK_TYPE = RelatedResource(
    id="block-type.s3-bucket", role="block-type", name="S3Bucket"
)
_METHODS = ("read_path", "write_path", "list_objects")


class _Filler:
    """Builds a run's events and hands full batches to the store."""

    def __init__(self, store: SQLEventStore, seed: int) -> None:
        self.store = store
        self.rng = random.Random(seed)
        self.docs = _documents()
        self.batch: list[Event] = []
        self.events = 0

    def _emit(self, event: Event) -> None:
        self.batch.append(event)
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            self.store.emit_batch(self.batch)
            self.events += len(self.batch)
            self.batch = []

    def run(self, index: int, calls: int, *, tasks: int = 0, pods: bool = False) -> str:
        """Write one run of ``calls`` calls; return its id."""
        rng = self.rng
        start = T0 + timedelta(minutes=index)
        run_id = str(uuid7_from_ns(int(start.timestamp() * 1e9)))
        run = RelatedResource(
            id=f"flow-run.{run_id}",
            role="flow-run",
            name=f"etl-{index % 50}" if not tasks else "big",
            labels={"source": "eventblocks", "team": f"t{index % 5}"},
        )
        task_runs = [
            RelatedResource(
                id=f"task-run.{uuid.UUID(int=index * 1000 + t)}",
                role="task-run",
                name=f"load-{t}",
                labels={"source": "eventblocks"},
            )
            for t in range(tasks)
        ]
        used = rng.sample(self.docs, 5)
        related: dict[tuple[int, int], tuple[RelatedResource, ...]] = {}
        at = start
        for call in range(calls):
            slot = rng.randrange(5)
            task = call * tasks // calls if tasks else -1
            resource, nested = used[slot]
            key = (slot, task)
            shared = related.get(key)
            if shared is None:
                parts = [_BLOCK_TYPE, run]
                if task >= 0:
                    parts.append(task_runs[task])
                if nested is not None:
                    parts.append(nested)
                shared = related[key] = tuple(parts)
            method = _METHODS[call % 3]
            duration = rng.uniform(0.2, 40.0)
            started = Event.model_construct(
                id=uuid7_from_ns(int(at.timestamp() * 1e9)),
                occurred=at,
                event=f"block.s3-bucket.{method}.started",
                resource=resource,
                related=shared,
                payload={},
                follows=None,
            )
            end = at + duration * _MS
            payload: dict[str, Any] = {"duration_ms": duration}
            phase = "succeeded"
            if rng.random() < 0.05:
                phase = "failed"
                payload["error"] = {
                    "type": "botocore.errorfactory.NoSuchKey",
                    "message": f"The specified key does not exist: part-{call}.csv",
                }
            outcome = Event.model_construct(
                id=uuid7_from_ns(int(end.timestamp() * 1e9)),
                occurred=end,
                event=f"block.s3-bucket.{method}.{phase}",
                resource=resource,
                related=shared,
                payload=payload,
                follows=started.id,
            )
            self._emit(started)
            self._emit(outcome)
            at += 2 * _MS
            if pods and call in (calls // 3, 2 * calls // 3):
                phase_name = "running" if call == calls // 3 else "evicted"
                self._emit(
                    Event.model_construct(
                        id=uuid.uuid5(uuid.NAMESPACE_URL, f"{run_id}/{phase_name}"),
                        occurred=at,
                        event=f"infra.kubernetes.pod.{phase_name}",
                        resource=Resource(id="kubernetes-pod.9f1c", name="etl/big-7d9"),
                        related=(run,),
                        payload={"phase": phase_name, "reason": phase_name},
                        follows=None,
                    )
                )
        return run_id


def _fill(url: str, events: int, runs: int, big_calls: int) -> dict[str, Any]:
    store = SQLEventStore(url)
    filler = _Filler(store, seed=7)
    begin = time.perf_counter()
    big_index = runs // 2
    others = max(1, runs - 1)
    per_run = max(1, (events - 2 * big_calls - 2) // others // 2)
    big = ""
    for index in range(runs):
        if index == big_index:
            big = filler.run(index, big_calls, tasks=10, pods=True)
        else:
            filler.run(index, per_run)
    filler.flush()
    return {
        "events": filler.events,
        "runs": runs,
        "big_calls": big_calls,
        "fill_s": time.perf_counter() - begin,
        "big": big,
    }


async def _time(
    client: httpx.AsyncClient, path: str, repeats: int
) -> tuple[float, float]:
    """Median wall time and median CPU time (this process, every thread) in ms."""
    wall, cpu = [], []
    for _ in range(repeats):
        begin, begin_cpu = time.perf_counter(), time.process_time()
        response = await client.get(path)
        wall.append((time.perf_counter() - begin) * 1000)
        cpu.append((time.process_time() - begin_cpu) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: {response.text}")
    return statistics.median(wall), statistics.median(cpu)


async def _measure_routes(url: str, big: str, repeats: int) -> dict[str, Any]:
    app = create_app(SQLEventStore(url, read_only=True))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
        timeline = (await client.get(f"/api/runs/{big}/timeline")).json()
        call = timeline["calls"][len(timeline["calls"]) // 2]
        routes = {
            "runs": "/api/runs",
            "runs_failed_name": "/api/runs?failed=true&name=etl-1*",
            "run_big": f"/api/runs/{big}",
            "timeline_big": f"/api/runs/{big}/timeline",
            "blocks": "/api/blocks",
            "block_runs": "/api/blocks/s3-bucket/doc-42/runs",
            "event": f"/api/events/{call['event_id']}",
        }
        timed = {
            name: await _time(client, path, repeats) for name, path in routes.items()
        }
        ms = {name: wall for name, (wall, _) in timed.items()}
        cpu_ms = {name: cpu for name, (_, cpu) in timed.items()}
        event = (await client.get(routes["event"])).json()
        block = (await client.get(routes["block_runs"])).json()
        checks = {
            "timeline_calls": len(timeline["calls"]),
            "timeline_tasks": len(timeline["tasks"]),
            "timeline_infrastructure": len(timeline["infrastructure"]),
            "timeline_bytes": len(json.dumps(timeline)),
            "event_has_outcome": event["outcome"] is not None,
            "block_runs_rows": len(block["runs"]),
        }
    return {"median_ms": ms, "median_cpu_ms": cpu_ms, **checks}


def measure(events: int, runs: int, big_calls: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'store.db'}"
        filled = _fill(url, events, runs, big_calls)
        result = asyncio.run(_measure_routes(url, filled["big"], repeats))
    ratios = {
        f"{name}_vs_budget": v / BUDGET_MS for name, v in result["median_ms"].items()
    }
    return {
        **filled,
        "repeats": repeats,
        "budget_ms": BUDGET_MS,
        **result,
        "ratios": ratios,
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"{result['events']:,} events in {result['runs']:,} runs (one of "
        f"{result['big_calls']:,} calls), filled in {result['fill_s']:.1f} s; "
        f"median of {result['repeats']}, budget {result['budget_ms']:.0f} ms",
        f"  {'route':<20}{'ms':>10}{'ratio':>9}{'cpu ms':>10}",
    ]
    for name, value in result["median_ms"].items():
        ratio = result["ratios"][f"{name}_vs_budget"]
        cpu = result["median_cpu_ms"][name]
        lines.append(f"  {name:<20}{value:>10.1f}{ratio:>9.3f}{cpu:>10.1f}")
    lines.append(
        f"  timeline: {result['timeline_calls']:,} calls, {result['timeline_tasks']} "
        f"tasks, {result['timeline_infrastructure']} infrastructure events, "
        f"{result['timeline_bytes'] / 1e6:.1f} MB of JSON"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument(
        "--big-calls",
        type=int,
        default=None,
        help="default: events // 100, at most 10,000",
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    big_calls = args.big_calls
    if big_calls is None:
        big_calls = min(10_000, args.events // 100)
    result = measure(args.events, args.runs, big_calls, args.repeats)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    sys.exit(main())
