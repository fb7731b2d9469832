"""The public surface of ``blocks.sql``: exports, slugs, and discovery by slug."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import blocks.sql
from blocks import block_class

FIND_WITHOUT_IMPORT = """
import sys
from blocks import block_class
assert "blocks.sql" not in sys.modules
print(block_class("database-credentials").__module__)
"""


def test_the_module_exports_a_sorted_documented_surface() -> None:
    """__all__ is sorted, each export has a docstring and lives in blocks.sql."""
    names = list(blocks.sql.__all__)
    assert names == sorted(names)
    for name in names:
        exported = getattr(blocks.sql, name)
        assert (exported.__doc__ or "").strip(), name
        assert exported.__module__ == "blocks.sql", name


def test_the_slugs() -> None:
    """The types are registered under their documented slugs."""
    assert block_class("database-credentials") is blocks.sql.DatabaseCredentials
    assert block_class("sqlalchemy-connector") is blocks.sql.SqlAlchemyConnector
    assert block_class("async-sqlalchemy-connector") is (
        blocks.sql.AsyncSqlAlchemyConnector
    )


def test_importing_blocks_sql_needs_no_async_driver(tmp_path: Path) -> None:
    """blocks.sql imports without greenlet, asyncpg and aiosqlite (SQLite needs
    nothing more)."""
    script = (
        "import sys\n"
        "for name in ('greenlet', 'asyncpg', 'aiosqlite', 'psycopg', 'pymysql'):\n"
        "    sys.modules[name] = None\n"
        "from blocks.sql import DatabaseCredentials, SqlAlchemyConnector\n"
        "c = DatabaseCredentials(driver='sqlite', database=':memory:')\n"
        "with SqlAlchemyConnector(credentials=c) as db:\n"
        "    print(db.fetch_one('SELECT 41 + 1')[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "EVENTBLOCKS_HOME": str(tmp_path)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["42"]


def test_the_types_are_found_by_slug_without_an_import(tmp_path: Path) -> None:
    """The eventblocks.blocks entry point ``sql`` finds the SQL types in a fresh
    process."""
    done = subprocess.run(
        [sys.executable, "-c", FIND_WITHOUT_IMPORT],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "EVENTBLOCKS_HOME": str(tmp_path)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["blocks.sql"]
