"""End-to-end throughput into the event store, against the driver's raw ``executemany``.

Run: ``python benchmarks/bench_store.py [--calls N] [--repeats R] [--batch B]
[--url SERVER] [--json]``

Each repetition, in a fresh temporary folder:

- store: N block method calls inside a flow run (2N events: started and
  succeeded), through the pipeline into ``SQLEventStore`` on a new SQLite file,
  timed from the first call until ``flush()`` returns, with every event stored;
- raw: the same 2N rows (the very rows the store wrote, read back) inserted with
  the standard library's ``sqlite3`` ``executemany`` into a new file with the same
  tables, indexes and settings (WAL, ``synchronous=NORMAL``), one transaction per
  batch of the pipeline's size, and, stricter, in a single transaction;
- the leaner row: the same rows, per batch, with the resource labels and related
  resources they share put back in each row (as rows were written before the
  parts table), to report the insert time of a row as written against that.

With ``--url`` (a PostgreSQL or MySQL/MariaDB server URL, as an account that may
create databases, such as ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``
or ``mysql+pymysql://root@127.0.0.1:3306/``), the same is measured on that server,
in a database the script creates and drops: the store end to end, then the
rows it wrote inserted again with the driver's own ``executemany`` (psycopg,
PyMySQL) into the emptied table, in transactions of the pipeline's batch size
and in a single transaction.

Figures are medians of R repetitions; ratios compare rates from this same run
(the budget, in docs/performance.md: at least 100,000 events/s, and at least half
of raw ``executemany``), with no event dropped. The queue holds all 2N events, so
that the measure is the store's rate, not the queue's drop policy; the report
says how many events did not reach the store (0 expected).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from blocks import Block
from emitters import configure, flow_run, flush
from emitters._engine import engine_for
from emitters.sql import SQLEventStore
from emitters.sql._tables import EVENT_COLUMNS, metadata

BUDGETS = {"events_per_s": 100_000.0, "vs_raw_executemany": 0.5}
BATCH = 512  # the pipeline's default batch_size; --batch changes it


class Warehouse(Block):
    schema_name: str = "public"

    def query(self, sql: str) -> int:
        return len(sql)


def _store_run(url: str, calls: int) -> tuple[float, str, int]:
    """Time the calls into a new store; return seconds, URL and events lost."""
    store = SQLEventStore(url)
    store.engine  # noqa: B018 - create the file and the tables before timing
    configure(emitters=[store], batch_size=BATCH)
    block = Warehouse()
    query = block.query
    with flow_run("bench"):
        start = time.perf_counter()
        for _ in range(calls):
            query("select 1")
        flushed = flush(timeout=300)
        elapsed = time.perf_counter() - start
    configure(emitters=[])
    if not flushed:
        raise SystemExit("flush() timed out")
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("select count(*) from eventblocks_events")
        lost = 2 * calls - stored.scalar_one()
    engine.dispose()
    return elapsed, url, lost


def _stored_rows(url: str) -> list[tuple[Any, ...]]:
    """The event rows the store wrote, in time order."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        columns = ", ".join(EVENT_COLUMNS)
        rows = [
            tuple(r)
            for r in conn.exec_driver_sql(
                f"select {columns} from eventblocks_events order by occurred_us, id"
            )
        ]
    engine.dispose()
    return rows


def _server_raw_runs(url: str) -> tuple[float, float]:
    """Time the driver's raw executemany of the stored rows into the emptied
    events table: per batch, and in one transaction."""
    rows = _stored_rows(url)
    columns = ", ".join(EVENT_COLUMNS)
    placeholders = ", ".join("%s" for _ in EVENT_COLUMNS)
    sql = f"INSERT INTO eventblocks_events ({columns}) VALUES ({placeholders})"
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    timings = []
    try:
        for mode in ("batched", "single"):
            with engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM eventblocks_events")
            raw = engine.raw_connection()
            try:
                cursor = raw.cursor()
                step = BATCH if mode == "batched" else len(rows)
                start = time.perf_counter()
                for i in range(0, len(rows), step):
                    cursor.executemany(sql, rows[i : i + step])
                    raw.commit()
                timings.append(time.perf_counter() - start)
                cursor.close()
            finally:
                raw.close()
    finally:
        engine.dispose()
    return timings[0], timings[1]


class _ServerDatabase:
    """A database of this run on a server: created on entry, dropped on exit."""

    def __init__(self, server: str) -> None:
        self._server = server
        self._name = f"eventblocks_bench_{os.getpid()}_{secrets.token_hex(4)}"
        self.url = (
            sa.make_url(server)
            .set(database=self._name)
            .render_as_string(hide_password=False)
        )

    def _admin(self) -> sa.Engine:
        return sa.create_engine(
            self._server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
        )

    def __enter__(self) -> str:
        engine = self._admin()
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {self._name}"))
        engine.dispose()
        return self.url

    def __exit__(self, *exc: object) -> None:
        configure(emitters=[])
        engine_for(self.url).dispose()
        engine = self._admin()
        with engine.connect() as conn:
            force = " WITH (FORCE)" if engine.dialect.name == "postgresql" else ""
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {self._name}{force}"))
        engine.dispose()


def _inline_rows(url: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The same rows with their shared parts put back in the row, as rows were
    written before the parts table."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        parts = {
            key: (labels, related)
            for key, labels, related in conn.exec_driver_sql(
                "select id, resource_labels, related from eventblocks_event_parts"
            )
        }
    engine.dispose()
    return [
        row if row[12] is None else (*row[:9], *parts[row[12]], row[11], None)
        for row in rows
    ]


def _raw_runs(folder: Path, source_url: str) -> tuple[float, float, float]:
    """Time raw executemany of the stored rows: per batch, in one transaction,
    and per batch with each row's parts inline."""
    rows = _stored_rows(source_url)
    inline = _inline_rows(source_url, rows)
    columns = ", ".join(EVENT_COLUMNS)
    placeholders = ", ".join("?" for _ in EVENT_COLUMNS)
    sql = f"INSERT INTO eventblocks_events ({columns}) VALUES ({placeholders})"
    timings = []
    for mode in ("batched", "single", "inline"):
        rows = inline if mode == "inline" else _stored_rows(source_url)
        path = folder / f"raw-{mode}.db"
        schema = sa.create_engine(f"sqlite:///{path}")
        metadata.create_all(schema)
        schema.dispose()
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        step = len(rows) if mode == "single" else BATCH
        start = time.perf_counter()
        for i in range(0, len(rows), step):
            db.execute("BEGIN IMMEDIATE")
            db.executemany(sql, rows[i : i + step])
            db.execute("COMMIT")
        timings.append(time.perf_counter() - start)
        db.close()
    return timings[0], timings[1], timings[2]


def measure(calls: int, repeats: int, server: str | None = None) -> dict[str, Any]:
    store_s, batched_s, single_s, inline_s, lost = [], [], [], [], 0
    for _ in range(repeats):
        if server is not None:
            with _ServerDatabase(server) as url:
                elapsed, url, missing = _store_run(url, calls)
                batched, single = _server_raw_runs(url)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                url = f"sqlite:///{folder / 'store.db'}"
                elapsed, url, missing = _store_run(url, calls)
                batched, single, inline = _raw_runs(folder, url)
                inline_s.append(inline)
        store_s.append(elapsed)
        batched_s.append(batched)
        single_s.append(single)
        lost += missing
    events = 2 * calls
    store_rate = events / statistics.median(store_s)
    raw_batched = events / statistics.median(batched_s)
    raw_single = events / statistics.median(single_s)
    return {
        "database": "sqlite"
        if server is None
        else sa.make_url(server).get_backend_name(),
        "calls": calls,
        "events": events,
        "repeats": repeats,
        "events_per_s": {
            "store_end_to_end": store_rate,
            "raw_executemany_batched": raw_batched,
            "raw_executemany_single_transaction": raw_single,
        },
        "ratios": {
            "events_per_s_vs_budget": store_rate / BUDGETS["events_per_s"],
            "vs_raw_batched": store_rate / raw_batched,
            "vs_raw_single_transaction": store_rate / raw_single,
        },
        "budgets": BUDGETS,
        "dropped": lost,
        # The time to insert a row with its parts shared, against the same row
        # with them inline (SQLite only).
        "shared_parts_vs_inline_row_time": (
            statistics.median(batched_s) / statistics.median(inline_s)
            if inline_s
            else None
        ),
    }


def report(result: dict[str, Any]) -> str:
    rates, ratios = result["events_per_s"], result["ratios"]

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISS"

    raw_rows = [
        ("raw executemany, batches", "raw_executemany_batched", "vs_raw_batched"),
        (
            "raw executemany, one tx",
            "raw_executemany_single_transaction",
            "vs_raw_single_transaction",
        ),
    ]
    lines = [
        f"{result['database']}: {result['calls']:,} calls = {result['events']:,} "
        "events, "
        f"median of {result['repeats']}, {result['dropped']} not stored",
        f"  {'store, end to end':<26}{rates['store_end_to_end']:>10,.0f} events/s  "
        f"{ratios['events_per_s_vs_budget']:.2f}x the 100,000/s budget  "
        f"{verdict(ratios['events_per_s_vs_budget'] >= 1)}",
    ]
    for label, rate, ratio in raw_rows:
        lines.append(
            f"  {label:<26}{rates[rate]:>10,.0f} rows/s    store/raw "
            f"{ratios[ratio]:.2f} (budget >= 0.5)  {verdict(ratios[ratio] >= 0.5)}"
        )
    lean = result.get("shared_parts_vs_inline_row_time")
    if lean is not None:
        lines.append(
            f"  raw insert time of a row with its parts shared / inline: {lean:.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument(
        "--url",
        help="a PostgreSQL or MySQL/MariaDB server to measure on, instead of SQLite",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    globals()["BATCH"] = args.batch
    result = measure(args.calls, args.repeats, args.url)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    sys.exit(main())
