"""Quickstart: a block, a flow run that fails, and the events that say where.

Run it from the repository root::

    python examples/quickstart.py

It defines a ``Warehouse`` block with a secret DSN, sends events to an in-memory
sink, makes a few calls inside ``flow_run("nightly-etl")`` (the third one fails),
then prints one line per event and answers "which call failed first?". The
database error names the DSN, as drivers' errors often do; the events carry
``**********`` instead, and the script checks that the DSN appears nowhere.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

from pydantic import SecretStr

from blocks import Block, event_payload
from emitters import Event, MemoryEmitter, configure, flow_run, flush, stats

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


def describe(event: Event) -> str:
    """Return one line for an event: name, duration, and the error if any."""
    line = f"{event.event:<34}"
    if "duration_ms" in event.payload:
        line += f" {event.payload['duration_ms']:8.3f} ms"
    if "rows" in event.payload:
        line += f"  rows={event.payload['rows']}"
    error = event.payload.get("error")
    if error:
        line += f"  {error['type']}: {error['message']}"
    return line.rstrip()


def main() -> int:
    """Run the flow, print its events and the first failure; return the exit code."""
    sink = MemoryEmitter()
    # Explicit: with nothing configured, events are counted but go to no sink.
    configure(emitters=[sink])

    warehouse = Warehouse(dsn=DSN)
    try:
        with flow_run("nightly-etl") as run:
            nightly_etl(warehouse)
    except WarehouseError:
        pass  # the flow failed; its events say where
    flush()

    events = sink.events
    lines = [f"Events of flow run {run.name} ({run.id}):"]
    lines += [f"  {describe(event)}" for event in events]

    failures = [e for e in events if e.event.endswith(".failed")]
    calls = [e for e in events if e.event.endswith(".started")]
    lines.append("")
    if failures:
        first = failures[0]
        started = next(e for e in calls if e.id == first.follows)
        block_type = first.related_by_role("block-type")[0].name
        method = first.event.split(".")[-2]
        error = first.payload["error"]
        lines += [
            "Which call failed first?",
            f"  {block_type}.{method}: call {calls.index(started) + 1} of "
            f"{len(calls)}, started {started.occurred:%H:%M:%S.%f} UTC",
            f"  {error['type']}: {error['message']}",
        ]
    else:
        lines.append("No call failed.")

    counters = stats()
    lines.append(
        f"Pipeline: {counters['emitted']} emitted, "
        f"{sum(counters['delivered'].values())} delivered, "
        f"{counters['dropped']} dropped."
    )
    print("\n".join(lines))

    leaked = [e.id for e in events if "s3cr3t" in e.model_dump_json()]
    if leaked or any(DSN in line or "s3cr3t" in line for line in lines):
        print(f"The DSN leaked into {len(leaked)} events.", file=sys.stderr)
        return 1
    print(f"The DSN appears in none of the {len(events)} events, only '**********'.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
