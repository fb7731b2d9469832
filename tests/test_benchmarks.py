"""The benchmark scripts run and report what they claim to measure.

These are not timed tests: they check that each script completes, that its report
has every figure, and the one budget that is not a time (bounded memory).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

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


def test_hook_benchmark_reports_each_hook_against_the_floor() -> None:
    """bench_hooks.py times the HTTP and SQL payload hooks and the floor."""
    result = _run("bench_hooks.py", "--calls", "200", "--repeats", "1")
    ns = result["ns_per_call"]
    assert isinstance(ns, dict)
    assert set(ns) == {"floor", "http_get", "sql_execute", "sql_fetch_all"}
    assert all(isinstance(v, float) and v > 0 for v in ns.values())
    ratios = result["vs_floor"]
    assert isinstance(ratios, dict)
    assert set(ratios) == {"http_get", "sql_execute", "sql_fetch_all"}


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
    lean = result["shared_parts_vs_inline_row_time"]
    assert isinstance(lean, float)
    assert lean > 0


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_store_benchmark_measures_a_server_store_against_its_driver(
    server: str, request: pytest.FixtureRequest
) -> None:
    """bench_store.py --url stores every event on a PostgreSQL or MariaDB server,
    in a database it creates and drops, against the driver's executemany."""
    url = request.getfixturevalue(
        "postgres_url" if server == "postgresql" else "mysql_url"
    )

    def bench_databases() -> set[str]:
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        query = (
            "SELECT datname FROM pg_database"
            if server == "postgresql"
            else "SHOW DATABASES"
        )
        with engine.connect() as conn:
            names = {row[0] for row in conn.exec_driver_sql(query)}
        engine.dispose()
        return {n for n in names if n.startswith("eventblocks_bench_")}

    before = bench_databases()
    result = _run("bench_store.py", "--calls", "500", "--repeats", "1", "--url", url)
    assert result["database"] == ("postgresql" if server == "postgresql" else "mysql")
    assert result["events"] == 1000
    assert result["dropped"] == 0
    rates = result["events_per_s"]
    assert isinstance(rates, dict)
    assert all(isinstance(v, float) and v > 0 for v in rates.values())
    assert bench_databases() <= before  # its database is dropped


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


def test_runs_benchmark_reports_every_query_and_ratio() -> None:
    """bench_runs.py --quick fills a store, builds summaries, times each query."""
    result = _run("bench_runs.py", "--quick", "--repeats", "1")
    assert result["events"] == 20_000
    assert result["runs"] == 200
    assert result["runs_stored"] == 200
    assert result["runs_for_block_rows"] > 0
    assert result["events_block_rows"] == 100
    ms = result["median_ms"]
    assert isinstance(ms, dict)
    assert {
        "runs_ls",
        "runs_for_block",
        "events_block_limit_100",
        "previous_runs_for_block",
        "previous_events_block_limit_100",
    } <= set(ms)
    assert all(isinstance(v, float) and v > 0 for v in ms.values())
    ratios = result["ratios"]
    assert isinstance(ratios, dict)
    assert ratios["runs_ls_vs_goal"] == ms["runs_ls"] / 20.0


def test_ui_benchmark_times_every_route_against_the_budget() -> None:
    """bench_ui.py fills a store through its writer, times each API route through
    the ASGI app, and prints each ratio to the 200 ms budget."""
    result = _run("bench_ui.py", "--events", "20000", "--runs", "200", "--repeats", "1")
    assert result["runs"] == 200
    assert 19_000 <= result["events"] <= 20_000
    assert result["big_calls"] == 200
    assert result["timeline_calls"] == 200
    assert result["timeline_tasks"] == 10
    assert result["timeline_infrastructure"] == 2
    assert result["event_has_outcome"] is True
    assert result["block_runs_rows"] > 0
    ms = result["median_ms"]
    assert isinstance(ms, dict)
    assert set(ms) == {
        "runs", "runs_failed_name", "run_big", "timeline_big", "blocks",
        "block_runs", "event",
    }  # fmt: skip
    assert all(isinstance(v, float) and v > 0 for v in ms.values())
    ratios = result["ratios"]
    assert isinstance(ratios, dict)
    assert ratios["timeline_big_vs_budget"] == ms["timeline_big"] / 200.0


def test_secret_benchmark_reports_flat_ratios_and_release() -> None:
    """bench_secrets.py measures each size, prints ratios, and sees secrets released."""
    result = _run("bench_secrets.py", "--sizes", "0,200,2000", "--repeats", "20")
    rows = result["rows"]
    assert isinstance(rows, list)
    assert [row["size"] for row in rows] == [0, 200, 2000]
    assert all(row["released"] is True for row in rows)
    assert all(row["mask_1kb_us"] >= 0 and row["build_us"] > 0 for row in rows)
    ratios = result["ratios_vs_base"]
    assert isinstance(ratios, dict)
    assert set(ratios) == {"2000"}
    assert set(ratios["2000"]) == {"build", "mask_1kb", "bytes_per_secret"}


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
