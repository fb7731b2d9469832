"""Runs in the event store: make three runs, then list and find them.

Run: ``python examples/runs.py``. It writes to a store of its own in a temporary
folder, then asks the store what the command line's ``eventblocks runs ls`` and
``eventblocks runs show RUN`` show.
"""

from __future__ import annotations

import contextlib
import tempfile

from blocks import Block
from emitters import configure, flow_run, flush, task_run
from emitters.sql import SQLEventStore


class Warehouse(Block):
    """A pretend warehouse whose `refunds` table is missing."""

    schema_name: str = "public"

    def query(self, table: str) -> int:
        if table == "refunds":
            raise LookupError(f"relation {self.schema_name}.{table} does not exist")
        return len(table)


def main() -> None:
    folder = tempfile.mkdtemp()
    store = SQLEventStore(f"sqlite:///{folder}/events.db")
    configure(emitters=[store])
    warehouse = Warehouse()
    for night in range(3):
        with flow_run("nightly-etl", labels={"team": "data"}):
            with task_run("extract"):
                warehouse.query("orders")
            if night == 2:  # the third night, the refunds table is gone
                with contextlib.suppress(LookupError):
                    warehouse.query("refunds")
    flush()

    # What `eventblocks runs ls` lists: the latest run first.
    for run in store.runs():
        failure = run.first_failure
        where = (
            f"{failure.block}.{failure.method}: {failure.error_type}" if failure else ""
        )
        print(run.short_id, run.name, run.calls, run.failures, where)

    # What `eventblocks runs show nightly-etl` shows: the latest run of that name.
    latest = store.find_run("nightly-etl")
    assert latest.failures == 1
    assert store.find_run(latest.short_id) == latest
    for call in store.timeline(latest.id):
        print(
            f"  {call.task_run_name or '-':8} {call.block}.{call.method} {call.outcome}"
        )
    configure(emitters=[])


if __name__ == "__main__":
    main()
