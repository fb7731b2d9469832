"""Block types for ``register_and_load.py``: a module that the CLI registers.

``eventblocks register -m warehouse_types`` imports this module and records the
``Warehouse`` type (its fields, which are secret, its methods) in the database, so
that ``eventblocks create warehouse ...`` can validate and save documents of it.

Run as a script, it only prints what the type looks like.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from blocks import Block, no_events

TABLES: dict[str, list[dict[str, Any]]] = {
    "orders": [{"id": 10, "total": 25.0}, {"id": 11, "total": 12.5}],
}


class Warehouse(Block):
    """A pretend data warehouse: ``select * from <table>`` is all it understands."""

    dsn: SecretStr
    schema_name: str = "public"
    pool_size: int = 2

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run ``sql`` and return its rows."""
        table = sql.split()[-1]
        if table not in TABLES:
            raise LookupError(f"relation {self.schema_name}.{table} does not exist")
        return TABLES[table]

    @no_events
    def describe(self) -> str:
        """Say where this warehouse is, without its DSN."""
        return f"schema {self.schema_name}, {self.pool_size} connection(s)"


if __name__ == "__main__":
    print(f"Block type {Warehouse.block_type_slug!r}, fields:")
    for name, field in Warehouse.model_fields.items():
        print(f"  {name}: {field.annotation}")
