"""The benchmark scripts run and report what they claim to measure.

These are not timed tests: they check that each script completes, that its report
has every figure, and the one budget that is not a time (bounded memory).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(script: str, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_call_benchmark_reports_every_ratio() -> None:
    """bench_calls.py measures every loop and prints each budget's ratio."""
    result = _run("bench_calls.py", "--calls", "2000", "--repeats", "1")
    ns = result["ns_per_call"]
    assert isinstance(ns, dict)
    assert set(ns) == {
        "plain",
        "wrapt",
        "floor",
        "off_class",
        "off_runtime",
        "on_caller",
        "on_whole",
        "on_caller_of_which_gc",
        "on_whole_of_which_gc",
        "span",
        "on_live",
    }
    assert all(isinstance(v, float) and v >= 0 for v in ns.values())
    assert ns["on_whole"] > ns["on_caller"] > 0
    ratios = result["ratios"]
    assert isinstance(ratios, dict)
    assert set(ratios) == {
        "off_class_ratio",
        "off_env_ratio",
        "off_runtime_added_ns",
        "on_caller_vs_floor",
        "on_whole_vs_span",
    }
    child = result["off_env_child"]
    assert isinstance(child, dict)
    assert child["wrapper_installed"] is False
    providers = result["providers_child"]
    assert isinstance(providers, dict)
    assert providers["prefect_imported_before"] is False
    # Prefect is part of the dev install: the state after its import is measured.
    for state in ("no_prefect", "prefect_imported", "airflow"):
        assert providers[f"{state}_ns"] > 0
        assert providers[f"{state}_in_scope_ns"] > 0
        assert isinstance(providers[f"{state}_added_ns"], float)
        assert providers[f"{state}_lookup_ns"] > 0
    # Inside a flow run only with --prefect-flow, which needs a Prefect server.
    assert providers["in_prefect_flow_ns"] is None


def test_memory_stays_bounded_against_a_stalled_sink() -> None:
    """200,000 calls into a sink that never returns: drops counted, growth < 50 MB."""
    result = _run("bench_memory.py", "--calls", "200000")
    assert result["events_emitted"] == 400_000
    dropped = result["events_dropped"]
    assert isinstance(dropped, int)
    assert dropped >= 400_000 - 2 * 10_000
    growth = result["growth_mb"]
    assert isinstance(growth, float)
    assert growth < 50.0


def test_store_benchmark_stores_every_event_and_reports_ratios() -> None:
    """bench_store.py stores every event and compares with raw executemany."""
    result = _run("bench_store.py", "--calls", "2000", "--repeats", "1")
    assert result["events"] == 4000
    assert result["dropped"] == 0
    rates = result["events_per_s"]
    assert isinstance(rates, dict)
    assert set(rates) == {
        "store_end_to_end",
        "raw_executemany_batched",
        "raw_executemany_single_transaction",
    }
    assert all(isinstance(v, float) and v > 0 for v in rates.values())
    ratios = result["ratios"]
    assert isinstance(ratios, dict)
    assert (
        ratios["vs_raw_batched"]
        == rates["store_end_to_end"] / rates["raw_executemany_batched"]
    )
