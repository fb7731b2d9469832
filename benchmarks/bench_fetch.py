"""The cost of SqlAlchemyConnector's paging around SQLAlchemy, per fetch_all call.

Run: ``python benchmarks/bench_fetch.py [--calls N] [--repeats R] [--json]``

On a SQLite file of 1,000 rows, with events switched off (``EVENTBLOCKS_EVENTS=off``)
so that only the connector's own work is measured, each repetition times N calls
of a parameterised ``SELECT`` returning one row, each with other parameters:

- raw: SQLAlchemy alone on an engine made the same way: ``connect()``,
  ``execute(...)``, ``fetchall()``, close;
- connector: ``SqlAlchemyConnector.fetch_all(query, {"id": i})``, which keys the
  result, keeps it open while it is read and gives its connection back to the pool
  once read to the end (the connector holds no connection between calls);
- again: the same N calls once more: each is a result already read to the end,
  answered empty without touching the database.

Figures are medians of R repetitions; the ratios compare the connector with raw
SQLAlchemy from this same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["EVENTBLOCKS_EVENTS"] = "off"

import sqlalchemy as sa

from blocks.sql import DatabaseCredentials, SqlAlchemyConnector

ROWS = 1_000
QUERY = "SELECT name FROM customers WHERE id = :id"


def _setup(path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        )
        conn.execute(
            sa.text("INSERT INTO customers (id, name) VALUES (:id, :name)"),
            [{"id": i, "name": f"customer {i}"} for i in range(ROWS)],
        )
    engine.dispose()


def _one(path: Path, calls: int) -> dict[str, float]:
    engine = sa.create_engine(f"sqlite:///{path}", hide_parameters=True)
    statement = sa.text(QUERY)
    start = time.perf_counter()
    for i in range(calls):
        with engine.connect() as conn:
            conn.execute(statement, {"id": i % ROWS}).fetchall()
    raw = time.perf_counter() - start
    engine.dispose()

    connector = SqlAlchemyConnector(
        credentials=DatabaseCredentials(url=f"sqlite:///{path}")
    )
    connector.get_engine()
    start = time.perf_counter()
    for i in range(calls):
        connector.fetch_all(QUERY, {"id": i % ROWS})
    fetch = time.perf_counter() - start
    held = connector.get_engine().pool.checkedout()
    start = time.perf_counter()
    for i in range(calls):
        connector.fetch_all(QUERY, {"id": i % ROWS})
    again = time.perf_counter() - start
    connector.close()
    if held:
        raise SystemExit(f"the connector held {held} connections after the loop")
    return {
        "raw": raw / calls * 1e9,
        "connector": fetch / calls * 1e9,
        "again": again / calls * 1e9,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print its report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    calls = min(args.calls, ROWS)  # distinct parameters: one result each
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "shop.db"
        _setup(path)
        for _ in range(args.repeats):
            runs.append(_one(path, calls))
    ns = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    report = {
        "calls": calls,
        "repeats": args.repeats,
        "ns_per_call": ns,
        "ratios": {
            "connector_vs_raw": ns["connector"] / ns["raw"],
            "again_vs_raw": ns["again"] / ns["raw"],
        },
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{calls} parameterised fetch_all calls, median of {args.repeats}:")
        for key, value in ns.items():
            print(f"  {key:<10} {value / 1000:8.1f} us per call")
        ratios = report["ratios"]
        print(f"  connector / raw SQLAlchemy: {ratios['connector_vs_raw']:.2f}")
        print(f"  read-to-the-end again / raw: {ratios['again_vs_raw']:.2f}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
