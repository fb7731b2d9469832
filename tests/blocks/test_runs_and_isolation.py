"""Run context on block events: flow runs, task runs, threads, tasks and traces."""

import asyncio
import re
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from blocks import Block
from emitters import Event, flow_run, task_run
from emitters.testing import capture_events


@pytest.fixture(autouse=True)
def no_environment_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep runs named by the environment out of these tests."""
    for name in (
        "EVENTBLOCKS_FLOW_RUN_ID",
        "EVENTBLOCKS_FLOW_RUN_NAME",
        "PREFECT__FLOW_RUN_ID",
    ):
        monkeypatch.delenv(name, raising=False)


class Ledger(Block):
    """A block with a method of every kind."""

    def post(self, n: int = 1) -> int:
        """Post ``n``."""
        return n

    async def apost(self, n: int = 1) -> int:
        """Post ``n`` asynchronously, letting other tasks run meanwhile."""
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return n

    def entries(self, n: int) -> Iterator[int]:
        """Yield ``n`` entries."""
        yield from range(n)

    async def aentries(self, n: int) -> AsyncIterator[int]:
        """Yield ``n`` entries asynchronously."""
        for i in range(n):
            await asyncio.sleep(0)
            yield i


def run_ids(event: Event, role: str) -> list[str]:
    """Return the ids of the event's related resources of ``role``."""
    return [r.id for r in event.related_by_role(role)]


def test_flow_run_is_related_on_started_and_outcome() -> None:
    """Inside flow_run, block events carry flow-run.<id> named after the run."""
    with capture_events() as events, flow_run("etl") as run:
        Ledger().post()
    assert len(events) == 2
    for event in events:
        [related] = event.related_by_role("flow-run")
        assert related.id == f"flow-run.{run.id}"
        assert related.name == "etl"
        assert event.related_by_role("task-run") == []


def test_task_run_inside_flow_run_adds_both() -> None:
    """Inside task_run within flow_run, events carry both runs."""
    with capture_events() as events, flow_run("etl") as flow:
        with task_run("load") as task:
            Ledger().post()
        Ledger().post()
    assert len(events) == 4
    for event in events[:2]:
        assert run_ids(event, "flow-run") == [f"flow-run.{flow.id}"]
        [related] = event.related_by_role("task-run")
        assert related.id == f"task-run.{task.id}"
        assert related.name == "load"
    for event in events[2:]:
        assert run_ids(event, "flow-run") == [f"flow-run.{flow.id}"]
        assert run_ids(event, "task-run") == []


def test_no_run_outside_any_scope() -> None:
    """Outside any run scope, block events carry no flow-run or task-run."""
    with capture_events() as events:
        Ledger().post()
    assert len(events) == 2
    for event in events:
        assert run_ids(event, "flow-run") == []
        assert run_ids(event, "task-run") == []


def test_generator_finished_outside_the_flow_run_keeps_its_run() -> None:
    """A generator started inside a flow_run and finished outside keeps that run."""
    with capture_events() as events:
        with flow_run("etl") as run:
            gen = Ledger().entries(3)
            assert next(gen) == 0
        assert list(gen) == [1, 2]
    assert [e.event for e in events] == [
        "block.ledger.entries.started",
        "block.ledger.entries.succeeded",
    ]
    for event in events:
        assert run_ids(event, "flow-run") == [f"flow-run.{run.id}"]


def test_generator_finished_inside_another_flow_run_keeps_its_first_run() -> None:
    """A generator finished inside a different flow_run keeps the run of its start."""
    with capture_events() as events:
        with flow_run("first") as first:
            gen = Ledger().entries(3)
            next(gen)
        with flow_run("second"):
            list(gen)
    assert [run_ids(e, "flow-run") for e in events] == [[f"flow-run.{first.id}"]] * 2


async def test_async_generator_finished_outside_the_flow_run_keeps_its_run() -> None:
    """An async generator started inside a flow_run keeps that run to its end."""
    with capture_events() as events:
        with flow_run("etl") as run:
            agen = Ledger().aentries(3)
            assert await anext(agen) == 0
        assert [i async for i in agen] == [1, 2]
    assert len(events) == 2
    for event in events:
        assert run_ids(event, "flow-run") == [f"flow-run.{run.id}"]


async def test_coroutine_events_carry_the_flow_run() -> None:
    """An awaited block call inside flow_run carries the run on both events."""
    with capture_events() as events, flow_run("etl") as run:
        await Ledger().apost()
    assert len(events) == 2
    for event in events:
        assert run_ids(event, "flow-run") == [f"flow-run.{run.id}"]


def worker_block(index: int) -> Ledger:
    """Return a block whose document name tells which worker used it."""
    block = Ledger()
    block._set_document(uuid.uuid4(), f"worker-{index}")
    return block


def check_runs_by_worker(
    events: list[Event], run_of_worker: dict[str, str], calls: int
) -> None:
    """Check every event's flow run is the run of the worker that made it."""
    per_run: Counter[str] = Counter()
    for event in events:
        worker = event.resource.name
        assert worker is not None
        [flow] = run_ids(event, "flow-run")
        assert flow == f"flow-run.{run_of_worker[worker]}", event.event
        per_run[flow] += 1
    assert per_run == {f"flow-run.{rid}": 2 * calls for rid in run_of_worker.values()}


def test_threads_each_carry_their_own_flow_run() -> None:
    """Eight threads, each in its own flow_run, tag every event with their own run."""
    threads_n, calls = 8, 50
    barrier = threading.Barrier(threads_n)
    run_of_worker: dict[str, str] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            block = worker_block(index)
            with flow_run(f"thread-{index}") as run:
                run_of_worker[f"worker-{index}"] = run.id
                barrier.wait(timeout=10)
                for i in range(calls):
                    assert block.post(i) == i
        except BaseException as exc:
            errors.append(exc)

    with capture_events() as events:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert len(run_of_worker) == threads_n
    assert len(events) == threads_n * calls * 2
    check_runs_by_worker(events, run_of_worker, calls)


async def test_asyncio_tasks_each_carry_their_own_flow_run() -> None:
    """Fifty interleaved tasks, each in its own flow_run, keep their runs apart."""
    tasks_n, calls = 50, 4
    run_of_worker: dict[str, str] = {}

    async def work(index: int) -> None:
        block = worker_block(index)
        with flow_run(f"task-{index}") as run:
            run_of_worker[f"worker-{index}"] = run.id
            for i in range(calls):
                assert await block.apost(i) == i

    with capture_events() as events:
        await asyncio.gather(*(work(i) for i in range(tasks_n)))
    assert len(run_of_worker) == tasks_n
    assert len(events) == tasks_n * calls * 2
    check_runs_by_worker(events, run_of_worker, calls)


def test_active_otel_span_adds_trace_related() -> None:
    """An active OpenTelemetry span adds otel-trace.<trace id> with its span id."""
    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    try:
        with capture_events() as events, tracer.start_as_current_span("s") as span:
            Ledger().post()
    finally:
        provider.shutdown()
    context = span.get_span_context()
    assert len(events) == 2
    for event in events:
        [trace] = event.related_by_role("trace")
        assert trace.id == f"otel-trace.{context.trace_id:032x}"
        assert re.fullmatch(r"otel-trace\.[0-9a-f]{32}", trace.id)
        assert trace.labels["span_id"] == f"{context.span_id:016x}"
        assert re.fullmatch(r"[0-9a-f]{16}", trace.labels["span_id"])


def test_no_trace_related_without_an_active_span() -> None:
    """Without an active span, block events carry no trace related resource."""
    with capture_events() as events:
        Ledger().post()
    assert len(events) == 2
    for event in events:
        assert event.related_by_role("trace") == []
