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


def test_memory_stays_bounded_against_a_stalled_sink() -> None:
    """200,000 calls into a sink that never returns, 4 MiB budget: drops counted,
    the one failed call kept, growth far under the budget."""
    result = _run(
        "bench_memory.py", "--calls", "200000", "--max-buffer-bytes", "4194304"
    )
    assert result["events_emitted"] == 400_000
    dropped = result["events_dropped"]
    assert isinstance(dropped, int)
    assert dropped > 300_000
    assert result["failed_calls_received"] == 1
    growth = result["growth_mb"]
    assert isinstance(growth, float)
    assert growth < 100.0


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


def test_burst_benchmark_stores_every_event_of_the_default_configuration() -> None:
    """bench_burst.py: a burst with nothing configured stores every event, the
    failure included (the exit time is reported, not asserted)."""
    result = _run("bench_burst.py", "--calls", "20000")
    assert result["expected_events"] == 40_000
    assert result["stored_events"] == 40_000
    assert result["failures_stored"] == 1
    assert result["loss_records"] == 0
    assert isinstance(result["exit_s"], float)


def test_fetch_benchmark_reports_its_ratios() -> None:
    """bench_fetch.py times raw SQLAlchemy, the connector and exhausted results."""
    result = _run("bench_fetch.py", "--calls", "200", "--repeats", "1")
    ns = result["ns_per_call"]
    assert isinstance(ns, dict)
    assert set(ns) == {"raw", "connector", "again"}
    assert all(isinstance(v, float) and v > 0 for v in ns.values())
    ratios = result["ratios"]
    assert isinstance(ratios, dict)
    assert set(ratios) == {"connector_vs_raw", "again_vs_raw"}


def test_nats_benchmark_stores_every_event_once(
    nats_url: str, postgres_url: str
) -> None:
    """bench_nats.py publishes from worker processes, ingests into PostgreSQL, and
    reports every rate and ratio."""
    result = _run(
        "bench_nats.py", "--workers", "2", "--events", "1000",
        "--nats", nats_url, "--to", postgres_url,
    )  # fmt: skip
    assert (result["events"], result["in_stream"], result["stored"]) == (2000,) * 3
    assert result["store"].startswith("postgresql")
    rates = result["events_per_s"]
    assert isinstance(rates, dict)
    assert set(rates) == {
        "raw_client_one_process",
        "emitter_one_process",
        "emitter_all_workers",
        "ingest_into_store",
        "store_emit_batch_direct",
    }
    assert all(isinstance(v, float) and v > 0 for v in rates.values())
    ratios = result["ratios"]
    assert isinstance(ratios, dict)
    assert ratios["workers_vs_one"] == (
        rates["emitter_all_workers"] / rates["emitter_one_process"]
    )
    assert set(ratios) == {
        "emitter_vs_raw_client",
        "workers_vs_one",
        "ingest_vs_direct_store",
    }
