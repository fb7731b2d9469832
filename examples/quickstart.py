"""Quickstart: a block, a flow run that fails, and the events that say where.

Run it from the repository root::

    python examples/quickstart.py

It defines a ``Warehouse`` block with a secret DSN, saves it as ``warehouse/prod``,
and makes a few calls inside ``flow_run("nightly-etl")`` (the third one fails).
Nothing is configured, so the events go to the embedded event store in the
eventblocks home (``~/.eventblocks`` unless ``EVENTBLOCKS_HOME`` says otherwise).
The script then reads the run back from the store, answers "which call failed
first?", and shows the block's side: every run that used ``warehouse/prod``. The
database error names the DSN, as drivers' errors often do; the events carry
``**********`` instead, and the script checks that the DSN appears nowhere.

The same questions from a shell::

    eventblocks events timeline --flow-run <the run id it prints>
    eventblocks events runs --block warehouse/prod
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

from pydantic import SecretStr

from blocks import Block, event_payload
from emitters import flow_run, flush, stats
from emitters.sql import CallRecord, SQLEventStore

DSN = "postgresql://etl:s3cr3t-pa55@warehouse.internal:5432/analytics"

TABLES: dict[str, list[dict[str, Any]]] = {
    "customers": [{"id": 1}, {"id": 2}, {"id": 3}],
    "orders": [{"id": 10, "customer": 1}, {"id": 11, "customer": 3}],
}


class WarehouseError(Exception):
    """What our pretend database driver raises."""


def rows_returned(args: inspect.BoundArguments, outcome: Any) -> dict[str, Any]:
    """Add the row count to a successful query's event (nothing on failure)."""
    return {"rows": len(outcome)} if isinstance(outcome, list) else {}


class Warehouse(Block):
    """A pretend data warehouse: ``select * from <table>`` is all it understands."""

    dsn: SecretStr
    schema_name: str = "public"

    @event_payload(rows_returned)
    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run ``sql`` and return its rows."""
        table = sql.split()[-1]
        if table not in TABLES:
            raise WarehouseError(
                f"relation {self.schema_name}.{table} does not exist "
                f"(connected to {self.dsn.get_secret_value()})"
            )
        return TABLES[table]


def nightly_etl(warehouse: Warehouse) -> None:
    """The flow: read three tables; the third one is missing."""
    for table in ("customers", "orders", "refunds"):
        warehouse.query(f"select * from {table}")


def describe(call: CallRecord) -> str:
    """Return one line for a call: block, method, duration, outcome and error."""
    duration = "" if call.duration_ms is None else f"{call.duration_ms:8.3f} ms"
    line = f"{call.block}.{call.method:<8} {duration}  {call.outcome}"
    if call.error_type:
        line += f"  {call.error_type}: {call.error_message}"
    return line


def main() -> int:
    """Run the flow, then read it back from the event store; return the exit code."""
    Warehouse(dsn=DSN).save("prod", overwrite=True)
    warehouse = Warehouse.load("prod")
    try:
        with flow_run("nightly-etl") as run:
            nightly_etl(warehouse)
    except WarehouseError:
        pass  # the flow failed; its events say where
    flush()  # the store now holds every event of the run

    store = SQLEventStore()  # the home database: where events went by default
    calls = store.timeline(run.id)
    lines = [f"Flow run {run.name} ({run.id}), from the event store:"]
    lines += [f"  {describe(call)}" for call in calls]

    lines.append("")
    first = next((c for c in calls if c.outcome == "failed"), None)
    if first is not None:
        lines += [
            "Which call failed first?",
            f"  {first.block}.{first.method}: call {calls.index(first) + 1} of "
            f"{len(calls)}, started {first.started:%H:%M:%S.%f} UTC",
            f"  {first.error_type}: {first.error_message}",
        ]
    else:
        lines.append("No call failed.")

    lines += ["", "Which runs used warehouse/prod? (latest 3)"]
    for summary in store.runs_for_block("warehouse/prod")[-3:]:
        lines.append(
            f"  {summary.flow_run_name or '(no flow run)':<12} "
            f"{summary.calls} calls, {summary.failures} failed"
            + (f", last error {summary.last_error_type}" if summary.failures else "")
        )

    counters = stats()
    lines.append(
        f"Pipeline: {counters['emitted']} emitted, "
        f"{sum(counters['delivered'].values())} delivered, "
        f"{counters['dropped']} dropped."
    )
    print("\n".join(lines))

    events = store.events(flow_run=run.id, limit=None)
    leaked = [e.id for e in events if "s3cr3t" in e.model_dump_json()]
    if leaked or any(DSN in line or "s3cr3t" in line for line in lines):
        print(f"The DSN leaked into {len(leaked)} events.", file=sys.stderr)
        return 1
    print(f"The DSN appears in none of the {len(events)} events, only '**********'.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
