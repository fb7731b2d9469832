"""A Prefect flow whose block calls carry Prefect's flow run and task run.

Run it with Prefect installed (``pip install 'eventblocks[prefect]'``):

    python examples/prefect_flow.py

Nothing in the flow mentions eventblocks' run context: the block calls in the
flow's body carry Prefect's flow run (its id, name, flow name and tags), and those
inside the task carry the task run too, with the label ``source=prefect``. The ids
are Prefect's own, so they can be pasted into Prefect's UI. With
``PREFECT_API_URL`` set, the flow runs against that server; without it, Prefect
starts a temporary local server for the run.
"""

from __future__ import annotations

import sys

try:
    from prefect import flow, tags, task
except ImportError:
    print(
        "This example runs a real Prefect flow, and Prefect is not installed:\n"
        "    pip install 'eventblocks[prefect]'"
    )
    sys.exit(0)

from blocks import Block
from emitters import MemoryEmitter, configure, flush


class Warehouse(Block):
    """A stand-in for a database connector."""

    database: str = "analytics"

    def query(self, sql: str) -> int:
        return len(sql)


@task(tags=["load"])
def load_orders() -> None:
    Warehouse().query("insert into orders select * from staging.orders")


@flow(name="nightly-etl")
def nightly_etl() -> None:
    Warehouse().query("select count(*) from staging.orders")
    load_orders()


def main() -> None:
    sink = MemoryEmitter()
    configure(emitters=[sink])
    with tags("nightly"):
        nightly_etl()
    flush()
    print("Block events and the Prefect runs they carry:")
    for event in sink.events:
        runs = {r.role: r for r in event.related if r.role.endswith("-run")}
        flow_run = runs["flow-run"]
        line = f"  {event.event:32} flow run {flow_run.name!r} ({flow_run.id})"
        if "task-run" in runs:
            line += f", task run {runs['task-run'].name!r}"
        print(f"{line}, source={flow_run.labels['source']}")
    first = sink.events[0].related_by_role("flow-run")[0]
    print(f"Labels of the flow run: {dict(first.labels)}")


if __name__ == "__main__":
    main()
