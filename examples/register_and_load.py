"""Register a block type with the CLI, create a document headless, load it in code.

Run it from the repository root::

    python examples/register_and_load.py

The script works in a temporary eventblocks home, so it leaves nothing behind. It
runs, in subprocesses, as a deployment script or a CI job would:

    eventblocks register -m warehouse_types
    eventblocks create warehouse analytics --set dsn=... --set pool_size=4
    eventblocks inspect warehouse/analytics

then loads the document with ``Block.load("warehouse/analytics")`` and queries it.
``warehouse_types`` is found because the examples folder is on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from blocks import Block

EXAMPLES = Path(__file__).resolve().parent
DSN = "postgresql://etl:example-pa55@warehouse.internal:5432/analytics"


def eventblocks_command() -> list[str]:
    """Return the console script next to this interpreter, else ``python -m blocks``."""
    script = shutil.which("eventblocks", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "blocks"]


def eventblocks(*args: str) -> str:
    """Run one ``eventblocks`` command headless; return its output or stop here."""
    paths = [str(EXAMPLES), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    result = subprocess.run(
        [*eventblocks_command(), *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"eventblocks {args[0]} failed: {result.stderr.strip()}")
    return result.stdout


def main() -> int:
    """Register, create, inspect and load; return the exit status."""
    with tempfile.TemporaryDirectory() as home:
        # The subprocesses inherit it, and Block.load below reads the same database.
        os.environ["EVENTBLOCKS_HOME"] = home
        print("$ eventblocks register -m warehouse_types")
        print(eventblocks("register", "-m", "warehouse_types"))
        print(
            "$ eventblocks create warehouse analytics --set dsn=... --set pool_size=4"
        )
        print(
            eventblocks(
                "create",
                "warehouse",
                "analytics",
                "--set",
                f"dsn={DSN}",
                "--set",
                "pool_size=4",
            )
        )
        print("$ eventblocks inspect warehouse/analytics")
        shown = eventblocks("inspect", "warehouse/analytics")
        print(shown)

        warehouse = Block.load("warehouse/analytics")
        rows = warehouse.query("select * from orders")
        print(f"Loaded {type(warehouse).__name__} {warehouse.document_name!r}:")
        print(f"  {warehouse.describe()}")
        print(f"  query returned {len(rows)} rows: {rows}")

    if DSN in shown or "example-pa55" in shown:
        print("The DSN was printed by 'eventblocks inspect'.", file=sys.stderr)
        return 1
    print("The DSN was saved encrypted and never printed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
