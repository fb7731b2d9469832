"""The document database: block types, their schemas, documents and references.

SQLAlchemy Core over SQLite (the default, a file in the eventblocks home),
PostgreSQL or MySQL/MariaDB (see :mod:`blocks._documents.engine`). The tables
(:mod:`blocks._documents.tables`) are created on first use and carry a schema
version in ``eventblocks_meta``; :data:`~blocks._documents.tables.MIGRATIONS`
upgrades an older database in place the first time a newer eventblocks opens it.
"""

from __future__ import annotations

import json
import random
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from blocks._documents.engine import engine_for, mask_url, max_statement_bytes
from blocks._documents.tables import (
    MIGRATIONS,
    SCHEMA_VERSION,
    DocumentRecord,
    SchemaRecord,
    TypeRecord,
    aware,
    block_documents,
    block_references,
    block_schemas,
    block_types,
    meta,
    metadata,
    schema_record,
    type_record,
)
from blocks._documents.tables import (
    now as utc_now,
)
from blocks._errors import BlockExistsError, BlockNotFoundError, BlockStoreError
from emitters._sdk import database_url, prepare

# Room for the statement around a document's JSON.
_HEADROOM = 64 * 1024

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "DocumentRecord",
    "DocumentStore",
    "SchemaRecord",
    "TypeRecord",
    "mask_url",
    "metadata",
    "unprintable",
]

# URLs whose tables were checked in this process.
_ready: set[str] = set()

T = TypeVar("T")

# Deadlock and serialization failures: PostgreSQL SQLSTATEs, MySQL/MariaDB errnos.
# MariaDB rolls back the whole transaction on a deadlock inside a savepoint, so
# the rollback to that savepoint then fails with 1305 ("SAVEPOINT ... does not
# exist"), hiding the deadlock's own 1213: that is a deadlock too.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
_TRANSIENT_ERRNOS = frozenset({1213, 1205, 1305})


def unprintable(text: str, *, unstorable_only: bool = False) -> str | None:
    """Describe the first control character or lone surrogate in ``text``, if any.

    With ``unstorable_only``, only what no database can store counts: NUL and lone
    surrogates. Earlier versions saved names with other control characters (a
    tab), and those must still load.
    """
    for position, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cc" and (char == "\x00" or not unstorable_only):
            return f"a control character (U+{ord(char):04X} at position {position})"
        if category == "Cs":
            return f"a lone surrogate (U+{ord(char):04X} at position {position})"
    return None


def _check_keys(slug: str | None, name: str | None = None) -> None:
    """Refuse a slug or name no document can have, before it reaches the database.

    PostgreSQL cannot even compare text holding NUL, so such a lookup would be a
    database error rather than "not found".
    """
    for what, text in (("block type slug", slug), ("document name", name)):
        if isinstance(text, str):
            bad = unprintable(text, unstorable_only=True)
            if bad is not None:
                raise ValueError(
                    f"A {what} cannot contain NUL or lone surrogates: "
                    f"{text!r} has {bad}."
                )


def _is_transient(orig: object) -> bool:
    """Whether a driver error means "run the transaction again"."""
    if getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATES:
        return True
    args: tuple[object, ...] = tuple(getattr(orig, "args", ()))
    if not args or args[0] not in _TRANSIENT_ERRNOS:
        return False
    # 1305 also means a missing function or procedure: only a lost savepoint counts.
    return args[0] != 1305 or "SAVEPOINT" in str(args[1:]).upper()


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
        engine = engine_for(self.url)
        if self.url not in _ready:
            self._prepare(engine)
        return engine

    def _prepare(self, engine: Engine) -> None:
        def create(conn: Connection) -> None:
            metadata.create_all(conn, checkfirst=True)
            self._check_version(conn)

        try:
            prepare(engine, create)
        except SQLAlchemyError as exc:
            cause = type(getattr(exc, "orig", None) or exc).__name__
            raise BlockStoreError(
                f"Cannot prepare the document tables in {mask_url(self.url)} ({cause})."
            ) from None
        _ready.add(self.url)

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
        """A transaction; database errors become a one-line ``BlockStoreError``.

        The error's ``transient`` attribute is True when the database gave up the
        transaction to break a deadlock or a serialization conflict: the same work
        may succeed when run again (see :meth:`run`).
        """
        try:
            with self.engine.begin() as conn:
                yield conn
        except (BlockExistsError, BlockNotFoundError):
            raise
        except SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None)
            cause = type(orig or exc).__name__
            error = BlockStoreError(
                f"The document database {mask_url(self.url)} failed: {cause}: "
                f"{str(orig or exc).splitlines()[0]}"
            )
            error.transient = _is_transient(orig)
            raise error from None

    def run(self, work: Callable[[Connection], T], *, attempts: int = 6) -> T:
        """Return ``work(conn)`` run in a transaction, run again after a deadlock.

        PostgreSQL and MariaDB abort one of two transactions that wait for each
        other; concurrent saves can meet that way. The aborted one has written
        nothing, so it is run again after a short, random wait.
        """
        for attempt in range(attempts):
            try:
                with self.transaction() as conn:
                    return work(conn)
            except BlockStoreError as exc:
                if not exc.transient or attempt == attempts - 1:
                    raise
                time.sleep(0.01 * 2**attempt * (1 + random.random()))
        raise AssertionError("unreachable")  # pragma: no cover

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
        now = utc_now()
        query = sa.select(block_types).where(block_types.c.slug == slug)
        row = conn.execute(query).first()
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
                return type_record(values)
            except IntegrityError:
                # Another process stored the type at the same moment: use theirs.
                row = conn.execute(query).one()
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
        return type_record(values)

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
        query = sa.select(block_schemas).where(
            block_schemas.c.block_type_id == str(type_id),
            block_schemas.c.checksum == checksum,
        )
        row = conn.execute(query).first()
        if row is None:
            values = {
                "id": str(uuid.uuid4()),
                "block_type_id": str(type_id),
                "checksum": checksum,
                "fields": json.dumps(fields, sort_keys=True),
                "capabilities": json.dumps(capabilities),
                "version": version,
                "created": utc_now(),
            }
            try:
                with conn.begin_nested():
                    conn.execute(block_schemas.insert().values(**values))
                return schema_record(values)
            except IntegrityError:
                # Another process stored the same schema at the same moment.
                row = conn.execute(query).one()
        return schema_record(dict(row._mapping))

    def get_type(self, slug: str) -> TypeRecord | None:
        """Return the stored type ``slug``, or None."""
        _check_keys(slug)
        with self.transaction() as conn:
            row = conn.execute(
                sa.select(block_types).where(block_types.c.slug == slug)
            ).first()
        return None if row is None else type_record(dict(row._mapping))

    def list_types(self) -> list[TypeRecord]:
        """Return every stored type, by slug."""
        with self.transaction() as conn:
            rows = conn.execute(
                sa.select(block_types).order_by(block_types.c.slug)
            ).all()
        return [type_record(dict(r._mapping)) for r in rows]

    def latest_schema(self, slug: str) -> SchemaRecord | None:
        """Return the most recently stored schema of type ``slug``, or None."""
        _check_keys(slug)
        with self.transaction() as conn:
            row = conn.execute(
                sa.select(block_schemas)
                .join(block_types, block_types.c.id == block_schemas.c.block_type_id)
                .where(block_types.c.slug == slug)
                .order_by(block_schemas.c.created.desc(), block_schemas.c.id)
            ).first()
        return None if row is None else schema_record(dict(row._mapping))

    def count_documents(self, slug: str) -> int:
        """Return how many documents type ``slug`` has."""
        _check_keys(slug)
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
        _check_keys(slug)
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

    def _check_size(self, conn: Connection, slug: str, name: str, body: str) -> None:
        """Refuse a document larger than the server takes in one statement.

        MySQL and MariaDB drop the connection for a packet larger than their
        ``max_allowed_packet``, which would surface as "Lost connection".

        Raises:
            BlockStoreError: The document is too large; it names the limit.
        """
        limit = max_statement_bytes(conn.engine)
        if limit is None or len(body) * 2 + _HEADROOM <= limit:
            return
        size = len(body.encode()) + body.count('"') + body.count("\\")
        if size + _HEADROOM > limit:
            raise BlockStoreError(
                f"The {slug} document {name!r} is {size} bytes as stored, more than "
                f"{mask_url(self.url)} accepts in one statement (max_allowed_packet "
                f"= {limit} bytes); make it smaller or raise max_allowed_packet on "
                "the server"
            )

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
        now = utc_now()
        query = sa.select(block_documents.c.id, block_documents.c.created).where(
            block_documents.c.block_type_id == str(type_id),
            block_documents.c.name == name,
        )
        existing = conn.execute(query).first()
        body = json.dumps(data, sort_keys=True)
        self._check_size(conn, slug, name, body)
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
                existing = conn.execute(query).one()
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
            created=aware(created),
            updated=aware(now),
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
                    created=aware(m["created"]),
                    updated=aware(m["updated"]),
                    references=refs[m["id"]],
                )
            )
        return out

    def get_document(self, slug: str, name: str) -> DocumentRecord | None:
        """Return the document ``slug/name``, or None."""
        _check_keys(slug, name)
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
            _check_keys(slug)
            query = query.where(block_types.c.slug == slug)
        with self.transaction() as conn:
            return self._records(conn, list(conn.execute(query).all()))

    def document_names(self, slug: str) -> list[str]:
        """Return the names of the documents of type ``slug``."""
        _check_keys(slug)
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
        _check_keys(slug, name)
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
