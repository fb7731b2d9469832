"""bench_http.py runs in its quick mode and reports every figure it claims."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_http_benchmark_reports_throughput_and_no_loss() -> None:
    """2,000 calls reach the receiver whole: every event counted, none dropped."""
    out = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "bench_http.py"),
            "--calls",
            "2000",
            "--repeats",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["events"] == 4000
    assert result["received_events"] == 4000
    assert result["dropped"] == 0
    assert result["failed"] == 0
    assert result["budget_events_per_s"] == 50_000
    for key in (
        "events_per_s",
        "ratio_to_budget",
        "wall_s",
        "caller_s",
        "null_sink_events_per_s",
        "http_vs_null_sink",
        "sender_cpu_us_per_event",
    ):
        assert isinstance(result[key], float)
        assert result[key] > 0
    assert result["wall_s"] > result["caller_s"]
    assert result["requests"] >= 4000 / result["batch_size"]
    # gzip is on: JSON events take far less than their raw size on the wire.
    assert 0 < result["wire_bytes_per_event"] < 100
