"""Load: a million calls against a stalled sink, and many runs calling at once.

The million calls run in a child process so that its memory is measured alone
(the memory budget of docs/performance.md: growth under 100 MB with the byte
budget full, every loss counted and recorded, the one failed call kept). The
concurrency test runs 8 threads and 100 asyncio tasks at the same time, each in a
flow run of its own, through shared block instances and a shared thread pool, and
checks that no event carries another run's id and that none is lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from blocks import Block, event_payload
from emitters import (
    Event,
    MemoryEmitter,
    bind_context,
    configure,
    flow_run,
    flush,
    stats,
    task_run,
)
from emitters.sql import SQLEventStore

# The memory benchmark is the child: many calls against a sink that is stalled,
# then released; it reports memory and the counters as JSON.
CHILD = Path(__file__).parents[2] / "benchmarks" / "bench_memory.py"
BUDGET_MB = 100.0


def _run_child(
    calls: int, home: Path, max_buffer_bytes: int | None = None
) -> dict[str, Any]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EVENTBLOCKS_")},
        "EVENTBLOCKS_HOME": str(home),
        "EVENTBLOCKS_EMITTERS": "none",
    }
    out = subprocess.run(
        [
            sys.executable,
            str(CHILD),
            "--calls",
            str(calls),
            *(
                ["--max-buffer-bytes", str(max_buffer_bytes)]
                if max_buffer_bytes
                else []
            ),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=100,
        check=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _assert_every_event_accounted(result: dict[str, Any], calls: int) -> None:
    final = result["final"]
    records = result["lost_records"]
    assert result["flushed"] is False  # events were lost: flush() says so
    # Two events a call, plus one pipeline.events-lost record per run and minute.
    assert final["emitted"] == 2 * (result["warmup_calls"] + calls) + len(records)
    # Nothing vanished: each event was delivered once released, or dropped, and
    # every drop is in a loss record the sink received.
    assert final["delivered"]["stalled"] == result["received"]
    assert final["delivered"]["stalled"] + final["dropped"] == final["emitted"]
    assert sum(r["lost"] for r in records) == final["dropped"]
    assert final["failed"]["stalled"] == 0
    # The one failed call survived the shedding.
    assert result["failed_calls_received"] == 1
    assert sum(r["failures"] for r in records) == 0


@pytest.mark.slow
def test_a_million_calls_against_a_stalled_sink_keep_memory_bounded(
    tmp_path: Path,
) -> None:
    """1,000,000 calls into a sink that never returns: growth < 100 MB, every loss
    counted and recorded, the one failure kept."""
    result = _run_child(1_000_000, tmp_path)
    assert result["growth_mb"] < BUDGET_MB
    assert result["stalled"]["dropped"] > 0
    _assert_every_event_accounted(result, 1_000_000)


def test_a_small_buffer_sheds_successes_and_keeps_the_failure(tmp_path: Path) -> None:
    """With a 1 MiB budget most events are shed, never the failed call's."""
    result = _run_child(100_000, tmp_path, max_buffer_bytes=1024 * 1024)
    assert result["final"]["dropped"] >= 100_000
    _assert_every_event_accounted(result, 100_000)


def _tag(arguments: Any, _outcome: object) -> dict[str, str]:
    return {"tag": arguments.arguments["tag"]}


class LoadLedger(Block):
    """A block whose calls say, in their outcome's payload, which run made them."""

    @event_payload(_tag)
    def post(self, tag: str) -> str:
        """Post once."""
        return tag

    @event_payload(_tag)
    def post_via(self, tag: str, other: LoadLedger) -> str:
        """Post through another block (a nested call with a caller)."""
        return other.post(tag)

    @event_payload(_tag)
    async def apost(self, tag: str) -> str:
        """Post, letting the other tasks run in between."""
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return tag

    @event_payload(_tag)
    async def apost_via(self, tag: str, other: LoadLedger) -> str:
        """Post through another block, asynchronously."""
        await asyncio.sleep(0)
        return await other.apost(tag)

    @event_payload(_tag)
    async def aentries(self, tag: str, n: int) -> AsyncIterator[str]:
        """Yield ``n`` entries, letting the other tasks run between them."""
        for _ in range(n):
            await asyncio.sleep(0)
            yield tag


THREADS, THREAD_CALLS = 8, 600
TASKS, TASK_CALLS = 100, 30


def _thread_work(
    index: int,
    shared: LoadLedger,
    other: LoadLedger,
    pool: ThreadPoolExecutor,
    barrier: threading.Barrier,
    runs: dict[str, int],
    errors: list[BaseException],
) -> None:
    try:
        own = LoadLedger()
        with flow_run(f"thread-{index}") as run:
            runs[run.id] = 0
            barrier.wait(timeout=20)
            for i in range(THREAD_CALLS):
                if i % 3 == 0:
                    with task_run("load", id=f"{run.id}/task-{i}"):
                        shared.post(run.id)
                elif i % 3 == 1:
                    own.post_via(run.id, other)
                    runs[run.id] += 1  # the nested call
                else:
                    # A pooled thread serves every run in turn: bound, it must
                    # carry this one; unbound, none at all.
                    assert pool.submit(bind_context(shared.post), run.id).result() == (
                        run.id
                    )
                    pool.submit(shared.post, "no-run").result()
                runs[run.id] += 1
    except BaseException as exc:
        errors.append(exc)


async def _task_work(
    index: int, shared: LoadLedger, other: LoadLedger, runs: dict[str, int]
) -> None:
    with flow_run(f"task-{index}") as run:
        runs[run.id] = 0
        for i in range(TASK_CALLS):
            if i % 3 == 0:
                assert await shared.apost(run.id) == run.id
            elif i % 3 == 1:
                await LoadLedger().apost_via(run.id, other)
                runs[run.id] += 1
            else:
                assert [t async for t in shared.aentries(run.id, 3)] == [run.id] * 3
            runs[run.id] += 1


def _run_tasks(
    shared: LoadLedger,
    other: LoadLedger,
    barrier: threading.Barrier,
    runs: dict[str, int],
) -> None:
    async def main() -> None:
        barrier.wait(timeout=20)
        await asyncio.gather(
            *(_task_work(i, shared, other, runs) for i in range(TASKS))
        )

    asyncio.run(main())


def _check_isolation(events: list[Event], runs: dict[str, int]) -> None:
    """Each event belongs to the run named in its call's tag, and none is missing."""
    by_id = {str(e.id): e for e in events}
    tag_of_start = {e.follows: e.payload["tag"] for e in events if e.follows}
    calls: Counter[str] = Counter()
    for event in events:
        tag = event.payload["tag"] if event.follows else tag_of_start[event.id]
        if event.follows is None:
            calls[tag] += 1
        flows = [r.id for r in event.related_by_role("flow-run")]
        if tag == "no-run":
            assert flows == [], event
            continue
        assert flows == [f"flow-run.{tag}"], event
        for task in event.related_by_role("task-run"):
            assert task.id.startswith(f"task-run.{tag}/"), event
        for caller in event.related_by_role("caller"):
            started = by_id[caller.id.removeprefix("event.")]
            assert [r.id for r in started.related_by_role("flow-run")] == flows
    assert calls == runs


def test_threads_and_tasks_at_once_never_mix_runs(tmp_path: Path) -> None:
    """8 threads and 100 tasks, each in its own run: no event carries another run."""
    memory = MemoryEmitter()
    store = SQLEventStore(f"sqlite:///{tmp_path / 'events.db'}")
    configure(emitters=[memory, store])
    before = stats()
    shared, other = LoadLedger(), LoadLedger()
    runs: dict[str, int] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS + 1)
    with ThreadPoolExecutor(max_workers=3) as pool:
        threads = [
            threading.Thread(
                target=_thread_work,
                args=(i, shared, other, pool, barrier, runs, errors),
            )
            for i in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        _run_tasks(shared, other, barrier, runs)
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    assert flush(30)
    counters = stats()
    assert counters["dropped"] == before["dropped"]
    assert len(runs) == THREADS + TASKS
    no_run_calls = THREADS * (THREAD_CALLS // 3)
    expected_calls = sum(runs.values()) + no_run_calls
    emitted = counters["emitted"] - before["emitted"]
    assert len(memory.events) == 2 * expected_calls == emitted
    _check_isolation(memory.events, {**runs, "no-run": no_run_calls})
    # The store answers per run with exactly that run's calls.
    for run_id, calls in list(runs.items())[:: len(runs) // 12]:
        timeline = store.timeline(run_id)
        assert len(timeline) == calls
        assert all(c.outcome == "succeeded" for c in timeline)
    grouped: defaultdict[str, int] = defaultdict(int)
    for event in store.events(limit=None):
        for flow in event.related_by_role("flow-run"):
            grouped[flow.id] += 1
    assert grouped == {f"flow-run.{r}": 2 * n for r, n in runs.items()}
