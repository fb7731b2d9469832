"""Per-call cost of instrumented block methods, as ratios measured in one process.

Run: ``python benchmarks/bench_calls.py [--calls N] [--repeats R] [--json]``

Every figure is the median of R repetitions of a loop of N calls, and every
comparison is between loops measured in this same run (the budgets, in
docs/performance.md: events off cost at most 1.1x a plain call, or at most 1 us
more at run time; events on, the caller's loop at most 2.5x the floor and the
whole cost at most half of one span):

- plain: a method call on a pydantic model, no wrapper;
- wrapt: the same method behind a pass-through ``wrapt.FunctionWrapper``;
- floor: wrapt plus two ``time.perf_counter_ns()`` and two list appends;
- off (class): a block class with ``events_enabled = False``;
- off (env): ``EVENTBLOCKS_EVENTS=off`` at import, measured in a child process
  against its own plain loop;
- off (run time): ``configure(enabled=False)``;
- on: ``configure(emitters=[MemoryEmitter()])``, the caller's loop only;
- on, whole cost: the caller's loop plus ``flush()`` until every event reached the
  memory emitter, plus reading each delivered event once;
- span: one OpenTelemetry SDK span (``start_as_current_span``) with no processor;
- on_live: ``OpenTelemetryEmitter(tracer_provider=TracerProvider(), live=True)``
  (no span processor), the caller's loop only: events plus a current span per call.
- run context providers, in a child process (``providers_child``): the caller's
  loop before the program imports Prefect, after it imported ``prefect.context``
  (no flow running), with Airflow's ``AIRFLOW_CTX_*`` variables set, and, with
  ``--prefect-flow``, inside a real Prefect flow run (Prefect then needs a server:
  ``PREFECT_API_URL``, or the temporary one Prefect starts by itself).

The report also shows how much of the caller's loop and of the whole cost was
the cyclic garbage collector (any thread), which runs more the more objects a
program creates and keeps. The collector stays on in every loop, but each timed
loop starts after a full collection: objects another loop left half-way to the
oldest generation would otherwise set off a full collection in whichever loop
came next, and charge it the walk of everything that loop keeps alive.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

import wrapt
from pydantic import BaseModel

from blocks import Block
from emitters import MemoryEmitter, configure, flow_run, flush, stats
from emitters._providers.registry import provided_run_context

BUDGETS = {
    "off_class_ratio": 1.1,
    "off_env_ratio": 1.1,
    "off_runtime_added_ns": 1000.0,
    "on_caller_vs_floor": 2.5,
    "on_whole_vs_span": 0.5,
}


class PlainModel(BaseModel):
    x: int = 1

    def method(self, a: int) -> int:
        return a + self.x


# A budget whose wake-up share (a sixteenth) no benchmark loop reaches.
_PARKED = 1 << 40


def _passthrough(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    return wrapped(*args, **kwargs)


_sink: list[int] = []


def _floor_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    t0 = time.perf_counter_ns()
    _sink.append(t0)
    result = wrapped(*args, **kwargs)
    t1 = time.perf_counter_ns()
    _sink.append(t1)
    return result


class WraptModel(BaseModel):
    x: int = 1

    def method(self, a: int) -> int:
        return a + self.x


WraptModel.method = wrapt.FunctionWrapper(  # type: ignore[method-assign]
    WraptModel.__dict__["method"], _passthrough
)


class FloorModel(BaseModel):
    x: int = 1

    def method(self, a: int) -> int:
        return a + self.x


FloorModel.method = wrapt.FunctionWrapper(  # type: ignore[method-assign]
    FloorModel.__dict__["method"], _floor_wrapper
)


class BenchBlock(Block):
    x: int = 1

    def method(self, a: int) -> int:
        return a + self.x


class QuietBlock(Block):
    events_enabled = False
    x: int = 1

    def method(self, a: int) -> int:
        return a + self.x


def _settled() -> None:
    """Start the next timed loop with no collection owed by the last one."""
    gc.collect()


def _loop(obj: Any, n: int) -> int:
    method = obj.method
    t0 = time.perf_counter_ns()
    for i in range(n):
        method(i)
    return time.perf_counter_ns() - t0


def _loop_unbound(obj: Any, n: int) -> int:
    # Attribute lookup on each call, as user code does it.
    t0 = time.perf_counter_ns()
    for i in range(n):
        obj.method(i)
    return time.perf_counter_ns() - t0


def _span_loop(n: int) -> int:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("bench")
    t0 = time.perf_counter_ns()
    for _ in range(n):
        with tracer.start_as_current_span("op"):
            pass
    return time.perf_counter_ns() - t0


def _live_loop(block: Any, n: int) -> int:
    """The caller's loop with live OpenTelemetry spans (no span processor)."""
    from opentelemetry.sdk.trace import TracerProvider

    from emitters.otel import OpenTelemetryEmitter

    sink = OpenTelemetryEmitter(tracer_provider=TracerProvider(), live=True)
    configure(emitters=[sink], flush_interval=60.0, max_buffer_bytes=_PARKED)
    flush()
    _settled()
    elapsed = _loop_unbound(block, n)
    flush(timeout=None)
    configure(emitters=[], enabled=False)
    return elapsed


class _GcClock:
    """Adds up the time the cyclic garbage collector runs (any thread)."""

    def __init__(self) -> None:
        self.total_ns = 0
        self._started = 0
        gc.callbacks.append(self._callback)

    def reset(self) -> None:
        self.total_ns = 0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
        else:
            self.total_ns += time.perf_counter_ns() - self._started


_gc_clock = _GcClock()


def _median_ns_per_call(samples: list[int], n: int) -> float:
    return statistics.median(samples) / n


def _env_off_child(n: int, repeats: int) -> dict[str, float]:
    """Measure in a child started with EVENTBLOCKS_EVENTS=off."""
    env = dict(os.environ, EVENTBLOCKS_EVENTS="off")
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child-off",
            "--calls",
            str(n),
            "--repeats",
            str(repeats),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def child_off(n: int, repeats: int) -> None:
    from blocks import is_instrumented

    plain, off = [], []
    for _ in range(repeats):
        plain.append(_loop_unbound(PlainModel(), n))
        off.append(_loop_unbound(BenchBlock(), n))
    print(
        json.dumps(
            {
                "plain_ns": _median_ns_per_call(plain, n),
                "off_env_ns": _median_ns_per_call(off, n),
                "wrapper_installed": is_instrumented(BenchBlock.method),
            }
        )
    )


def _caller_loop(block: Any, n: int) -> int:
    """The caller's loop with events on into a memory sink (see measure())."""
    configure(emitters=[MemoryEmitter()], flush_interval=60.0, max_buffer_bytes=_PARKED)
    flush()
    elapsed = _loop_unbound(block, n)
    flush(timeout=None)
    configure(emitters=[], enabled=False)
    return elapsed


AIRFLOW_VARIABLES = {
    "AIRFLOW_CTX_DAG_ID": "nightly_etl",
    "AIRFLOW_CTX_DAG_RUN_ID": "scheduled__2026-12-03T00:00:00+00:00",
    "AIRFLOW_CTX_TASK_ID": "load_orders",
    "AIRFLOW_CTX_TRY_NUMBER": "1",
}


def child_providers(n: int, repeats: int, in_flow: bool) -> None:
    """Measure what the run context providers add to a call (in a child process).

    ``<state>_lookup_ns`` is the providers' look-up timed alone: what each block
    call made outside an explicit scope adds on the caller's thread.

    In each state (before Prefect is imported, after ``import prefect.context``,
    with Airflow's variables set, inside a Prefect flow run), the caller's loop runs
    as it is and inside an explicit ``flow_run()`` scope, alternating: a scope
    answers before the providers are asked, and the caller's work is otherwise the
    same, so the difference is the providers' cost. The cyclic garbage collector is
    off during the loops: importing Prefect adds millions of objects that every
    full collection walks, which would be charged to whichever loop it hit.
    """
    block = BenchBlock()
    result: dict[str, Any] = {
        "prefect_imported_before": "prefect.context" in sys.modules
    }
    _caller_loop(block, 10)  # the entry points are read once, on first use

    def pair() -> tuple[float, float]:
        asked, scoped = [], []
        gc.collect()
        gc.disable()
        try:
            for _ in range(repeats):
                asked.append(_caller_loop(block, n))
                with flow_run("bench-scope"):
                    scoped.append(_caller_loop(block, n))
        finally:
            gc.enable()
        return _median_ns_per_call(asked, n), _median_ns_per_call(scoped, n)

    def lookup() -> float:
        # What a call outside a scope adds, timed alone: the least of several
        # runs, which a busy machine disturbs least.
        runs = timeit.repeat(provided_run_context, number=n, repeat=max(repeats, 5))
        return min(runs) / n * 1e9

    def measure_state() -> tuple[float, float, float]:
        return (*pair(), lookup())

    def record(state: str, measured: tuple[float, float, float] | None) -> None:
        asked, scoped, alone = measured if measured is not None else (None,) * 3
        result[f"{state}_ns"] = asked
        result[f"{state}_in_scope_ns"] = scoped
        added = None if asked is None or scoped is None else asked - scoped
        result[f"{state}_added_ns"] = added
        result[f"{state}_lookup_ns"] = alone

    record("no_prefect", measure_state())
    try:
        import prefect.context  # noqa: F401
    except ImportError:
        record("prefect_imported", None)
    else:
        record("prefect_imported", measure_state())
    os.environ.update(AIRFLOW_VARIABLES)
    record("airflow", measure_state())
    for name in AIRFLOW_VARIABLES:
        del os.environ[name]
    record("in_prefect_flow", None)
    if in_flow and result["prefect_imported_ns"] is not None:
        from prefect import flow

        @flow(name="bench-calls")
        def bench_flow() -> tuple[float, float, float]:
            return measure_state()

        record("in_prefect_flow", bench_flow())
    print(json.dumps(result))


PROVIDER_STATES = ("no_prefect", "prefect_imported", "airflow", "in_prefect_flow")


def _providers_child(n: int, repeats: int, in_flow: bool) -> dict[str, Any]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW_CTX_", "PREFECT__", "EVENTBLOCKS_FLOW_RUN"))
    }
    command = [sys.executable, __file__, "--child-providers"]
    command += ["--calls", str(n), "--repeats", str(repeats)]
    out = subprocess.run(
        command + (["--prefect-flow"] if in_flow else []),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    child: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return child


def measure(n: int, repeats: int, prefect_flow: bool = False) -> dict[str, Any]:
    plain_m, wrapt_m, floor_m = PlainModel(), WraptModel(), FloorModel()
    block, quiet = BenchBlock(), QuietBlock()
    samples: dict[str, list[int]] = {
        k: []
        for k in (
            "plain",
            "wrapt",
            "floor",
            "off_class",
            "off_runtime",
            "on_caller",
            "on_whole",
            "span",
            "on_live",
        )
    }
    gc_ns: list[int] = []
    caller_gc_ns: list[int] = []
    for _ in range(repeats):
        # The cheap loops take milliseconds: three samples each per repetition,
        # alternating, so that a noisy moment does not decide a ratio.
        configure(emitters=[], enabled=False)
        for _ in range(3):
            for key, obj in (
                ("plain", plain_m),
                ("off_class", quiet),
                ("off_runtime", block),
                ("wrapt", wrapt_m),
                ("floor", floor_m),
            ):
                _settled()
                samples[key].append(_loop_unbound(obj, n))
            _sink.clear()

        memory = MemoryEmitter()
        # The buffer's budget is large enough that the loop stays below the share
        # that wakes the dispatcher early (a sixteenth), so it stays parked until
        # flush(): the loop times the caller's own work, and the whole cost adds
        # the dispatcher's.
        configure(emitters=[memory], flush_interval=60.0, max_buffer_bytes=_PARKED)
        flush()
        _settled()
        _gc_clock.reset()
        caller = _loop_unbound(block, n)
        samples["on_caller"].append(caller)
        caller_gc_ns.append(_gc_clock.total_ns)
        t0 = time.perf_counter_ns()
        flush(timeout=None)
        count = 0
        for event in memory.events:
            count += event.event is not None
        samples["on_whole"].append(caller + time.perf_counter_ns() - t0)
        gc_ns.append(_gc_clock.total_ns)
        if count != 2 * n:
            raise RuntimeError(f"expected {2 * n} events, the sink got {count}")
        del memory
        configure(emitters=[], enabled=False)

        _settled()
        samples["span"].append(_span_loop(n))
        samples["on_live"].append(_live_loop(block, n))
    configure(emitters=[])
    ns = {k: _median_ns_per_call(v, n) for k, v in samples.items()}
    ns["on_caller_of_which_gc"] = _median_ns_per_call(caller_gc_ns, n)
    ns["on_whole_of_which_gc"] = _median_ns_per_call(gc_ns, n)
    child = _env_off_child(n, repeats)
    providers = _providers_child(n, repeats, prefect_flow)
    return {
        "calls": n,
        "repeats": repeats,
        "ns_per_call": ns,
        "off_env_child": child,
        "providers_child": providers,
        "ratios": {
            "off_class_ratio": ns["off_class"] / ns["plain"],
            "off_env_ratio": child["off_env_ns"] / child["plain_ns"],
            "off_runtime_added_ns": ns["off_runtime"] - ns["plain"],
            "on_caller_vs_floor": ns["on_caller"] / ns["floor"],
            "on_whole_vs_span": ns["on_whole"] / ns["span"],
        },
        "stats_dropped": stats()["dropped"],
    }


def report(result: dict[str, Any]) -> str:
    ns, ratios = result["ns_per_call"], result["ratios"]
    lines = [
        f"calls per loop: {result['calls']:,}, repetitions: {result['repeats']} "
        "(medians)",
        "",
        "loop                         ns/call",
    ]
    for key, value in ns.items():
        lines.append(f"  {key:26s} {value:8.1f}")
    lines += ["", "budget                       measured   budget   holds"]
    for key, limit in BUDGETS.items():
        value = ratios[key]
        unit = " ns" if key.endswith("_ns") else "x"
        lines.append(
            f"  {key:26s} {value:8.2f}{unit} {limit:7.2f}{unit}   "
            f"{'yes' if value <= limit else 'NO'}"
        )
    lines.append(
        f"  off (env) wrapper installed: {result['off_env_child']['wrapper_installed']}"
    )
    providers = result["providers_child"]
    lines += [
        "",
        "run context providers (child)    look-up   loop: asked  in scope  added",
    ]
    for state in PROVIDER_STATES:
        on, off = providers[f"{state}_ns"], providers[f"{state}_in_scope_ns"]
        if on is None:
            lines.append(f"  {state:30s} (not measured)")
            continue
        added, alone = providers[f"{state}_added_ns"], providers[f"{state}_lookup_ns"]
        lines.append(f"  {state:30s}{alone:8.1f}   {on:10.1f} {off:9.1f} {added:8.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--prefect-flow",
        action="store_true",
        help="also measure inside a real Prefect flow run (needs a Prefect server)",
    )
    parser.add_argument("--child-off", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--child-providers", action="store_true", help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child_off:
        child_off(args.calls, args.repeats)
        return
    if args.child_providers:
        child_providers(args.calls, args.repeats, args.prefect_flow)
        return
    result = measure(args.calls, args.repeats, args.prefect_flow)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
