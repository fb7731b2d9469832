"""SQL blocks on SQLAlchemy: database credentials and connectors, observable
without leaking.

:class:`DatabaseCredentials` says where a database is and how to log in (a driver
and URL parts, or a whole URL; the password and the URL are secret) and makes the
block's pooled SQLAlchemy engine. :class:`SqlAlchemyConnector` runs statements
and pages through results with a sync driver, :class:`AsyncSqlAlchemyConnector`
with an asyncio one. Each call's event names the database, the statement's verb
and the rows returned or affected, and, on failure, the driver's error class and
its SQLSTATE or errno; never the statement's text, a bound value or the password.

Drivers come with extras: ``postgres`` (psycopg 3), ``mysql`` (PyMySQL) and
``async`` (asyncpg, aiosqlite); SQLite needs none.

Example:
    >>> from blocks.sql import DatabaseCredentials, SqlAlchemyConnector, SyncDriver
    >>> credentials = DatabaseCredentials(
    ...     driver=SyncDriver.SQLITE_PYSQLITE, database=":memory:"
    ... )
    >>> with SqlAlchemyConnector(credentials=credentials) as db:
    ...     db.fetch_all("SELECT 1")
    [(1,)]
"""

from blocks.sql._async import AsyncSqlAlchemyConnector
from blocks.sql._connector import SqlAlchemyConnector
from blocks.sql._credentials import AsyncDriver, DatabaseCredentials, SyncDriver
from blocks.sql._payload import TooManyOpenResultsError

__all__ = [
    "AsyncDriver",
    "AsyncSqlAlchemyConnector",
    "DatabaseCredentials",
    "SqlAlchemyConnector",
    "SyncDriver",
    "TooManyOpenResultsError",
]

# This module is their public home: `eventblocks register -m blocks.sql` finds the
# types defined here, and saved documents record it as their import path.
for _exported in (
    AsyncDriver,
    AsyncSqlAlchemyConnector,
    DatabaseCredentials,
    SqlAlchemyConnector,
    SyncDriver,
    TooManyOpenResultsError,
):
    _exported.__module__ = __name__
del _exported
