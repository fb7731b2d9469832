"""Run context: flow_run/task_run scopes, isolation and environment sources."""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from emitters import (
    Event,
    Run,
    bind_context,
    current_run,
    emit_event,
    flow_run,
    task_run,
)
from emitters.testing import capture_events

_ENV_VARS = (
    "EVENTBLOCKS_FLOW_RUN_ID",
    "EVENTBLOCKS_FLOW_RUN_NAME",
    "PREFECT__FLOW_RUN_ID",
)


@pytest.fixture(autouse=True)
def clean_run_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test with no run named by the environment."""
    for name in _ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def _is_uuid7_string(value: str) -> bool:
    parsed = uuid.UUID(value)
    return str(parsed) == value and parsed.version == 7


def _run_ids(event: Event, role: str) -> list[str]:
    return [r.id for r in event.related_by_role(role)]


# -- context managers -----------------------------------------------------------


def test_flow_run_context_manager_yields_a_run() -> None:
    """with flow_run(...) yields a flow Run with a UUIDv7 id, name and labels."""
    assert current_run() is None
    with flow_run("nightly", labels={"team": "data"}) as run:
        assert isinstance(run, Run)
        assert run.kind == "flow-run"
        assert run.name == "nightly"
        assert dict(run.labels) == {"team": "data"}
        assert _is_uuid7_string(run.id)
        assert current_run() is run
        assert current_run("flow-run") is run
        assert current_run("task-run") is None
    assert current_run() is None


def test_task_run_context_manager_yields_a_task_run() -> None:
    """with task_run(...) yields a task Run, visible as current_run('task-run')."""
    with task_run("load", id="t-1") as run:
        assert run.kind == "task-run"
        assert run.id == "t-1"
        assert run.name == "load"
        assert dict(run.labels) == {}
        assert current_run("task-run") is run
        assert current_run() is None
    assert current_run("task-run") is None


def test_explicit_id_is_used() -> None:
    """flow_run(id=...) uses the given id instead of making one."""
    with flow_run("etl", id="run-123") as run:
        assert run.id == "run-123"
        assert current_run() is not None
        assert current_run().id == "run-123"  # type: ignore[union-attr]


def test_each_context_manager_entry_gets_a_new_id() -> None:
    """Two separate flow_run scopes get different ids."""
    with flow_run("a") as first:
        pass
    with flow_run("a") as second:
        pass
    assert first.id != second.id


def test_scope_is_reset_when_the_body_raises() -> None:
    """An exception inside a scope propagates and the outer context is restored."""
    with flow_run("outer") as outer:
        with pytest.raises(RuntimeError, match="boom"), flow_run("inner"):
            raise RuntimeError("boom")
        assert current_run() is outer
    assert current_run() is None


# -- decorators -----------------------------------------------------------------


def test_flow_run_decorates_a_sync_function() -> None:
    """A decorated sync function runs in a new flow run on every call."""
    seen: list[Run | None] = []

    @flow_run("job", labels={"k": "v"})
    def job(x: int) -> int:
        """Double x."""
        seen.append(current_run())
        return x * 2

    assert job(2) == 4
    assert job(3) == 6
    assert job.__name__ == "job"
    assert job.__doc__ == "Double x."
    assert all(r is not None for r in seen)
    first, second = seen
    assert first is not None
    assert second is not None
    assert first.name == second.name == "job"
    assert first.kind == "flow-run"
    assert dict(first.labels) == {"k": "v"}
    assert first.id != second.id
    assert _is_uuid7_string(first.id)
    assert _is_uuid7_string(second.id)
    assert current_run() is None


def test_decorator_with_id_reuses_it_on_every_call() -> None:
    """A decorator given id= uses that id for every call."""
    seen: list[str] = []

    @task_run("step", id="fixed")
    def step() -> None:
        run = current_run("task-run")
        assert run is not None
        seen.append(run.id)

    step()
    step()
    assert seen == ["fixed", "fixed"]


def test_sync_decorator_resets_the_scope_on_exception() -> None:
    """A decorated function that raises leaves no run behind."""

    @flow_run("failing")
    def failing() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        failing()
    assert current_run() is None


async def test_flow_run_decorates_an_async_function() -> None:
    """A decorated coroutine function runs each call in its own flow run."""

    @flow_run("ajob")
    async def ajob() -> Run | None:
        await asyncio.sleep(0)
        return current_run()

    first, second = await ajob(), await ajob()
    assert first is not None
    assert second is not None
    assert first.name == "ajob"
    assert first.id != second.id
    assert _is_uuid7_string(first.id)
    assert current_run() is None


async def test_async_decorated_calls_run_concurrently_in_separate_runs() -> None:
    """Concurrent calls of one decorated coroutine each see their own run."""

    @task_run("atask")
    async def atask(i: int) -> tuple[int, str]:
        run = current_run("task-run")
        assert run is not None
        await asyncio.sleep(0.001)
        again = current_run("task-run")
        assert again is run
        return i, run.id

    results = await asyncio.gather(*(atask(i) for i in range(10)))
    assert len({run_id for _, run_id in results}) == 10


async def test_async_decorator_with_id_reuses_it() -> None:
    """An async function decorated with id= sees that id on each call."""

    @flow_run("aj", id="abc")
    async def aj() -> str:
        run = current_run()
        assert run is not None
        return run.id

    assert [await aj(), await aj()] == ["abc", "abc"]


# -- nesting --------------------------------------------------------------------


def test_subflow_replaces_the_flow_until_it_ends() -> None:
    """A flow_run inside a flow_run becomes the current flow, then restores it."""
    with flow_run("parent") as parent:
        with task_run("t"):
            with flow_run("child") as child:
                assert current_run() is child
                assert current_run("task-run") is None
            assert current_run() is parent
            assert current_run("task-run") is not None
        assert current_run() is parent


def test_task_inside_flow_keeps_the_flow() -> None:
    """A task_run inside a flow_run keeps the flow and adds the task."""
    with flow_run("flow") as flow, task_run("task") as task:
        assert current_run("flow-run") is flow
        assert current_run("task-run") is task
        with task_run("inner") as inner:
            assert current_run("task-run") is inner
            assert current_run("flow-run") is flow
        assert current_run("task-run") is task


def test_emitted_events_carry_flow_and_task_runs() -> None:
    """emit_event inside nested scopes tags the innermost flow and task runs."""
    with capture_events() as events, flow_run("parent") as parent:
        emit_event("a", {"id": "r"})
        with task_run("task") as task:
            emit_event("b", {"id": "r"})
            with flow_run("child") as child:
                emit_event("c", {"id": "r"})
    a, b, c = events
    assert _run_ids(a, "flow-run") == [f"flow-run.{parent.id}"]
    assert _run_ids(a, "task-run") == []
    assert _run_ids(b, "flow-run") == [f"flow-run.{parent.id}"]
    assert _run_ids(b, "task-run") == [f"task-run.{task.id}"]
    assert _run_ids(c, "flow-run") == [f"flow-run.{child.id}"]
    assert _run_ids(c, "task-run") == []
    flow_rel = a.related_by_role("flow-run")[0]
    assert flow_rel.name == "parent"


# -- invalid arguments ----------------------------------------------------------


def test_current_run_rejects_an_unknown_kind() -> None:
    """current_run with an unknown kind raises ValueError naming the kinds."""
    with pytest.raises(ValueError, match="flow-run") as info:
        current_run("job-run")  # type: ignore[arg-type]
    assert "job-run" in str(info.value)


@pytest.mark.parametrize("scope", [flow_run, task_run])
@pytest.mark.parametrize("name", ["", None, 7])
def test_scope_rejects_a_bad_name(scope: object, name: object) -> None:
    """flow_run/task_run without a non-empty string name raise ValueError."""
    with pytest.raises(ValueError, match="name"):
        scope(name)  # type: ignore[operator]


@pytest.mark.parametrize("scope", [flow_run, task_run])
def test_scope_rejects_a_bad_id(scope: object) -> None:
    """An empty or non-string id raises ValueError naming the id."""
    with pytest.raises(ValueError, match="id"):
        scope("x", id="")  # type: ignore[operator]
    with pytest.raises(ValueError, match="id"):
        scope("x", id=5)  # type: ignore[operator]


@pytest.mark.parametrize("labels", [{"a": 1}, {1: "a"}, {"a": None}])
def test_scope_rejects_non_string_labels(labels: dict[object, object]) -> None:
    """Labels that are not str to str raise TypeError naming labels."""
    with pytest.raises(TypeError, match="labels"):
        flow_run("x", labels=labels)  # type: ignore[arg-type]


# -- isolation ------------------------------------------------------------------


def test_threads_in_their_own_flow_runs_do_not_mix() -> None:
    """Eight threads emitting concurrently each tag only their own flow run."""
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    run_ids: dict[int, str] = {}

    def worker(i: int) -> None:
        try:
            with flow_run(f"thread-{i}") as run:
                run_ids[i] = run.id
                barrier.wait(timeout=10)
                for j in range(50):
                    emit_event("tick", {"id": f"worker.{i}"}, payload={"j": j})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with capture_events() as events:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert not errors
    assert len(events) == 8 * 50
    for event in events:
        i = int(event.resource.id.split(".")[1])
        assert _run_ids(event, "flow-run") == [f"flow-run.{run_ids[i]}"]
    assert len(set(run_ids.values())) == 8


async def test_asyncio_tasks_in_their_own_flow_runs_do_not_mix() -> None:
    """Fifty interleaved asyncio tasks each tag only their own flow run."""
    run_ids: dict[int, str] = {}

    async def worker(i: int) -> None:
        with flow_run(f"task-{i}") as run:
            run_ids[i] = run.id
            for j in range(5):
                emit_event("tick", {"id": f"worker.{i}"}, payload={"j": j})
                await asyncio.sleep(0)

    with capture_events() as events:
        await asyncio.gather(*(worker(i) for i in range(50)))
    assert len(events) == 50 * 5
    assert len(set(run_ids.values())) == 50
    for event in events:
        i = int(event.resource.id.split(".")[1])
        assert _run_ids(event, "flow-run") == [f"flow-run.{run_ids[i]}"]


async def test_asyncio_tasks_created_in_a_scope_inherit_it() -> None:
    """A task created inside a flow_run sees that run, even after the scope ends."""
    gate = asyncio.Event()

    async def child() -> tuple[Run | None, Run | None]:
        before = current_run()
        await gate.wait()
        return before, current_run()

    with flow_run("parent") as parent:
        task = asyncio.create_task(child())
        await asyncio.sleep(0)
    assert current_run() is None
    gate.set()
    before, after = await task
    assert before is parent
    assert after is parent


def test_bind_context_carries_the_run_into_a_thread() -> None:
    """A function bound with bind_context sees the caller's runs in a Thread."""
    seen: dict[str, Run | None] = {}

    def look() -> None:
        seen["flow"] = current_run()
        seen["task"] = current_run("task-run")

    with flow_run("f") as flow, task_run("t") as task:
        thread = threading.Thread(target=bind_context(look))
        thread.start()
        thread.join(10)
    assert seen == {"flow": flow, "task": task}


def test_bind_context_carries_the_run_into_an_executor() -> None:
    """A function bound with bind_context sees the run in a ThreadPoolExecutor."""

    def look(x: int) -> tuple[int, Run | None]:
        return x, current_run()

    with ThreadPoolExecutor(max_workers=2) as pool:
        with flow_run("f") as flow:
            bound = bind_context(look)
            futures = [pool.submit(bound, i) for i in range(4)]
        results = [f.result(timeout=10) for f in futures]
        plain = pool.submit(look, 99).result(timeout=10)
    assert results == [(i, flow) for i in range(4)]
    assert plain == (99, None)


def test_bound_function_tags_events_emitted_in_another_thread() -> None:
    """Events emitted from a bound thread carry the caller's flow run."""
    with capture_events() as events, flow_run("f") as flow:
        thread = threading.Thread(
            target=bind_context(lambda: emit_event("x", {"id": "r"}))
        )
        thread.start()
        thread.join(10)
    assert len(events) == 1
    assert _run_ids(events[0], "flow-run") == [f"flow-run.{flow.id}"]


def test_plain_thread_sees_no_run() -> None:
    """A plain threading.Thread started inside a scope sees no run."""
    seen: list[Run | None] = [Run("sentinel", "sentinel")]

    def look() -> None:
        seen[0] = current_run()

    with flow_run("f"):
        thread = threading.Thread(target=look)
        thread.start()
        thread.join(10)
    assert seen == [None]


# -- the environment ------------------------------------------------------------


def test_environment_names_the_flow_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """EVENTBLOCKS_FLOW_RUN_ID/NAME give current_run() when there is no scope."""
    monkeypatch.setenv("EVENTBLOCKS_FLOW_RUN_ID", "env-run-1")
    monkeypatch.setenv("EVENTBLOCKS_FLOW_RUN_NAME", "env-flow")
    run = current_run()
    assert run is not None
    assert run.id == "env-run-1"
    assert run.name == "env-flow"
    assert run.kind == "flow-run"
    assert current_run("task-run") is None


def test_prefect_environment_names_the_flow_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PREFECT__FLOW_RUN_ID gives the flow run when there is no scope."""
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "prefect-run-9")
    run = current_run()
    assert run is not None
    assert run.id == "prefect-run-9"
    assert run.kind == "flow-run"


def test_environment_change_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed or removed environment variable changes current_run()."""
    monkeypatch.setenv("EVENTBLOCKS_FLOW_RUN_ID", "first")
    assert current_run().id == "first"  # type: ignore[union-attr]
    monkeypatch.setenv("EVENTBLOCKS_FLOW_RUN_ID", "second")
    assert current_run().id == "second"  # type: ignore[union-attr]
    monkeypatch.delenv("EVENTBLOCKS_FLOW_RUN_ID")
    assert current_run() is None


def test_explicit_scope_beats_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An explicit flow_run wins over the environment for current_run()."""
    monkeypatch.setenv("EVENTBLOCKS_FLOW_RUN_ID", "env-run")
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "prefect-run")
    with flow_run("explicit") as run:
        assert current_run() is run
    assert current_run().id == "env-run"  # type: ignore[union-attr]


def test_emitted_events_carry_the_environment_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a scope, emitted events are related to the environment's run."""
    monkeypatch.setenv("EVENTBLOCKS_FLOW_RUN_ID", "env-run-2")
    monkeypatch.setenv("EVENTBLOCKS_FLOW_RUN_NAME", "env-flow")
    with capture_events() as events:
        emit_event("x", {"id": "r"})
    (event,) = events
    (rel,) = event.related_by_role("flow-run")
    assert rel.id == "flow-run.env-run-2"
    assert rel.name == "env-flow"


def test_emitted_events_carry_the_prefect_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a scope, PREFECT__FLOW_RUN_ID tags emitted events."""
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "p-7")
    with capture_events() as events:
        emit_event("x", {"id": "r"})
    assert _run_ids(events[0], "flow-run") == ["flow-run.p-7"]


def test_explicit_scope_beats_the_environment_for_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside an explicit scope, events carry only the explicit flow run."""
    monkeypatch.setenv("EVENTBLOCKS_FLOW_RUN_ID", "env-run-3")
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "prefect-run-3")
    with capture_events() as events, flow_run("explicit") as run:
        emit_event("x", {"id": "r"})
    assert _run_ids(events[0], "flow-run") == [f"flow-run.{run.id}"]
    assert "env-run-3" not in events[0].model_dump_json()


def test_task_run_under_the_environment_flow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task_run with only an environment flow run keeps that flow run."""
    monkeypatch.setenv("EVENTBLOCKS_FLOW_RUN_ID", "env-run-4")
    with capture_events() as events, task_run("t") as task:
        flow = current_run()
        emit_event("x", {"id": "r"})
    assert flow is not None
    assert flow.id == "env-run-4"
    assert _run_ids(events[0], "flow-run") == ["flow-run.env-run-4"]
    assert _run_ids(events[0], "task-run") == [f"task-run.{task.id}"]
