"""Schema versions: a database an earlier eventblocks wrote is upgraded in place.

Each test builds the tables of schema version 1 as that version defined them, saves
a document into them, and opens the database with the current code, on SQLite,
PostgreSQL and MariaDB.
"""

from __future__ import annotations

from typing import ClassVar

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.dialects import mysql

import blocks._documents.store
from blocks import Block, DocumentStore
from blocks._documents.tables import MIGRATIONS
from blocks.system import JSON

# Secret values are registered for redaction process-wide: make them distinctive.
TOKEN = "migration-token-5f0c2e9d41b7"


class MigrationVault(Block):
    """A document saved while the database was at schema version 1."""

    block_type_slug: ClassVar[str] = "migration-vault"

    label: str
    token: SecretStr


def _version_1_metadata() -> sa.MetaData:
    """The document tables of schema version 1, as it created them."""
    old = sa.MetaData()
    stamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    sa.Table(
        "eventblocks_block_types",
        old,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("slug", sa.String(128), nullable=False, unique=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("class_path", sa.String(1024), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created", stamp, nullable=False),
        sa.Column("updated", stamp, nullable=False),
    )
    sa.Table(
        "eventblocks_block_schemas",
        old,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "block_type_id",
            sa.String(36),
            sa.ForeignKey("eventblocks_block_types.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("capabilities", sa.Text, nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("created", stamp, nullable=False),
        sa.UniqueConstraint("block_type_id", "checksum", name="uq_eventblocks_schema"),
    )
    sa.Table(
        "eventblocks_block_documents",
        old,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column(
            "block_type_id",
            sa.String(36),
            sa.ForeignKey("eventblocks_block_types.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "block_schema_id",
            sa.String(36),
            sa.ForeignKey("eventblocks_block_schemas.id"),
            nullable=False,
        ),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("created", stamp, nullable=False),
        sa.Column("updated", stamp, nullable=False),
        sa.UniqueConstraint("block_type_id", "name", name="uq_eventblocks_document"),
    )
    sa.Table(
        "eventblocks_block_document_references",
        old,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "parent_document_id",
            sa.String(36),
            sa.ForeignKey("eventblocks_block_documents.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column(
            "reference_document_id",
            sa.String(36),
            sa.ForeignKey("eventblocks_block_documents.id"),
            nullable=False,
            index=True,
        ),
        sa.Column("field", sa.String(255), nullable=False),
    )
    sa.Table(
        "eventblocks_meta",
        old,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )
    return old


def _version_1_database(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Create the version 1 tables at ``url`` and save 'Prod' as version 1 did."""
    old = _version_1_metadata()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            old.create_all(conn)
            conn.execute(
                old.tables["eventblocks_meta"]
                .insert()
                .values(key="schema_version", value="1")
            )
    finally:
        engine.dispose()
    # Version 1 wrote its rows as the current code does: only the column types
    # differ. Saving with the current code told it is version 1 leaves the database
    # at version 1.
    with monkeypatch.context() as patch:
        patch.setattr(blocks._documents.store, "SCHEMA_VERSION", 1)
        store = DocumentStore(url)
        MigrationVault(label="old", token=TOKEN).save("Prod", store=store)
        assert store.schema_version() == 1
    blocks._documents.store._ready.discard(url)


def _columns(url: str) -> dict[tuple[str, str], tuple[str, bool]]:
    """Return the type (as the database spells it) and nullability of each column."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {
            (table, column["name"]): (
                str(column["type"].compile(dialect=engine.dialect)),
                bool(column["nullable"]),
            )
            for table in blocks._documents.store.metadata.tables
            for column in inspector.get_columns(table)
        }
    finally:
        engine.dispose()


MARIADB_UPGRADED = {
    ("eventblocks_block_types", "slug"): (
        "VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        False,
    ),
    ("eventblocks_block_documents", "name"): (
        "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        False,
    ),
    ("eventblocks_block_document_references", "field"): (
        "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        False,
    ),
    ("eventblocks_block_documents", "data"): ("LONGTEXT", False),
    ("eventblocks_block_schemas", "fields"): ("LONGTEXT", False),
    ("eventblocks_block_schemas", "capabilities"): ("LONGTEXT", False),
}


def _drop_tables(url: str) -> None:
    """Drop the document tables, so that the next store creates them anew."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            blocks._documents.store.metadata.drop_all(conn)
    finally:
        engine.dispose()
    blocks._documents.store._ready.discard(url)


def _is_mysql(url: str) -> bool:
    return sa.make_url(url).get_backend_name() in ("mysql", "mariadb")


def test_a_version_1_database_is_upgraded_in_place(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a version 1 database upgrades it to 2 and keeps its documents."""
    _version_1_database(store_url, monkeypatch)
    before = _columns(store_url)

    store = DocumentStore(store_url)
    old = MigrationVault.load("Prod", store=store)

    assert store.schema_version() == blocks._documents.store.SCHEMA_VERSION == 2
    assert old.label == "old"
    assert old.token.get_secret_value() == TOKEN
    # What version 1 got wrong on MariaDB holds after the upgrade.
    MigrationVault(label="new", token=TOKEN).save("prod", store=store)
    assert MigrationVault.load("Prod", store=store).label == "old"
    assert MigrationVault.load("prod", store=store).label == "new"
    big = {f"key-{i}": "x" * 90 for i in range(1000)}
    JSON(value=big).save("big", store=store)
    assert JSON.load("big", store=store).value == big
    after = _columns(store_url)
    if _is_mysql(store_url):
        assert before[("eventblocks_block_documents", "data")] == ("TEXT", False)
        assert {key: after[key] for key in MARIADB_UPGRADED} == MARIADB_UPGRADED
        untouched = set(after) - set(MARIADB_UPGRADED)
        assert {key: after[key] for key in untouched} == {
            key: before[key] for key in untouched
        }
    else:
        assert after == before  # nothing to change on SQLite and PostgreSQL
    _drop_tables(store_url)
    JSON(value=1).save("fresh", store=DocumentStore(store_url))
    assert _columns(store_url) == after  # as a new database has them


def test_the_upgrade_to_version_2_can_run_again(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 2 run on an upgraded database changes nothing and loses nothing."""
    _version_1_database(store_url, monkeypatch)
    store = DocumentStore(store_url)
    assert store.schema_version() == 2
    upgraded = _columns(store_url)

    with store.transaction() as conn:
        MIGRATIONS[2](conn)

    assert _columns(store_url) == upgraded
    assert MigrationVault.load("Prod", store=store).token.get_secret_value() == TOKEN
