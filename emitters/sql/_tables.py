"""The event store's tables, and events turned into rows and back.

An event is one row of ``eventblocks_events``: the columns its queries filter on
(time, name, resource, block type, flow run), and the rest as JSON text. Ids are
32 hexadecimal digits (``UUID.hex``), and times are
integer microseconds since the epoch (UTC): exact, fast to write, and ordered the
same way in every database. Related documents with the role ``nested-block`` also
get a row in ``eventblocks_event_links``, so "every event that used this document"
is an indexed lookup rather than a scan of the JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection

from emitters._model import Event, RelatedResource, Resource
from emitters._pipeline.batch import Described, Item

__all__ = [
    "EVENT_COLUMNS",
    "LINK_COLUMNS",
    "PART_COLUMNS",
    "EncodedBatch",
    "RowEncoder",
    "RunMeta",
    "event_columns",
    "event_from_row",
    "event_links",
    "event_parts",
    "events_table",
    "events_with_parts",
    "from_micros",
    "metadata",
    "run_blocks_table",
    "run_meta",
    "runs_table",
    "select_events",
    "to_micros",
    "upgrade_event_tables",
]

metadata = sa.MetaData()
# JSON text: MySQL's TEXT holds only 64 kB.
_Json = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
# Text compared byte for byte, as on SQLite and PostgreSQL, with every character
# of Unicode (MySQL's "utf8" stops at three bytes a character).
_MYSQL_TABLE: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mariadb_charset": "utf8mb4",
    "mariadb_collate": "utf8mb4_bin",
}
BLOCK_TYPE_LENGTH = 128

events_table = sa.Table(
    "eventblocks_events",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("occurred_us", sa.BigInteger, nullable=False),
    sa.Column("event", sa.String(255), nullable=False),
    sa.Column("resource_id", sa.String(255), nullable=False),
    sa.Column("resource_name", sa.String(255), nullable=True),
    sa.Column("block_type", sa.String(BLOCK_TYPE_LENGTH), nullable=True),
    sa.Column("flow_run_id", sa.String(255), nullable=True),
    sa.Column("flow_run_name", sa.String(255), nullable=True),
    sa.Column("follows", sa.String(32), nullable=True),
    sa.Column("resource_labels", _Json, nullable=False),
    sa.Column("related", _Json, nullable=False),
    sa.Column("payload", _Json, nullable=False),
    # The key of the row of eventblocks_event_parts that holds this event's
    # resource labels and related resources, when they are not in the row.
    sa.Column("parts", sa.String(32), nullable=True),
    sa.Index("ix_eventblocks_events_occurred", "occurred_us"),
    sa.Index("ix_eventblocks_events_flow_run", "flow_run_id", "occurred_us"),
    sa.Index("ix_eventblocks_events_resource", "resource_id", "occurred_us"),
    sa.Index(
        "ix_eventblocks_events_block_time", "block_type", "resource_name", "occurred_us"
    ),
    **_MYSQL_TABLE,
)

# What the events of many calls share (the calls of one block method in one run):
# their resource labels and related resources, written once, by content hash,
# with the run they belong to (the parts of a run go when its summary is pruned).
event_parts = sa.Table(
    "eventblocks_event_parts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("flow_run_id", sa.String(255), nullable=True),
    sa.Column("resource_labels", _Json, nullable=False),
    sa.Column("related", _Json, nullable=False),
    **_MYSQL_TABLE,
)

event_links = sa.Table(
    "eventblocks_event_links",
    metadata,
    sa.Column("event_id", sa.String(32), primary_key=True),
    sa.Column("resource_id", sa.String(255), primary_key=True),
    sa.Column("role", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=True),
    sa.Column("block_type", sa.String(BLOCK_TYPE_LENGTH), nullable=True),
    sa.Column("occurred_us", sa.BigInteger, nullable=True),
    sa.Index(
        "ix_eventblocks_event_links_block_time", "block_type", "name", "occurred_us"
    ),
    sa.Index("ix_eventblocks_event_links_resource", "resource_id"),
    **_MYSQL_TABLE,
)

# One row per flow run, kept up to date as its events are written (see _runs.py).
runs_table = sa.Table(
    "eventblocks_runs",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("short_id", sa.String(16), nullable=False),
    sa.Column("name", sa.String(255), nullable=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("labels", _Json, nullable=False),
    sa.Column("first_us", sa.BigInteger, nullable=False),
    sa.Column("last_us", sa.BigInteger, nullable=False),
    sa.Column("calls", sa.BigInteger, nullable=False),
    sa.Column("failures", sa.BigInteger, nullable=False),
    sa.Column("failure_block", sa.String(512), nullable=True),
    sa.Column("failure_method", sa.String(255), nullable=True),
    sa.Column("failure_error_type", sa.String(255), nullable=True),
    sa.Column("failure_us", sa.BigInteger, nullable=True),
    sa.Column("events_lost", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column(
        "infrastructure_events", sa.BigInteger, nullable=False, server_default="0"
    ),
    sa.Index("ix_eventblocks_runs_started", "first_us"),
    sa.Index("ix_eventblocks_runs_name", "name", "first_us"),
    sa.Index("ix_eventblocks_runs_short_id", "short_id"),
    **_MYSQL_TABLE,
)

# How each flow run used each block document: one row per (block type, document
# name, run), "" standing for no name and for no run.
run_blocks_table = sa.Table(
    "eventblocks_run_blocks",
    metadata,
    sa.Column("block_type", sa.String(BLOCK_TYPE_LENGTH), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("run_id", sa.String(255), primary_key=True),
    sa.Column("run_name", sa.String(255), nullable=True),
    sa.Column("first_us", sa.BigInteger, nullable=False),
    sa.Column("last_us", sa.BigInteger, nullable=False),
    sa.Column("calls", sa.BigInteger, nullable=False),
    sa.Column("failures", sa.BigInteger, nullable=False),
    sa.Column("last_error_type", sa.String(255), nullable=True),
    sa.Column("last_error_us", sa.BigInteger, nullable=True),
    **_MYSQL_TABLE,
)

EVENT_COLUMNS = tuple(c.name for c in events_table.columns)
LINK_COLUMNS = tuple(c.name for c in event_links.columns)
PART_COLUMNS = tuple(c.name for c in event_parts.columns)


def event_columns() -> list[Any]:
    """The columns of an event as queries read them, in ``EVENT_COLUMNS`` order:
    the resource labels and related resources from the event's parts when they
    are there (select from :func:`events_with_parts`)."""
    columns: list[Any] = []
    for column in events_table.columns:
        if column.name in ("resource_labels", "related"):
            shared = event_parts.c[column.name]
            columns.append(sa.func.coalesce(shared, column).label(column.name))
        else:
            columns.append(column)
    return columns


def events_with_parts() -> Any:
    """The events table joined with the parts its rows name."""
    return events_table.outerjoin(event_parts, event_parts.c.id == events_table.c.parts)


def select_events() -> Any:
    """``SELECT`` of whole events (see :func:`event_columns`)."""
    return sa.select(*event_columns()).select_from(events_with_parts())


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_LINKED_ROLES = frozenset({"nested-block"})


# Indexes that earlier versions made and the current ones replace.
_OLD_INDEXES = {
    events_table.name: ("ix_eventblocks_events_block",),
    event_links.name: ("ix_eventblocks_event_links_block",),
}


def upgrade_event_tables(conn: Connection) -> None:
    """Bring tables created by an earlier version up to date.

    Earlier versions held flow run ids of 64 characters at most and, on MySQL and
    MariaDB, JSON of 64 kB in the database's default character set; their links
    had no time, their indexes did not serve a block's latest events, and their
    events held every part inline (no ``parts`` column; the table of parts is
    created with the others). Each
    change is made only where the table still has the old form, so this is cheap
    to run whenever the store opens a database.
    """
    _upgrade_types(conn)
    _upgrade_links_and_indexes(conn)


def _upgrade_links_and_indexes(conn: Connection) -> None:
    inspector = sa.inspect(conn)
    event_columns_now = {c["name"] for c in inspector.get_columns(events_table.name)}
    if "parts" not in event_columns_now:
        # Rows written before keep their labels and related resources inline.
        conn.exec_driver_sql(
            f"ALTER TABLE {events_table.name} ADD COLUMN parts VARCHAR(32) NULL"
        )
    link_columns = {c["name"] for c in inspector.get_columns(event_links.name)}
    if "occurred_us" not in link_columns:
        conn.exec_driver_sql(
            f"ALTER TABLE {event_links.name} ADD COLUMN occurred_us BIGINT NULL"
        )
        links, events = event_links.c, events_table.c
        conn.execute(
            event_links.update()
            .where(links.occurred_us.is_(None))
            .values(
                occurred_us=sa.select(events.occurred_us)
                .where(events.id == links.event_id)
                .scalar_subquery()
            )
        )
    mysql_like = conn.dialect.name in ("mysql", "mariadb")
    for table in (events_table, event_links):
        present = {ix["name"] for ix in inspector.get_indexes(table.name)}
        for old in _OLD_INDEXES[table.name]:
            if old in present:
                on = f" ON {table.name}" if mysql_like else ""
                conn.exec_driver_sql(f"DROP INDEX {old}{on}")
        for index in table.indexes:
            if index.name not in present:
                index.create(conn)


def _upgrade_types(conn: Connection) -> None:
    backend = conn.dialect.name
    if backend == "sqlite":  # SQLite enforces neither lengths nor TEXT sizes
        return
    columns = {
        c["name"]: c["type"] for c in sa.inspect(conn).get_columns(events_table.name)
    }
    run_id_length = getattr(columns["flow_run_id"], "length", None) or 0
    if backend == "postgresql":
        if run_id_length < 255:
            conn.exec_driver_sql(
                f"ALTER TABLE {events_table.name} "
                "ALTER COLUMN flow_run_id TYPE VARCHAR(255)"
            )
        return
    if backend not in ("mysql", "mariadb"):
        return
    for table in (events_table, event_links):
        collation = conn.execute(
            sa.text(
                "SELECT table_collation FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = :name"
            ),
            {"name": table.name},
        ).scalar()
        if collation != "utf8mb4_bin":
            conn.exec_driver_sql(
                f"ALTER TABLE {table.name} "
                "CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            )
    if run_id_length < 255 or not isinstance(columns["payload"], mysql.LONGTEXT):
        conn.exec_driver_sql(
            f"ALTER TABLE {events_table.name} "
            "MODIFY flow_run_id VARCHAR(255) NULL, "
            "MODIFY resource_labels LONGTEXT NOT NULL, "
            "MODIFY related LONGTEXT NOT NULL, "
            "MODIFY payload LONGTEXT NOT NULL"
        )


def to_micros(moment: datetime) -> int:
    """Return an aware datetime as integer microseconds since the epoch."""
    return (moment - _EPOCH) // _MICRO


def from_micros(micros: int) -> datetime:
    """Return the aware UTC datetime of ``micros`` microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=micros)


def _block_type(labels: dict[str, str]) -> str | None:
    """Return the ``block-type`` label for its indexed column, if it can be a slug.

    The column only serves queries by block type; a label that cannot name one
    (too long, or with NUL) stays in the labels' JSON alone.
    """
    slug = labels.get("block-type")
    if slug is None or len(slug) > BLOCK_TYPE_LENGTH or "\x00" in slug:
        return None
    return slug


RunMeta = tuple[str | None, str, str]
"""A flow run as its events name it: its name, source and labels (JSON)."""


def run_meta(name: str | None, labels: Mapping[str, str]) -> RunMeta:
    """Return a flow run's name, source and labels (without ``source``) as stored.

    Runs whose events carry no ``source`` label were made by ``flow_run()``.
    """
    own = dict(labels)
    source = own.pop("source", None) or "eventblocks"
    return name, source[:64], json.dumps(own, separators=(",", ":"), sort_keys=True)


def _related_json(related: Sequence[RelatedResource]) -> str:
    return json.dumps(
        [
            {"id": r.id, "role": r.role, "name": r.name, "labels": dict(r.labels)}
            for r in related
        ],
        separators=(",", ":"),
    )


class RowEncoder:
    """Turns events into rows, caching the parts that repeat between events.

    The pipeline hands the store drafts of events (see
    :mod:`emitters._pipeline.batch`), which become rows without an ``Event`` being
    built; events built already (``emit_event()``'s) are encoded from their
    fields. A block's resource and a call's related resources are shared objects
    from one event to the next, so their JSON and the columns drawn from them
    are computed once per object. Each cache entry keeps its object, so an
    ``id()`` cannot be reused while the entry exists. Used by one thread at a time.
    """

    _MAX = 2048

    def __init__(self) -> None:
        self._resources: dict[int, tuple[Resource, tuple[Any, ...]]] = {}
        self._related: dict[
            int,
            tuple[
                tuple[RelatedResource, ...], tuple[Any, ...], list[Any], RunMeta | None
            ],
        ] = {}
        self._described: dict[int, tuple[Described, tuple[Any, ...]]] = {}

    def _resource_parts(self, resource: Resource) -> tuple[Any, ...]:
        hit = self._resources.get(id(resource))
        if hit is not None and hit[0] is resource:
            return hit[1]
        labels = resource.labels
        parts = (
            resource.id,
            resource.name,
            _block_type(labels),
            json.dumps(dict(labels), separators=(",", ":")),
        )
        if len(self._resources) >= self._MAX:
            self._resources.clear()
        self._resources[id(resource)] = (resource, parts)
        return parts

    def _related_parts(
        self, related: tuple[RelatedResource, ...]
    ) -> tuple[tuple[Any, ...], list[Any], RunMeta | None]:
        hit = self._related.get(id(related))
        if hit is not None and hit[0] is related:
            return hit[1], hit[2], hit[3]
        flow_run = flow_run_name = None
        meta: RunMeta | None = None
        links: list[tuple[str, str, str | None, str | None]] = []
        for r in related:
            if r.role == "flow-run" and flow_run is None:
                flow_run = r.id.removeprefix("flow-run.")
                flow_run_name = r.name
                meta = run_meta(r.name, r.labels)
            elif r.role in _LINKED_ROLES:
                links.append((r.id, r.role, r.name, _block_type(r.labels)))
        parts = (flow_run, flow_run_name, _related_json(related))
        if len(self._related) >= self._MAX:
            self._related.clear()
        self._related[id(related)] = (related, parts, links, meta)
        return parts, links, meta

    def _described_parts(self, described: Described) -> tuple[Any, ...]:
        """The columns of a draft's call parts, with its parts' key and row."""
        hit = self._described.get(id(described))
        if hit is not None and hit[0] is described:
            return hit[1]
        rid, rname, block_type, labels = self._resource_parts(described[0])
        (flow_run, run_name, related), links, meta = self._related_parts(described[1])
        digest = hashlib.blake2b(digest_size=16)
        digest.update(labels.encode())
        digest.update(b"\x00")
        digest.update(related.encode())
        key = digest.hexdigest()
        parts = (
            rid,
            rname,
            block_type,
            flow_run,
            run_name,
            key,
            links,
            meta,
            (key, flow_run, labels, related),
        )
        if len(self._described) >= self._MAX:
            self._described.clear()
        self._described[id(described)] = (described, parts)
        return parts

    def rows(self, items: Iterable[Item]) -> EncodedBatch:
        """Return the rows for ``items`` (events, or drafts of events as the
        pipeline hands them over), in column order: see :class:`EncodedBatch`.

        A draft's resource labels and related resources go to the parts table,
        once per call site, and its row names them (``resource_labels`` and
        ``related`` are then empty); an event built already keeps them in its
        row.
        """
        rows: list[tuple[Any, ...]] = []
        link_rows: list[tuple[Any, ...]] = []
        runs: dict[str, RunMeta] = {}
        part_rows: dict[str, tuple[str, str | None, str, str]] = {}
        resource_parts, related_parts = self._resource_parts, self._related_parts
        described_parts = self._described_parts
        dumps, epoch, micro = json.dumps, _EPOCH, _MICRO
        tuple_type, float_type = tuple, float
        for item in items:
            if type(item) is tuple_type:
                # A draft: its call's parts are encoded once per call site.
                event_id_int, wall, name, described, payload, follows_int = item
                (
                    rid,
                    rname,
                    block_type,
                    flow_run,
                    run_name,
                    parts,
                    links,
                    meta,
                    part_row,
                ) = described_parts(described)
                if parts not in part_rows:
                    part_rows[parts] = part_row
                labels = related = ""
                event_id = f"{event_id_int:032x}"
                occurred = wall // 1000
                follows = None if follows_int is None else f"{follows_int:032x}"
            else:
                rid, rname, block_type, labels = resource_parts(item.resource)
                (flow_run, run_name, related), links, meta = related_parts(item.related)
                parts = None
                event_id = item.id.hex
                occurred = (item.occurred - epoch) // micro
                name = item.event
                payload = item.payload
                follows = None if item.follows is None else item.follows.hex
            if meta is not None and flow_run not in runs:
                runs[flow_run] = meta
            if not payload:
                payload_json = "{}"
            elif len(payload) == 1 and type(payload.get("duration_ms")) is float_type:
                # An outcome's usual payload, without the encoder's set-up cost.
                payload_json = f'{{"duration_ms":{payload["duration_ms"]!r}}}'
            else:
                payload_json = dumps(payload)
            rows.append(
                (
                    event_id,
                    occurred,
                    name,
                    rid,
                    rname,
                    block_type,
                    flow_run,
                    run_name,
                    follows,
                    labels,
                    related,
                    payload_json,
                    parts,
                )
            )
            for link in links:
                link_rows.append((event_id, *link, occurred))
        return EncodedBatch(rows, link_rows, runs, list(part_rows.values()))


class EncodedBatch(NamedTuple):
    """A batch of events as the store writes it.

    Attributes:
        rows: Rows of ``eventblocks_events``, in ``EVENT_COLUMNS`` order.
        link_rows: Rows of ``eventblocks_event_links`` (``LINK_COLUMNS``).
        runs: What the events say about each flow run they belong to.
        part_rows: Rows of ``eventblocks_event_parts`` (``PART_COLUMNS``) the
            rows name, each once (some may be stored already).
    """

    rows: list[tuple[Any, ...]]
    link_rows: list[tuple[Any, ...]]
    runs: dict[str, RunMeta]
    part_rows: list[tuple[str, str | None, str, str]]


def event_from_row(row: Any) -> Event:
    """Rebuild the event stored in ``row`` (a row of :func:`select_events`).

    Rows were written from valid events, so they are rebuilt without validation:
    reading stays fast, and a row an earlier version accepted still reads. A row
    whose parts are gone (pruned while it was written) reads with no labels and
    no related resources.
    """
    related = tuple(
        RelatedResource.model_construct(
            id=r["id"], role=r["role"], name=r.get("name"), labels=r.get("labels", {})
        )
        for r in json.loads(row.related or "[]")
    )
    return Event.model_construct(
        id=UUID(hex=row.id),
        occurred=from_micros(row.occurred_us),
        event=row.event,
        resource=Resource.model_construct(
            id=row.resource_id,
            name=row.resource_name,
            labels=json.loads(row.resource_labels or "{}"),
        ),
        related=related,
        payload=json.loads(row.payload),
        follows=None if row.follows is None else UUID(hex=row.follows),
    )
