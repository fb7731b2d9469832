"""Run and block queries on a SQLite event store of 1,000,000 events.

Run: ``python benchmarks/bench_runs.py [--events N] [--repeats R] [--quick] [--json]``

The store is filled fast: rows shaped as the store writes them (one flow run per
100 events, calls spread over 200 block documents, half of which have a nested
credentials document, 5% of calls failing) go in with ``executemany`` into the
store's own tables, then the run summaries are built by the same code that
builds them for a store of an earlier version (which sums events up exactly as a
written batch is summed up). Then each query is timed, median of R repeats:

- ``runs ls``: ``store.runs(limit=20)``, and filtered by a name glob and failure;
- ``runs show NAME``: ``find_run`` by name, and the run's ``timeline``;
- ``runs_for_block``: a document's runs, and its credentials' runs;
- ``events(block=..., limit=100)``: a document's latest events, and by its
  nested credentials;
- the same two block questions asked as the previous version did (a scan of the
  events, kept here for the ratio).

Ratios compare with the 20 ms goal and with the previous queries. ``--quick``
fills 20,000 events, for the test that keeps this script working.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _common import documents

from emitters._ids import uuid7_from_ns
from emitters.sql import SQLEventStore
from emitters.sql._queries import block_clause
from emitters.sql._runs import rebuild_summaries
from emitters.sql._tables import (
    EVENT_COLUMNS,
    LINK_COLUMNS,
    event_from_row,
    events_table,
)

GOAL_MS = 20.0
EVENTS_PER_RUN = 100
T0_NS = 1_780_000_000 * 10**9


def _fill(url: str, events: int, seed: int = 7) -> dict[str, float]:
    """Write ``events`` rows and their links, then build the summaries."""
    rng = random.Random(seed)
    docs = documents()
    SQLEventStore(url).engine  # noqa: B018 - creates the tables
    path = sa.make_url(url).database
    assert path is not None
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    ev_sql = (
        f"INSERT INTO eventblocks_events ({', '.join(EVENT_COLUMNS)}) VALUES "
        f"({', '.join('?' for _ in EVENT_COLUMNS)})"
    )
    link_sql = (
        f"INSERT INTO eventblocks_event_links ({', '.join(LINK_COLUMNS)}) VALUES "
        f"({', '.join('?' for _ in LINK_COLUMNS)})"
    )
    labels = '{"block-type":"s3-bucket"}'
    start = time.perf_counter()
    rows: list[tuple[Any, ...]] = []
    links: list[tuple[Any, ...]] = []
    runs = max(1, events // EVENTS_PER_RUN)
    written = 0
    for run in range(runs):
        run_id = str(uuid7_from_ns(T0_NS + run * 60 * 10**9))
        run_name = f"etl-{run % 50}"
        related_run = {
            "id": f"flow-run.{run_id}",
            "role": "flow-run",
            "name": run_name,
            "labels": {"team": f"t{run % 5}"},
        }
        used = rng.sample(docs, 5)
        at_ns = T0_NS + run * 60 * 10**9
        for _ in range(EVENTS_PER_RUN // 2):
            if written >= events:
                break
            rid, name, creds = used[rng.randrange(5)]
            related = [related_run]
            if creds is not None:
                related.append(
                    {
                        "id": creds[0],
                        "role": "nested-block",
                        "name": creds[1],
                        "labels": {"block-type": "aws-credentials"},
                    }
                )
            related_json = json.dumps(related, separators=(",", ":"))
            failed = rng.random() < 0.05
            started_id = uuid7_from_ns(at_ns).hex
            at_ns += 50 * 10**6
            end_id = uuid7_from_ns(at_ns).hex
            payload = (
                '{"duration_ms":50.0,"error":{"type":"NoSuchKey","message":"x"}}'
                if failed
                else '{"duration_ms":50.0}'
            )
            outcome = "failed" if failed else "succeeded"
            for event_id, ns, phase, follows, body in (
                (started_id, at_ns - 50 * 10**6, "started", None, "{}"),
                (end_id, at_ns, outcome, started_id, payload),
            ):
                rows.append(
                    (
                        event_id,
                        ns // 1000,
                        f"block.s3-bucket.read_path.{phase}",
                        rid,
                        name,
                        "s3-bucket",
                        run_id,
                        run_name,
                        follows,
                        labels,
                        related_json,
                        body,
                        None,  # labels and related resources in the row
                    )
                )
                if creds is not None:
                    links.append(
                        (
                            event_id,
                            creds[0],
                            "nested-block",
                            creds[1],
                            "aws-credentials",
                            ns // 1000,
                        )
                    )
            written += 2
            at_ns += 50 * 10**6
        if len(rows) >= 50_000:
            _flush(db, ev_sql, link_sql, rows, links)
    _flush(db, ev_sql, link_sql, rows, links)
    db.close()
    filled = time.perf_counter() - start
    start = time.perf_counter()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        rebuild_summaries(conn)
    engine.dispose()
    return {
        "events": written,
        "runs": runs,
        "fill_s": filled,
        "summaries_s": time.perf_counter() - start,
    }


def _flush(
    db: sqlite3.Connection,
    ev_sql: str,
    link_sql: str,
    rows: list[tuple[Any, ...]],
    links: list[tuple[Any, ...]],
) -> None:
    db.execute("BEGIN IMMEDIATE")
    db.executemany(ev_sql, rows)
    db.executemany(link_sql, links)
    db.execute("COMMIT")
    rows.clear()
    links.clear()


def _time(action: Callable[[], object], repeats: int) -> float:
    action()  # warm: connection, statement cache
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


def _previous_runs_for_block(store: SQLEventStore, block: str) -> object:
    """The previous version's queries: group the events that involve the block,
    then read its failures for each run's last error."""
    t = events_table.c
    match = block_clause(block)
    with store.engine.connect() as conn:
        grouped = conn.execute(
            sa.select(t.flow_run_id, sa.func.min(t.occurred_us), sa.func.count())
            .where(match)
            .group_by(t.flow_run_id)
        ).all()
        failures = conn.execute(
            sa.select(t.flow_run_id, t.payload)
            .where(match, t.event.like("%.failed"))
            .order_by(t.occurred_us.desc(), t.id.desc())
        ).all()
        return grouped, failures


def _previous_block_events(store: SQLEventStore, block: str) -> object:
    """The previous version's ``events(block=..., limit=100, order="desc")``."""
    t = events_table.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(events_table)
            .where(block_clause(block))
            .order_by(t.occurred_us.desc(), t.id.desc())
            .limit(100)
        ).all()
        return [event_from_row(row) for row in rows]


def measure(events: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'store.db'}"
        filled = _fill(url, events)
        store = SQLEventStore(url)
        doc, creds = "s3-bucket/doc-42", "aws-credentials/cred-4"
        latest = store.runs(limit=1)[0]
        queries: dict[str, Callable[[], object]] = {
            "runs_ls": lambda: store.runs(limit=20),
            "runs_ls_name_glob": lambda: store.runs(name="etl-4*", limit=20),
            "runs_ls_failed": lambda: store.runs(failed=True, limit=20),
            "find_run_by_name": lambda: store.find_run("etl-7"),
            "find_run_by_short_id": lambda: store.find_run(latest.short_id),
            "timeline": lambda: store.timeline(latest.id),
            "runs_for_block": lambda: store.runs_for_block(doc),
            "runs_for_block_nested": lambda: store.runs_for_block(creds),
            "events_block_limit_100": lambda: store.events(
                block=doc, limit=100, order="desc"
            ),
            "events_block_nested_limit_100": lambda: store.events(
                block=creds, limit=100, order="desc"
            ),
            "previous_runs_for_block": lambda: _previous_runs_for_block(store, doc),
            "previous_events_block_limit_100": lambda: _previous_block_events(
                store, doc
            ),
        }
        ms = {name: _time(action, repeats) for name, action in queries.items()}
        checks = {
            "runs_for_block_rows": len(store.runs_for_block(doc)),
            "events_block_rows": len(store.events(block=doc, limit=100)),
            "runs_stored": len(store.runs(limit=None)),
        }
        engine = store.engine
        engine.dispose()
    ratios = {
        f"{name}_vs_goal": ms[name] / GOAL_MS
        for name in ("runs_ls", "runs_for_block", "events_block_limit_100")
    }
    ratios["runs_for_block_previous_over_now"] = (
        ms["previous_runs_for_block"] / ms["runs_for_block"]
    )
    ratios["events_block_previous_over_now"] = (
        ms["previous_events_block_limit_100"] / ms["events_block_limit_100"]
    )
    return {
        **filled,
        "repeats": repeats,
        "median_ms": ms,
        "ratios": ratios,
        "goal_ms": GOAL_MS,
        **checks,
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"{result['events']:,} events in {result['runs']:,} runs: filled in "
        f"{result['fill_s']:.1f} s, summaries built in {result['summaries_s']:.1f} s; "
        f"median of {result['repeats']}",
    ]
    for name, value in result["median_ms"].items():
        lines.append(f"  {name:<34}{value:>10.2f} ms")
    for name, value in result["ratios"].items():
        lines.append(f"  {name:<40}{value:>8.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="20,000 events")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    events = 20_000 if args.quick else args.events
    result = measure(events, args.repeats)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    sys.exit(main())
