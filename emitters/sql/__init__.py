"""The SQL event store: a sink that writes events through SQLAlchemy, and queries.

With nothing configured, events go to this store on the home database (SQLite in
``EVENTBLOCKS_HOME``, or ``EVENTBLOCKS_DATABASE_URL``), so ``eventblocks events``
shows what a script just did. PostgreSQL and MySQL/MariaDB work by URL. The store
keeps a summary of each flow run (:class:`RunSummary`) as its events are written.
"""

from emitters.sql._store import (
    BlockRunSummary,
    BlockSummary,
    CallRecord,
    RunFailure,
    RunLookupError,
    RunSummary,
    SQLEventStore,
    TimelineRow,
)

__all__ = [
    "BlockRunSummary",
    "BlockSummary",
    "CallRecord",
    "RunFailure",
    "RunLookupError",
    "RunSummary",
    "SQLEventStore",
    "TimelineRow",
]
