"""The saved block documents, listed without writing to their database.

``DocumentStore`` creates its tables and records its schema version when it first
opens a database; the page must write nothing, so it reads the document tables
through a read-only engine instead, and a database without them has no documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from blocks._documents.store import DocumentStore
from blocks._documents.tables import aware, block_documents, block_types
from emitters._sdk import engine_for

__all__ = ["SavedDocument", "saved_documents"]


@dataclass(frozen=True, slots=True)
class SavedDocument:
    """A saved document's address and when it was last saved."""

    block_type: str
    name: str
    updated: datetime


def saved_documents(documents: DocumentStore) -> list[SavedDocument]:
    """Return the documents saved in ``documents``'s database, by type and name."""
    engine = engine_for(documents.url, read_only=True)
    with engine.connect() as conn:
        present = set(sa.inspect(conn).get_table_names())
        if not {block_types.name, block_documents.name} <= present:
            return []
        d, t = block_documents.c, block_types.c
        rows = conn.execute(
            sa.select(t.slug, d.name, d.updated)
            .select_from(block_documents.join(block_types, t.id == d.block_type_id))
            .order_by(t.slug, d.name)
        ).all()
    return [SavedDocument(slug, name, aware(updated)) for slug, name, updated in rows]
