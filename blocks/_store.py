"""The document database: block types, their schemas, documents and references.

SQLAlchemy Core over SQLite (the default, a file in the eventblocks home), PostgreSQL
or MySQL/MariaDB. The tables are created on first use and carry a schema version in
``eventblocks_meta``; :data:`MIGRATIONS` upgrades an older database in place, inside
one transaction, the first time a newer eventblocks opens it.

SQLite runs in WAL mode with a busy timeout, and every transaction starts with
``BEGIN IMMEDIATE``, so several processes can save at once without "database is
locked" errors or lost updates.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from blocks._errors import BlockExistsError, BlockNotFoundError, BlockStoreError
from emitters._settings import database_url

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "DocumentRecord",
    "DocumentStore",
    "SchemaRecord",
    "TypeRecord",
    "mask_url",
]

SCHEMA_VERSION = 1

metadata = sa.MetaData()
# MySQL and MariaDB keep whole seconds in a plain DATETIME; keep microseconds.
_Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

block_types = sa.Table(
    "eventblocks_block_types",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("slug", sa.String(128), nullable=False, unique=True),
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
    sa.Column("fields", sa.Text, nullable=False),
    sa.Column("capabilities", sa.Text, nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("created", _Timestamp, nullable=False),
    sa.UniqueConstraint("block_type_id", "checksum", name="uq_eventblocks_schema"),
)

block_documents = sa.Table(
    "eventblocks_block_documents",
    metadata,
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
    sa.Column("field", sa.String(255), nullable=False),
)

meta = sa.Table(
    "eventblocks_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

# version -> function upgrading a database at (version - 1) to version, run inside
# the opening transaction. Version 1 is the first schema: nothing to upgrade yet.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}


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


def mask_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<an unreadable database URL>"


def _now() -> datetime:
    # Stored naive, in UTC: SQLite and MySQL keep no time zone.
    return datetime.now(UTC).replace(tzinfo=None)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


_DRIVER_EXTRAS = {
    "postgresql": ("postgresql+psycopg", "postgres"),
    "mysql": ("mysql+pymysql", "mysql"),
    "mariadb": ("mariadb+pymysql", "mysql"),
}


def _create_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except Exception:
        raise BlockStoreError(
            f"{mask_url(url)!s} is not a valid SQLAlchemy database URL; set "
            "EVENTBLOCKS_DATABASE_URL to something like "
            "postgresql+psycopg://user@host/db or sqlite:///path/to/file.db."
        ) from None
    backend = parsed.get_backend_name()
    if parsed.drivername in _DRIVER_EXTRAS:
        parsed = parsed.set(drivername=_DRIVER_EXTRAS[parsed.drivername][0])
    extra = _DRIVER_EXTRAS.get(backend, (None, None))[1]
    try:
        if backend == "sqlite":
            return _sqlite_engine(parsed)
        options: dict[str, Any] = {}
        if backend in ("mysql", "mariadb"):
            # InnoDB's default, REPEATABLE READ, would hide a row another process
            # committed after this transaction's first read.
            options["isolation_level"] = "READ COMMITTED"
        return sa.create_engine(
            parsed, hide_parameters=True, pool_pre_ping=True, **options
        )
    except ImportError as exc:
        hint = f" Install it with: pip install 'eventblocks[{extra}]'." if extra else ""
        raise BlockStoreError(
            f"The database driver for {mask_url(url)} is not installed "
            f"({exc.name or exc}).{hint}"
        ) from None


def _sqlite_engine(parsed: sa.URL) -> Engine:
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        parsed,
        hide_parameters=True,
        connect_args={"timeout": 30, "check_same_thread": False},
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" below decide when a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        if parsed.database and parsed.database != ":memory:":
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Take the write lock up front: two deferred transactions that both
        # upgrade to writing would make one fail with "database is locked".
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


_engines: dict[str, Engine] = {}
_ready: set[str] = set()
_engines_lock = threading.Lock()


def _after_fork() -> None:
    # Connections are not shared with a forked child: it opens its own.
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork)


class DocumentStore:
    """The database that block types and documents are saved in.

    Args:
        url: A SQLAlchemy URL; by default ``EVENTBLOCKS_DATABASE_URL``, else the
            SQLite file ``eventblocks.db`` in the eventblocks home.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url or database_url()

    def __repr__(self) -> str:
        return f"DocumentStore({mask_url(self.url)!r})"

    # -- connection --------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The engine for this URL, shared by every store on the same URL."""
        with _engines_lock:
            engine = _engines.get(self.url)
            if engine is None:
                engine = _engines[self.url] = _create_engine(self.url)
        if self.url not in _ready:
            self._prepare(engine)
        return engine

    def _prepare(self, engine: Engine) -> None:
        # Several processes may open a new database at once. MySQL and MariaDB
        # cannot create tables inside a transaction, so one of them may find a
        # table created (or the version row inserted) under its feet: it waits a
        # little and looks again, and then finds everything in place.
        attempts = 20
        for attempt in range(attempts):
            try:
                with engine.begin() as conn:
                    metadata.create_all(conn, checkfirst=True)
                    self._check_version(conn)
                _ready.add(self.url)
                return
            except (OperationalError, IntegrityError, sa.exc.ProgrammingError) as exc:
                if attempt == attempts - 1:
                    cause = type(getattr(exc, "orig", None) or exc).__name__
                    raise BlockStoreError(
                        f"Cannot prepare the document tables in {mask_url(self.url)} "
                        f"({cause})."
                    ) from None
                time.sleep(0.02 * (attempt + 1) + random.random() * 0.05)

    def _check_version(self, conn: Connection) -> None:
        row = conn.execute(
            sa.select(meta.c.value).where(meta.c.key == "schema_version")
        ).first()
        if row is None:
            conn.execute(
                meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION))
            )
            return
        found = int(row[0])
        if found > SCHEMA_VERSION:
            raise BlockStoreError(
                f"The database {mask_url(self.url)} has schema version {found}, "
                f"written by a newer eventblocks (this one knows {SCHEMA_VERSION}); "
                "upgrade eventblocks."
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](conn)
        if found < SCHEMA_VERSION:
            conn.execute(
                meta.update()
                .where(meta.c.key == "schema_version")
                .values(value=str(SCHEMA_VERSION))
            )

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction; database errors become a one-line ``BlockStoreError``."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except (BlockExistsError, BlockNotFoundError):
            raise
        except SQLAlchemyError as exc:
            cause = type(getattr(exc, "orig", None) or exc).__name__
            raise BlockStoreError(
                f"The document database {mask_url(self.url)} failed: {cause}: "
                f"{str(getattr(exc, 'orig', None) or exc).splitlines()[0]}"
            ) from None

    def schema_version(self) -> int:
        """Return the schema version recorded in the database."""
        with self.transaction() as conn:
            value = conn.execute(
                sa.select(meta.c.value).where(meta.c.key == "schema_version")
            ).scalar_one()
        return int(value)

    # -- types and schemas -------------------------------------------------------

    def upsert_type(
        self,
        conn: Connection,
        *,
        slug: str,
        name: str,
        class_path: str,
        description: str,
    ) -> TypeRecord:
        """Insert or update the block type ``slug``; return it."""
        now = _now()
        row = conn.execute(
            sa.select(block_types).where(block_types.c.slug == slug)
        ).first()
        if row is None:
            values = {
                "id": str(uuid.uuid4()),
                "slug": slug,
                "name": name,
                "class_path": class_path,
                "description": description,
                "created": now,
                "updated": now,
            }
            try:
                with conn.begin_nested():
                    conn.execute(block_types.insert().values(**values))
                return _type_record(values)
            except IntegrityError:
                # Another process stored the type at the same moment: use theirs.
                row = conn.execute(
                    sa.select(block_types).where(block_types.c.slug == slug)
                ).one()
        if row is not None:
            values = dict(row._mapping)
            if (values["name"], values["class_path"], values["description"]) != (
                name,
                class_path,
                description,
            ):
                conn.execute(
                    block_types.update()
                    .where(block_types.c.id == values["id"])
                    .values(
                        name=name,
                        class_path=class_path,
                        description=description,
                        updated=now,
                    )
                )
                values.update(name=name, class_path=class_path, description=description)
        return _type_record(values)

    def upsert_schema(
        self,
        conn: Connection,
        *,
        type_id: uuid.UUID,
        checksum: str,
        fields: dict[str, Any],
        capabilities: list[str],
        version: str,
    ) -> SchemaRecord:
        """Insert the schema with ``checksum`` for the type, unless present."""
        row = conn.execute(
            sa.select(block_schemas).where(
                block_schemas.c.block_type_id == str(type_id),
                block_schemas.c.checksum == checksum,
            )
        ).first()
        if row is None:
            values = {
                "id": str(uuid.uuid4()),
                "block_type_id": str(type_id),
                "checksum": checksum,
                "fields": json.dumps(fields, sort_keys=True),
                "capabilities": json.dumps(capabilities),
                "version": version,
                "created": _now(),
            }
            try:
                with conn.begin_nested():
                    conn.execute(block_schemas.insert().values(**values))
                return _schema_record(values)
            except IntegrityError:
                # Another process stored the same schema at the same moment.
                row = conn.execute(
                    sa.select(block_schemas).where(
                        block_schemas.c.block_type_id == str(type_id),
                        block_schemas.c.checksum == checksum,
                    )
                ).one()
        return _schema_record(dict(row._mapping))

    def get_type(self, slug: str) -> TypeRecord | None:
        """Return the stored type ``slug``, or None."""
        with self.transaction() as conn:
            row = conn.execute(
                sa.select(block_types).where(block_types.c.slug == slug)
            ).first()
        return None if row is None else _type_record(dict(row._mapping))

    def list_types(self) -> list[TypeRecord]:
        """Return every stored type, by slug."""
        with self.transaction() as conn:
            rows = conn.execute(
                sa.select(block_types).order_by(block_types.c.slug)
            ).all()
        return [_type_record(dict(r._mapping)) for r in rows]

    def latest_schema(self, slug: str) -> SchemaRecord | None:
        """Return the most recently stored schema of type ``slug``, or None."""
        with self.transaction() as conn:
            row = conn.execute(
                sa.select(block_schemas)
                .join(block_types, block_types.c.id == block_schemas.c.block_type_id)
                .where(block_types.c.slug == slug)
                .order_by(block_schemas.c.created.desc(), block_schemas.c.id)
            ).first()
        return None if row is None else _schema_record(dict(row._mapping))

    def count_documents(self, slug: str) -> int:
        """Return how many documents type ``slug`` has."""
        with self.transaction() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(block_documents)
                    .join(
                        block_types,
                        block_types.c.id == block_documents.c.block_type_id,
                    )
                    .where(block_types.c.slug == slug)
                ).scalar_one()
            )

    def delete_type(self, slug: str) -> int:
        """Delete type ``slug`` with its schemas and documents; return documents gone.

        Raises:
            BlockNotFoundError: No such type.
            BlockStoreError: A document of another type references one of its
                documents.
        """
        with self.transaction() as conn:
            type_id = conn.execute(
                sa.select(block_types.c.id).where(block_types.c.slug == slug)
            ).scalar()
            if type_id is None:
                raise BlockNotFoundError(f"There is no block type {slug!r} stored.")
            doc_ids = [
                r[0]
                for r in conn.execute(
                    sa.select(block_documents.c.id).where(
                        block_documents.c.block_type_id == type_id
                    )
                )
            ]
            self._refuse_if_referenced(
                conn, doc_ids, outside=doc_ids, what=f"block type {slug!r}"
            )
            if doc_ids:
                conn.execute(
                    block_references.delete().where(
                        block_references.c.parent_document_id.in_(doc_ids)
                    )
                )
                conn.execute(
                    block_documents.delete().where(block_documents.c.id.in_(doc_ids))
                )
            conn.execute(
                block_schemas.delete().where(block_schemas.c.block_type_id == type_id)
            )
            conn.execute(block_types.delete().where(block_types.c.id == type_id))
        return len(doc_ids)

    # -- documents ---------------------------------------------------------------

    def save_document(
        self,
        conn: Connection,
        *,
        type_id: uuid.UUID,
        slug: str,
        name: str,
        schema: SchemaRecord,
        data: dict[str, Any],
        references: dict[str, uuid.UUID],
        overwrite: bool,
    ) -> DocumentRecord:
        """Insert or (with ``overwrite``) replace the document ``slug/name``.

        Raises:
            BlockExistsError: The name is taken and ``overwrite`` is False; nothing
                is written.
        """
        now = _now()
        existing = conn.execute(
            sa.select(block_documents.c.id, block_documents.c.created).where(
                block_documents.c.block_type_id == str(type_id),
                block_documents.c.name == name,
            )
        ).first()
        body = json.dumps(data, sort_keys=True)
        if existing is not None and not overwrite:
            raise BlockExistsError(
                f"A {slug} document named {name!r} exists already; pass "
                "overwrite=True to replace it."
            )
        if existing is None:
            doc_id, created = str(uuid.uuid4()), now
            try:
                with conn.begin_nested():
                    conn.execute(
                        block_documents.insert().values(
                            id=doc_id,
                            name=name,
                            block_type_id=str(type_id),
                            block_schema_id=str(schema.id),
                            data=body,
                            created=now,
                            updated=now,
                        )
                    )
            except IntegrityError:
                # Another process saved the same name between our read and write.
                if not overwrite:
                    raise BlockExistsError(
                        f"A {slug} document named {name!r} was saved by someone "
                        "else just now; pass overwrite=True to replace it."
                    ) from None
                existing = conn.execute(
                    sa.select(block_documents.c.id, block_documents.c.created).where(
                        block_documents.c.block_type_id == str(type_id),
                        block_documents.c.name == name,
                    )
                ).one()
        if existing is not None:
            doc_id, created = existing[0], existing[1]
            conn.execute(
                block_documents.update()
                .where(block_documents.c.id == doc_id)
                .values(block_schema_id=str(schema.id), data=body, updated=now)
            )
            conn.execute(
                block_references.delete().where(
                    block_references.c.parent_document_id == doc_id
                )
            )
        for field_name, ref_id in references.items():
            conn.execute(
                block_references.insert().values(
                    id=str(uuid.uuid4()),
                    parent_document_id=doc_id,
                    reference_document_id=str(ref_id),
                    field=field_name,
                )
            )
        return DocumentRecord(
            id=uuid.UUID(doc_id),
            name=name,
            block_type=slug,
            block_type_id=type_id,
            schema_id=schema.id,
            schema_checksum=schema.checksum,
            data=data,
            created=_aware(created),
            updated=_aware(now),
            references=dict(references),
        )

    def _document_query(self) -> sa.Select[Any]:
        return sa.select(
            block_documents,
            block_types.c.slug,
            block_schemas.c.checksum,
        ).select_from(
            block_documents.join(
                block_types, block_types.c.id == block_documents.c.block_type_id
            ).join(
                block_schemas, block_schemas.c.id == block_documents.c.block_schema_id
            )
        )

    def _records(self, conn: Connection, rows: list[Any]) -> list[DocumentRecord]:
        ids = [r._mapping["id"] for r in rows]
        refs: dict[str, dict[str, uuid.UUID]] = {i: {} for i in ids}
        if ids:
            for parent, ref, field_name in conn.execute(
                sa.select(
                    block_references.c.parent_document_id,
                    block_references.c.reference_document_id,
                    block_references.c.field,
                ).where(block_references.c.parent_document_id.in_(ids))
            ):
                refs[parent][field_name] = uuid.UUID(ref)
        out = []
        for row in rows:
            m = row._mapping
            out.append(
                DocumentRecord(
                    id=uuid.UUID(m["id"]),
                    name=m["name"],
                    block_type=m["slug"],
                    block_type_id=uuid.UUID(m["block_type_id"]),
                    schema_id=uuid.UUID(m["block_schema_id"]),
                    schema_checksum=m["checksum"],
                    data=json.loads(m["data"]),
                    created=_aware(m["created"]),
                    updated=_aware(m["updated"]),
                    references=refs[m["id"]],
                )
            )
        return out

    def get_document(self, slug: str, name: str) -> DocumentRecord | None:
        """Return the document ``slug/name``, or None."""
        with self.transaction() as conn:
            rows = conn.execute(
                self._document_query().where(
                    block_types.c.slug == slug, block_documents.c.name == name
                )
            ).all()
            records = self._records(conn, list(rows))
        return records[0] if records else None

    def get_document_by_id(self, document_id: uuid.UUID) -> DocumentRecord | None:
        """Return the document with this id, or None."""
        with self.transaction() as conn:
            rows = conn.execute(
                self._document_query().where(block_documents.c.id == str(document_id))
            ).all()
            records = self._records(conn, list(rows))
        return records[0] if records else None

    def list_documents(self, slug: str | None = None) -> list[DocumentRecord]:
        """Return every document (of type ``slug``, if given), by type and name."""
        query = self._document_query().order_by(
            block_types.c.slug, block_documents.c.name
        )
        if slug is not None:
            query = query.where(block_types.c.slug == slug)
        with self.transaction() as conn:
            return self._records(conn, list(conn.execute(query).all()))

    def document_names(self, slug: str) -> list[str]:
        """Return the names of the documents of type ``slug``."""
        with self.transaction() as conn:
            return [
                r[0]
                for r in conn.execute(
                    sa.select(block_documents.c.name)
                    .join(
                        block_types,
                        block_types.c.id == block_documents.c.block_type_id,
                    )
                    .where(block_types.c.slug == slug)
                )
            ]

    def _refuse_if_referenced(
        self, conn: Connection, doc_ids: list[str], *, outside: list[str], what: str
    ) -> None:
        if not doc_ids:
            return
        query = (
            sa.select(
                block_references.c.field,
                block_documents.c.name,
                block_types.c.slug,
            )
            .join(
                block_documents,
                block_documents.c.id == block_references.c.parent_document_id,
            )
            .join(block_types, block_types.c.id == block_documents.c.block_type_id)
            .where(block_references.c.reference_document_id.in_(doc_ids))
        )
        if outside:
            query = query.where(block_references.c.parent_document_id.not_in(outside))
        user = conn.execute(query).first()
        if user is not None:
            raise BlockStoreError(
                f"Cannot delete {what}: document {user[2]}/{user[1]} uses it in its "
                f"field {user[0]!r}; delete or re-save that document first."
            )

    def delete_document(self, slug: str, name: str) -> DocumentRecord:
        """Delete the document ``slug/name`` and return what it was.

        Raises:
            BlockNotFoundError: No such document.
            BlockStoreError: Another document references it.
        """
        with self.transaction() as conn:
            rows = conn.execute(
                self._document_query().where(
                    block_types.c.slug == slug, block_documents.c.name == name
                )
            ).all()
            records = self._records(conn, list(rows))
            if not records:
                raise BlockNotFoundError(f"There is no {slug} document named {name!r}.")
            record = records[0]
            self._refuse_if_referenced(
                conn, [str(record.id)], outside=[], what=record.address
            )
            conn.execute(
                block_references.delete().where(
                    block_references.c.parent_document_id == str(record.id)
                )
            )
            conn.execute(
                block_documents.delete().where(block_documents.c.id == str(record.id))
            )
        return record


def _type_record(values: dict[str, Any]) -> TypeRecord:
    return TypeRecord(
        id=uuid.UUID(values["id"]),
        slug=values["slug"],
        name=values["name"],
        class_path=values["class_path"],
        description=values["description"],
        created=_aware(values["created"]),
        updated=_aware(values["updated"]),
    )


def _schema_record(values: dict[str, Any]) -> SchemaRecord:
    return SchemaRecord(
        id=uuid.UUID(values["id"]),
        block_type_id=uuid.UUID(values["block_type_id"]),
        checksum=values["checksum"],
        fields=json.loads(values["fields"]),
        capabilities=json.loads(values["capabilities"]),
        version=values["version"],
        created=_aware(values["created"]),
    )
