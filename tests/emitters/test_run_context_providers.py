"""Run context providers: Airflow's variables, registered and installed providers,
and the order of the sources."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import emitters._providers.registry as registry
from blocks import Block
from emitters import (
    Run,
    RunContext,
    RunContextProvider,
    current_run,
    emit_event,
    flow_run,
    register_run_context_provider,
    task_run,
)
from emitters.testing import capture_events

AIRFLOW = {
    "AIRFLOW_CTX_DAG_ID": "nightly_etl",
    "AIRFLOW_CTX_DAG_RUN_ID": "scheduled__2026-12-03T00:00:00+00:00",
    "AIRFLOW_CTX_TASK_ID": "load_orders",
    "AIRFLOW_CTX_TRY_NUMBER": "2",
}


class Warehouse(Block):
    """A block whose calls the tests look at."""

    def query(self, sql: str) -> str:
        return sql


class FixedProvider:
    """A provider that always names the same runs."""

    def __init__(self, flow_id: str = "dag-7", source: str = "dagster") -> None:
        self.context = RunContext(
            Run(flow_id, "nightly", {"team": "data"}, "flow-run", source),
            Run(f"{flow_id}-step", "step", {}, "task-run", source),
        )
        self.calls = 0

    def current_run_context(self) -> RunContext | None:
        self.calls += 1
        return self.context


@pytest.fixture(autouse=True)
def no_orchestrator(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start each test with no Airflow, Prefect or eventblocks run variables."""
    for name in (
        *AIRFLOW,
        "EVENTBLOCKS_FLOW_RUN_ID",
        "EVENTBLOCKS_FLOW_RUN_NAME",
        "PREFECT__FLOW_RUN_ID",
    ):
        monkeypatch.delenv(name, raising=False)


def runs_of(event: Any) -> dict[str, Any]:
    """Return the event's flow run and task run related resources, by role."""
    return {r.role: r for r in event.related if r.role in ("flow-run", "task-run")}


def call_events() -> list[Any]:
    """Make one block call and return its two events."""
    with capture_events() as events:
        Warehouse().query("select 1")
    assert len(events) == 2
    return events


# -- Airflow --------------------------------------------------------------------


def test_airflow_variables_name_the_dag_run_and_task_instance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With Airflow's AIRFLOW_CTX_* variables set, a block call's events carry the
    DAG run as flow run and the task instance, with its try number, as task run."""
    for name, value in AIRFLOW.items():
        monkeypatch.setenv(name, value)

    for event in call_events():
        runs = runs_of(event)
        flow, task = runs["flow-run"], runs["task-run"]
        assert flow.id == "flow-run.nightly_etl/scheduled__2026-12-03T00:00:00+00:00"
        assert flow.name == "nightly_etl"
        assert flow.labels == {
            "dag-id": "nightly_etl",
            "dag-run-id": "scheduled__2026-12-03T00:00:00+00:00",
            "source": "airflow",
        }
        assert task.id == (
            "task-run.nightly_etl/scheduled__2026-12-03T00:00:00+00:00/load_orders/2"
        )
        assert task.name == "load_orders"
        assert task.labels == {
            "dag-id": "nightly_etl",
            "dag-run-id": "scheduled__2026-12-03T00:00:00+00:00",
            "task-id": "load_orders",
            "try-number": "2",
            "source": "airflow",
        }
    flow_run_ = current_run()
    assert flow_run_ is not None
    assert flow_run_.source == "airflow"
    task = current_run("task-run")
    assert task is not None
    assert task.name == "load_orders"


def test_the_next_task_instance_in_the_same_process_is_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When Airflow runs the next task in the same process (dag.test()), the next
    call carries the new task instance; without the variables, no run."""
    for name, value in AIRFLOW.items():
        monkeypatch.setenv(name, value)
    first = runs_of(call_events()[0])["task-run"]
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "publish")
    monkeypatch.setenv("AIRFLOW_CTX_TRY_NUMBER", "1")
    second = runs_of(call_events()[0])["task-run"]
    assert first.name == "load_orders"
    assert second.name == "publish"
    assert second.id.endswith("/publish/1")
    for name in AIRFLOW:
        monkeypatch.delenv(name)
    assert runs_of(call_events()[0]) == {}


def test_a_dag_run_without_a_task_is_a_flow_run_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the DAG's variables give a flow run and no task run."""
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "nightly_etl")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__1")
    runs = runs_of(call_events()[0])
    assert list(runs) == ["flow-run"]
    assert runs["flow-run"].id == "flow-run.nightly_etl/manual__1"


def test_airflow_ids_too_long_for_a_resource_id_are_shortened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A DAG id and run id longer together than a run id may be keep their start
    and a digest of the whole, so two long runs stay apart."""
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "d" * 200)
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "run-a-" + "r" * 100)
    first = runs_of(call_events()[0])["flow-run"]
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "run-b-" + "r" * 100)
    second = runs_of(call_events()[0])["flow-run"]
    assert len(first.id) <= 255
    assert first.id != second.id
    assert first.labels["dag-run-id"] == "run-a-" + "r" * 100


# -- the order of the sources ---------------------------------------------------


def test_an_explicit_scope_wins_over_a_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside flow_run(), the explicit run is used and says source eventblocks."""
    for name, value in AIRFLOW.items():
        monkeypatch.setenv(name, value)
    with flow_run("explicit", id="explicit-1"):
        runs = runs_of(call_events()[0])
    assert list(runs) == ["flow-run"]
    assert runs["flow-run"].id == "flow-run.explicit-1"
    assert runs["flow-run"].labels == {"source": "eventblocks"}


def test_a_task_run_scope_joins_the_providers_flow_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An explicit task_run() inside an Airflow DAG run belongs to that DAG run."""
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "nightly_etl")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__1")
    with task_run("inner", id="inner-1"):
        runs = runs_of(call_events()[0])
    assert runs["flow-run"].id == "flow-run.nightly_etl/manual__1"
    assert runs["flow-run"].labels["source"] == "airflow"
    assert runs["task-run"].id == "task-run.inner-1"
    assert runs["task-run"].labels == {"source": "eventblocks"}


def test_a_provider_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's variables win over EVENTBLOCKS_FLOW_RUN_ID; without them, the
    environment's run is used and says source environment."""
    monkeypatch.setenv("EVENTBLOCKS_FLOW_RUN_ID", "env-run")
    for name, value in AIRFLOW.items():
        monkeypatch.setenv(name, value)
    assert runs_of(call_events()[0])["flow-run"].labels["source"] == "airflow"
    for name in AIRFLOW:
        monkeypatch.delenv(name)
    (flow,) = runs_of(call_events()[0]).values()
    assert flow.id == "flow-run.env-run"
    assert flow.labels == {"source": "environment"}


def test_the_source_label_is_reserved_in_scopes() -> None:
    """A flow_run() label named source is refused: events set it themselves."""
    with pytest.raises(ValueError, match="'source' is reserved"):
        flow_run("x", labels={"source": "mine"})


def test_a_run_context_holds_runs_of_the_right_kind() -> None:
    """RunContext refuses a task run as its flow run, and anything not a Run."""
    task = Run("t", "t", kind="task-run")
    with pytest.raises(TypeError, match=r"RunContext\.flow"):
        RunContext(task)
    with pytest.raises(TypeError, match=r"RunContext\.task"):
        RunContext(None, "t")  # type: ignore[arg-type]
    both = RunContext(Run("f", "f"), task)
    assert [r.id for r in both.related] == ["flow-run.f", "task-run.t"]


# -- registered providers -------------------------------------------------------


def test_a_registered_provider_names_the_runs_until_removed() -> None:
    """A provider registered in code is asked first; removing it restores the
    built-ins."""
    provider = FixedProvider()
    assert isinstance(provider, RunContextProvider)
    remove = register_run_context_provider(provider)
    try:
        runs = runs_of(call_events()[0])
        with capture_events() as events:
            emit_event("custom.thing", {"id": "thing.1"})
    finally:
        remove()
    assert runs["flow-run"].id == "flow-run.dag-7"
    assert runs["flow-run"].labels == {"team": "data", "source": "dagster"}
    assert runs["task-run"].id == "task-run.dag-7-step"
    assert runs_of(events[0])["flow-run"].id == "flow-run.dag-7"
    assert provider.calls >= 2
    assert runs_of(call_events()[0]) == {}


def test_the_latest_registered_provider_is_asked_first() -> None:
    """Of two registered providers, the one registered last answers."""
    remove_a = register_run_context_provider(FixedProvider("a"))
    remove_b = register_run_context_provider(FixedProvider("b"))
    try:
        assert runs_of(call_events()[0])["flow-run"].id == "flow-run.b"
    finally:
        remove_b()
        remove_a()


class Raising:
    """A provider that fails."""

    def current_run_context(self) -> RunContext | None:
        raise RuntimeError("orchestrator unreachable")


class Confused:
    """A provider that returns the wrong thing."""

    def current_run_context(self) -> Any:
        return {"flow": "x"}


@pytest.mark.parametrize(
    ("bad", "logged"),
    [
        (Raising(), "raised RuntimeError: orchestrator unreachable"),
        (Confused(), "returned a dict, not a RunContext"),
    ],
)
def test_a_failing_provider_is_logged_and_the_next_one_asked(
    caplog: pytest.LogCaptureFixture, bad: Any, logged: str
) -> None:
    """A provider that raises or returns a non-RunContext is logged once and
    skipped; the call still succeeds, with the next provider's runs."""
    remove_good = register_run_context_provider(FixedProvider("good"))
    remove_bad = register_run_context_provider(bad)
    try:
        with caplog.at_level(logging.WARNING, logger="emitters"):
            first = runs_of(call_events()[0])
            call_events()
    finally:
        remove_bad()
        remove_good()
    assert first["flow-run"].id == "flow-run.good"
    warnings = [r.getMessage() for r in caplog.records if logged in r.getMessage()]
    assert len(warnings) == 1
    assert type(bad).__qualname__ in warnings[0]


@pytest.mark.parametrize("thing", [object(), FixedProvider, "prefect"])
def test_registering_something_that_is_not_a_provider_is_refused(thing: Any) -> None:
    """An object without current_run_context(), or a class, is a TypeError."""
    with pytest.raises(TypeError, match="current_run_context"):
        register_run_context_provider(thing)


# -- installed providers (entry points) ----------------------------------------


@pytest.fixture
def fresh_entry_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the registry read the entry points again, and again after the test."""
    monkeypatch.setattr(registry, "_from_entry_points", None)
    monkeypatch.setattr(registry, "_others", (registry._load,))
    yield
    monkeypatch.undo()
    for name in [m for m in sys.modules if m.startswith("fakeprov_")]:
        del sys.modules[name]
    registry._rebuild()


def install_distribution(root: Path, entry_points: str, name: str, source: str) -> None:
    """Put a distribution with ``entry_points`` and the module ``name`` (made of
    ``source``) on sys.path, as pip would install it."""
    (root / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    dist_info = root / "fakeprov-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fakeprov\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(entry_points), encoding="utf-8"
    )


PROVIDER_MODULE = """
from emitters import Run, RunContext


class OrchestratorProvider:
    def current_run_context(self):
        return RunContext(Run("orch-1", "nightly", {}, "flow-run", "orchestrator"))


class Broken:
    def __init__(self):
        raise RuntimeError("cannot start")
"""


@pytest.mark.usefixtures("fresh_entry_points")
def test_a_provider_installed_through_an_entry_point_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A provider class named in the eventblocks.run_context entry points of an
    installed distribution is found through package metadata and asked; a broken
    one is logged and skipped, and one naming a built-in adds nothing."""
    install_distribution(
        tmp_path,
        """
        [eventblocks.run_context]
        broken = fakeprov_runs:Broken
        orchestrator = fakeprov_runs:OrchestratorProvider
        prefect = emitters._providers.prefect:PrefectRunContextProvider
        """,
        "fakeprov_runs",
        PROVIDER_MODULE,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="emitters"):
        runs = runs_of(call_events()[0])
    assert runs["flow-run"].id == "flow-run.orch-1"
    assert runs["flow-run"].labels == {"source": "orchestrator"}
    names = [type(p).__name__ for p in registry.run_context_providers()]
    assert names == [
        "OrchestratorProvider",
        "PrefectRunContextProvider",
        "AirflowRunContextProvider",
    ]
    assert any(
        "'broken'" in r.getMessage() and "cannot start" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.usefixtures("fresh_entry_points")
def test_an_entry_point_that_is_not_a_provider_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry point naming something without current_run_context() is logged."""
    install_distribution(
        tmp_path,
        """
        [eventblocks.run_context]
        odd = fakeprov_odd:NOT_A_PROVIDER
        """,
        "fakeprov_odd",
        "NOT_A_PROVIDER = 42\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="emitters"):
        assert runs_of(call_events()[0]) == {}
    assert any("has no current_run_context()" in r.getMessage() for r in caplog.records)


# -- Prefect, when the program does not use it ---------------------------------


def test_block_calls_never_import_prefect() -> None:
    """A program that does not import Prefect makes block calls without Prefect
    being imported, and its events carry no run."""
    program = textwrap.dedent(
        """
        import sys

        from blocks import Block
        from emitters.testing import capture_events


        class Warehouse(Block):
            def query(self, sql: str) -> str:
                return sql


        with capture_events() as events:
            Warehouse().query("select 1")
        assert [r.role for r in events[0].related] == ["block-type"], events[0]
        assert not [m for m in sys.modules if m.split(".")[0] == "prefect"]
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_pyproject_declares_the_built_in_providers() -> None:
    """The eventblocks.run_context entry points of pyproject.toml are the built-ins
    the registry knows without metadata (so an installed copy adds no duplicate)."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"][
        "entry-points"
    ]["eventblocks.run_context"]
    assert set(declared.values()) == set(registry.BUILT_IN)


def test_a_prefect_context_of_an_unknown_shape_never_breaks_a_call(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """If Prefect's run context lacks what the provider reads, the block call still
    succeeds, without Prefect's runs, and the problem is logged."""
    import contextvars
    import types

    from emitters._providers.prefect import PrefectRunContextProvider

    class OddContext:
        """A context without flow_run, as a future Prefect might have."""

        __var__: contextvars.ContextVar[object] = contextvars.ContextVar("odd_flow")

    class NoTask:
        __var__: contextvars.ContextVar[object] = contextvars.ContextVar("odd_task")

    fake = types.ModuleType("prefect.context")
    fake.FlowRunContext = OddContext  # type: ignore[attr-defined]
    fake.TaskRunContext = NoTask  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "prefect.context", fake)
    provider = PrefectRunContextProvider()
    remove = register_run_context_provider(provider)
    token = OddContext.__var__.set(object())
    try:
        with caplog.at_level(logging.WARNING, logger="emitters"):
            assert provider.current_run_context() is None
            assert runs_of(call_events()[0]) == {}
    finally:
        OddContext.__var__.reset(token)
        remove()
    assert any(
        "Prefect's run context could not be read" in r.getMessage()
        for r in caplog.records
    )
