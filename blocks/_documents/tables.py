"""The document tables, their schema version, and the records read from them.

Every name starts with ``eventblocks_`` so that the tables can share a database.
Timestamps are stored naive, in UTC (SQLite and MySQL keep no time zone), with
microseconds (MySQL and MariaDB need ``DATETIME(6)`` for that). On MySQL and
MariaDB the names that identify something (document names, type slugs, reference
fields) are compared byte for byte (``utf8mb4_bin``), and JSON bodies are
``LONGTEXT`` (``TEXT`` holds 64 kB there).

Schema versions: 1 is the first schema; 2 gives those MySQL/MariaDB columns their
collation and size (nothing changes on SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateColumn

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "DocumentRecord",
    "SchemaRecord",
    "TypeRecord",
    "aware",
    "block_documents",
    "block_references",
    "block_schemas",
    "block_types",
    "meta",
    "metadata",
    "now",
    "schema_record",
    "type_record",
]

SCHEMA_VERSION = 2

metadata = sa.MetaData()
# MySQL and MariaDB keep whole seconds in a plain DATETIME; keep microseconds.
_Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _identity(length: int) -> sa.types.TypeEngine[str]:
    """A name compared and kept unique byte for byte, on every database."""
    # MySQL's and MariaDB's default collations take "Prod" for "prod", "café" for
    # "cafe", and (utf8mb4_general_ci) one emoji for another.
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"),
        "mysql",
        "mariadb",
    )


# JSON bodies: TEXT is limited to 64 kB on MySQL and MariaDB.
_JSONText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

block_types = sa.Table(
    "eventblocks_block_types",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("slug", _identity(128), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("class_path", sa.String(1024), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created", _Timestamp, nullable=False),
    sa.Column("updated", _Timestamp, nullable=False),
)

block_schemas = sa.Table(
    "eventblocks_block_schemas",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "block_type_id",
        sa.String(36),
        sa.ForeignKey("eventblocks_block_types.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("checksum", sa.String(64), nullable=False),
    sa.Column("fields", _JSONText, nullable=False),
    sa.Column("capabilities", _JSONText, nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("created", _Timestamp, nullable=False),
    sa.UniqueConstraint("block_type_id", "checksum", name="uq_eventblocks_schema"),
)

block_documents = sa.Table(
    "eventblocks_block_documents",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", _identity(255), nullable=False),
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
    sa.Column("data", _JSONText, nullable=False),
    sa.Column("created", _Timestamp, nullable=False),
    sa.Column("updated", _Timestamp, nullable=False),
    sa.UniqueConstraint("block_type_id", "name", name="uq_eventblocks_document"),
)

block_references = sa.Table(
    "eventblocks_block_document_references",
    metadata,
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
    sa.Column("field", _identity(255), nullable=False),
)

meta = sa.Table(
    "eventblocks_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)


def _upgrade_to_2(conn: Connection) -> None:
    """Give the name and JSON columns their MySQL/MariaDB collation and size."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return
    changed = {
        block_types: [block_types.c.slug],
        block_schemas: [block_schemas.c.fields, block_schemas.c.capabilities],
        block_documents: [block_documents.c.name, block_documents.c.data],
        block_references: [block_references.c.field],
    }
    quote = conn.dialect.identifier_preparer
    for table, columns in changed.items():
        # Each column as CREATE TABLE spells it now, NOT NULL included; one
        # statement per table, as MariaDB copies the table for each.
        specs = ", ".join(
            f"MODIFY {CreateColumn(column).compile(dialect=conn.dialect)}"
            for column in columns
        )
        conn.exec_driver_sql(f"ALTER TABLE {quote.format_table(table)} {specs}")


# version -> function upgrading a database at (version - 1) to version, run inside
# the opening transaction (on MySQL and MariaDB each ALTER TABLE commits at once, so
# a migration must be safe to run again).
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _upgrade_to_2}


@dataclass(frozen=True)
class TypeRecord:
    """A stored block type."""

    id: uuid.UUID
    slug: str
    name: str
    class_path: str
    description: str
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class SchemaRecord:
    """A stored schema of a block type: the JSON schema, its checksum, capabilities."""

    id: uuid.UUID
    block_type_id: uuid.UUID
    checksum: str
    fields: dict[str, Any]
    capabilities: list[str]
    version: str
    created: datetime


@dataclass(frozen=True)
class DocumentRecord:
    """A stored block document; ``data`` holds encrypted secrets and references."""

    id: uuid.UUID
    name: str
    block_type: str
    block_type_id: uuid.UUID
    schema_id: uuid.UUID
    schema_checksum: str
    data: dict[str, Any]
    created: datetime
    updated: datetime
    references: dict[str, uuid.UUID] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """``slug/name``, as the CLI and ``Block.load`` spell it."""
        return f"{self.block_type}/{self.name}"


def now() -> datetime:
    # Stored naive, in UTC: SQLite and MySQL keep no time zone.
    return datetime.now(UTC).replace(tzinfo=None)


def aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def type_record(values: dict[str, Any]) -> TypeRecord:
    return TypeRecord(
        id=uuid.UUID(values["id"]),
        slug=values["slug"],
        name=values["name"],
        class_path=values["class_path"],
        description=values["description"],
        created=aware(values["created"]),
        updated=aware(values["updated"]),
    )


def schema_record(values: dict[str, Any]) -> SchemaRecord:
    return SchemaRecord(
        id=uuid.UUID(values["id"]),
        block_type_id=uuid.UUID(values["block_type_id"]),
        checksum=values["checksum"],
        fields=json.loads(values["fields"]),
        capabilities=json.loads(values["capabilities"]),
        version=values["version"],
        created=aware(values["created"]),
    )
