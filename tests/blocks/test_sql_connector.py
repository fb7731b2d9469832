"""SqlAlchemyConnector on SQLite, PostgreSQL (psycopg 3) and MariaDB (PyMySQL).

Each test runs once per database. The servers' URLs come from
``EVENTBLOCKS_TEST_POSTGRES_URL`` and ``EVENTBLOCKS_TEST_MYSQL_URL``; an unreachable
server skips its tests locally and fails them with ``CI=true``. Tables get random
names and are dropped afterwards, although each run has databases of its own
(tests/conftest.py): the tests of one run share them.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from blocks import BlockValidationError, DocumentStore
from blocks.sql import DatabaseCredentials, SqlAlchemyConnector, SyncDriver
from emitters import Event
from emitters.testing import capture_events

POSTGRES_URL = os.environ.get(
    "EVENTBLOCKS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get(
    "EVENTBLOCKS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
SYSTEMS = {"sqlite": "sqlite", "postgresql": "postgresql", "mariadb": "mariadb"}
_reachable: dict[str, str | None] = {}


def server_url(url: str, name: str) -> str:
    """Return ``url`` if its server answers; skip (locally) or fail (CI) if not."""
    if url not in _reachable:
        engine = sa.create_engine(url)
        try:
            with engine.connect():
                _reachable[url] = None
        except Exception as exc:  # unreachable, refused, driver missing
            _reachable[url] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        finally:
            engine.dispose()
    problem = _reachable[url]
    if problem is not None:
        message = f"{name} at {make_url(url).render_as_string()} is unreachable: "
        message += problem
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the service must run)")
        pytest.skip(message)
    return url


def parts_of(url: str) -> dict[str, Any]:
    """The DatabaseCredentials fields of ``url``, given as parts."""
    parsed = make_url(url)
    parts = {
        "driver": parsed.drivername,
        "username": parsed.username,
        "password": parsed.password,
        "host": parsed.host,
        "port": parsed.port,
        "database": parsed.database,
    }
    return {k: v for k, v in parts.items() if v is not None}


@dataclass
class Database:
    """One backend under test: its admin engine and a table made for the test."""

    backend: str
    credentials: DatabaseCredentials
    admin: sa.Engine
    table: str

    def count(self) -> int:
        """Rows in the test table, read on a connection of the test's own."""
        with self.admin.connect() as conn:
            return int(
                conn.execute(sa.text(f"SELECT COUNT(*) FROM {self.table}")).scalar_one()
            )


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Credentials for each backend and a fresh table ``(id varchar, n int)``."""
    backend: str = request.param
    if backend == "sqlite":
        credentials = DatabaseCredentials(
            driver=SyncDriver.SQLITE_PYSQLITE, database=str(tmp_path / "test.db")
        )
        admin_url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        url = server_url(
            POSTGRES_URL if backend == "postgresql" else MYSQL_URL,
            "PostgreSQL" if backend == "postgresql" else "MariaDB",
        )
        credentials = DatabaseCredentials(**parts_of(url))
        admin_url = url
    table = f"eb_sql_{secrets.token_hex(6)}"
    admin = sa.create_engine(admin_url)
    with admin.begin() as conn:
        conn.execute(
            sa.text(f"CREATE TABLE {table} (id VARCHAR(64) PRIMARY KEY, n INTEGER)")
        )
    try:
        yield Database(backend, credentials, admin, table)
    finally:
        credentials.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        admin.dispose()


@pytest.fixture
def connector(database: Database) -> Iterator[SqlAlchemyConnector]:
    """A connector on the backend's credentials, closed afterwards."""
    with SqlAlchemyConnector(credentials=database.credentials) as db:
        yield db


def outcomes(events: list[Event]) -> list[Event]:
    """The outcome events (succeeded or failed), in order."""
    return [e for e in events if not e.event.endswith(".started")]


def nowhere(value: str, events: list[Event]) -> bool:
    """True if ``value`` appears in no event's JSON."""
    return all(value not in e.model_dump_json() for e in events)


def fill(connector: SqlAlchemyConnector, table: str, count: int) -> None:
    """Insert rows ``r00``.. with ``n`` = their index."""
    connector.execute_many(
        f"INSERT INTO {table} (id, n) VALUES (:id, :n)",
        [{"id": f"r{i:02d}", "n": i} for i in range(count)],
    )


class OpenCounter:
    """Counts the DBAPI connections an engine opened and closed."""

    def __init__(self, engine: sa.Engine) -> None:
        self.opened = 0
        self.closed = 0
        sa.event.listen(engine, "connect", self._connect)
        sa.event.listen(engine.pool, "close", self._close)
        sa.event.listen(engine.pool, "close_detached", self._close)

    def _connect(self, *args: Any) -> None:
        self.opened += 1

    def _close(self, *args: Any) -> None:
        self.closed += 1

    @property
    def open(self) -> int:
        """Connections opened and not closed."""
        return self.opened - self.closed


# -- statements ------------------------------------------------------------------------


def test_execute_commits_and_records_the_call(
    connector: SqlAlchemyConnector, database: Database
) -> None:
    """execute() commits its statement; the event names the database and the verb."""
    with capture_events() as events:
        result = connector.execute(
            f"INSERT INTO {database.table} (id, n) VALUES (:id, :n)",
            {"id": "a", "n": 1},
        )
    assert result.rowcount == 1
    assert database.count() == 1
    assert [e.event for e in events] == [
        "block.sqlalchemy-connector.execute.started",
        "block.sqlalchemy-connector.execute.succeeded",
    ]
    payload = events[1].payload
    assert payload["db.system.name"] == SYSTEMS[database.backend]
    assert payload["db.operation.name"] == "INSERT"
    assert payload["rows_affected"] == 1
    url = database.credentials._url()
    assert payload["db.namespace"] == url.database
    if database.backend == "sqlite":
        assert "server.address" not in payload
    else:
        assert payload["server.address"] == url.host
        assert payload["server.port"] == url.port
    assert database.table not in events[1].model_dump_json()  # no statement text


def test_execute_many_runs_each_parameter_set_in_one_transaction(
    connector: SqlAlchemyConnector, database: Database
) -> None:
    """execute_many() inserts every set and records the batch size and row count."""
    with capture_events() as events:
        fill(connector, database.table, 3)
    assert database.count() == 3
    payload = outcomes(events)[0].payload
    assert payload["db.operation.name"] == "INSERT"
    assert payload["db.operation.batch.size"] == 3
    assert payload["rows_affected"] == 3


def test_execute_many_rolls_back_every_set_when_one_fails(
    connector: SqlAlchemyConnector, database: Database
) -> None:
    """A failing parameter set leaves none of the others committed."""
    with pytest.raises(sa.exc.IntegrityError):
        connector.execute_many(
            f"INSERT INTO {database.table} (id, n) VALUES (:id, :n)",
            [{"id": "x", "n": 1}, {"id": "y", "n": 2}, {"id": "x", "n": 3}],
        )
    assert database.count() == 0


def test_fetch_calls_page_through_one_result(
    connector: SqlAlchemyConnector, database: Database
) -> None:
    """fetch_one, fetch_many and fetch_all continue one result until it is reset."""
    fill(connector, database.table, 6)
    query = f"SELECT id, n FROM {database.table} ORDER BY id"
    with capture_events() as events:
        assert connector.fetch_one(query) == ("r00", 0)
        assert connector.fetch_many(query, size=2) == [("r01", 1), ("r02", 2)]
        assert connector.fetch_many(query) == [("r03", 3)]  # fetch_size is 1
        assert connector.fetch_all(query) == [("r04", 4), ("r05", 5)]
        assert connector.fetch_all(query) == []
        assert connector.fetch_one(query) is None
    returned = [e.payload["rows_returned"] for e in outcomes(events)]
    assert returned == [1, 2, 1, 2, 0, 0]
    assert {e.payload["db.operation.name"] for e in outcomes(events)} == {"SELECT"}
    connector.reset_connections()
    assert connector.fetch_one(query) == ("r00", 0)


def test_fetch_size_sets_the_default_page(database: Database) -> None:
    """fetch_many() without a size returns fetch_size rows."""
    with SqlAlchemyConnector(credentials=database.credentials, fetch_size=4) as db:
        fill(db, database.table, 5)
        query = f"SELECT id FROM {database.table} ORDER BY id"
        assert len(db.fetch_many(query)) == 4
        assert len(db.fetch_many(query)) == 1


def test_other_parameters_open_another_result(
    connector: SqlAlchemyConnector, database: Database
) -> None:
    """The same statement with other parameters is a result of its own."""
    fill(connector, database.table, 4)
    query = f"SELECT id FROM {database.table} WHERE n >= :low ORDER BY id"
    assert connector.fetch_one(query, {"low": 2}) == ("r02",)
    assert connector.fetch_one(query, {"low": 0}) == ("r00",)
    assert connector.fetch_one(query, {"low": 2}) == ("r03",)
    assert connector.fetch_one(query, {"low": 0}) == ("r01",)


def test_sqlalchemy_executables_run_and_name_their_operation(
    connector: SqlAlchemyConnector, database: Database
) -> None:
    """Core insert/select/update/delete constructs work; events give their verbs."""
    table = sa.Table(
        database.table,
        sa.MetaData(),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("n", sa.Integer),
    )
    with capture_events() as events:
        connector.execute(sa.insert(table), {"id": "core", "n": 7})
        connector.execute(sa.update(table).where(table.c.id == "core").values(n=8))
        row = connector.fetch_one(sa.select(table.c.n).where(table.c.id == "core"))
        connector.execute(sa.delete(table).where(table.c.id == "core"))
    assert row == (8,)
    verbs = [e.payload["db.operation.name"] for e in outcomes(events)]
    assert verbs == ["INSERT", "UPDATE", "SELECT", "DELETE"]
    assert database.count() == 0


def test_fetching_a_statement_without_rows_raises_and_keeps_nothing(
    connector: SqlAlchemyConnector, database: Database
) -> None:
    """fetch_one on an INSERT raises SQLAlchemy's error and holds no connection."""
    with pytest.raises(sa.exc.ResourceClosedError):
        connector.fetch_one(f"INSERT INTO {database.table} (id, n) VALUES ('z', 1)")
    assert len(connector._open) == 0
    assert database.count() == 0  # never committed


# -- connections -----------------------------------------------------------------------


def test_get_connection_commits_when_the_block_succeeds(
    connector: SqlAlchemyConnector, database: Database
) -> None:
    """get_connection() runs a transaction that commits on a normal exit."""
    with connector.get_connection() as conn:
        conn.execute(sa.text(f"INSERT INTO {database.table} (id, n) VALUES ('c', 1)"))
    assert database.count() == 1
    assert conn.closed


def test_get_connection_rolls_back_when_the_block_raises(
    connector: SqlAlchemyConnector, database: Database
) -> None:
    """An error inside the block rolls the transaction back and closes."""
    insert = sa.text(f"INSERT INTO {database.table} (id, n) VALUES ('c', 1)")

    def insert_then_fail() -> None:
        with connector.get_connection() as conn:
            seen.append(conn)
            conn.execute(insert)
            raise RuntimeError("stop")

    seen: list[sa.Connection] = []
    with pytest.raises(RuntimeError):
        insert_then_fail()
    [conn] = seen
    assert database.count() == 0
    assert conn.closed


def test_get_connection_without_begin_returns_an_open_connection(
    connector: SqlAlchemyConnector,
) -> None:
    """begin=False hands out the connection itself; close() closes it."""
    with capture_events() as events:
        conn = connector.get_connection(begin=False)
    assert isinstance(conn, sa.Connection)
    assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    assert [e.event for e in outcomes(events)] == [
        "block.sqlalchemy-connector.get_connection.succeeded"
    ]
    connector.close()
    assert conn.closed


def test_close_leaves_no_connection_open(database: Database) -> None:
    """close() closes fetch results, handed-out connections and the pool."""
    connector = SqlAlchemyConnector(credentials=database.credentials)
    counter = OpenCounter(connector.get_engine())
    fill(connector, database.table, 3)
    connector.fetch_one(f"SELECT id FROM {database.table} ORDER BY id")
    connector.fetch_one(f"SELECT n FROM {database.table} ORDER BY n")
    connector.get_connection(begin=False)
    connector.get_connection()  # never entered
    assert counter.open >= 2
    connector.close()
    assert counter.open == 0
    assert counter.opened >= 2


def test_the_engine_is_made_once_and_shared(database: Database) -> None:
    """Every thread and connector on one credentials block shares one engine."""
    seen: list[sa.Engine] = []

    def grab() -> None:
        seen.append(SqlAlchemyConnector(credentials=database.credentials).get_engine())

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(engine) for engine in seen}) == 1
    assert seen[0] is database.credentials.get_engine()
    assert seen[0].hide_parameters
    database.credentials.close()
    assert database.credentials.get_engine() is not seen[0]


# -- failures --------------------------------------------------------------------------

DBAPI_UNIQUE = {
    "sqlite": ("sqlite3.IntegrityError", "SQLITE_CONSTRAINT_PRIMARYKEY"),
    "postgresql": ("psycopg.errors.UniqueViolation", "23505"),
    "mariadb": ("pymysql.err.IntegrityError", "1062"),
}


def test_a_unique_violation_keeps_the_key_out_of_messages_and_events(
    connector: SqlAlchemyConnector, database: Database
) -> None:
    """The duplicate key, a bound value, is in no message, chained or not."""
    key = f"key-{secrets.token_hex(8)}"
    insert = f"INSERT INTO {database.table} (id, n) VALUES (:id, :n)"
    connector.execute(insert, {"id": key, "n": 1})
    with capture_events() as events, pytest.raises(sa.exc.IntegrityError) as caught:
        connector.execute(insert, {"id": key, "n": 2})
    exc = caught.value
    assert key not in str(exc)
    assert "[SQL:" not in str(exc)
    assert exc.statement is None
    link: BaseException | None = exc.__cause__
    while link is not None:
        assert key not in str(link)
        link = link.__cause__ or link.__context__
    failed = outcomes(events)[0]
    assert failed.event == "block.sqlalchemy-connector.execute.failed"
    assert failed.payload["error"]["type"] == "sqlalchemy.exc.IntegrityError"
    assert failed.payload["error"]["message"] == str(exc)
    dbapi, code = DBAPI_UNIQUE[database.backend]
    assert failed.payload["dbapi_error"] == dbapi
    assert failed.payload["db.response.status_code"] == code
    assert failed.payload["db.operation.name"] == "INSERT"
    assert nowhere(key, events)


def test_a_literal_in_the_statement_stays_out_of_the_message(
    connector: SqlAlchemyConnector, database: Database
) -> None:
    """Literal values in a failing statement appear in neither message nor event."""
    literal = f"lit-{secrets.token_hex(8)}"
    insert = f"INSERT INTO {database.table} (id, n) VALUES ('{literal}', 1)"
    connector.execute(insert)
    with capture_events() as events, pytest.raises(sa.exc.IntegrityError) as caught:
        connector.execute(insert)
    assert literal not in str(caught.value)
    assert nowhere(literal, events)


def test_a_missing_table_fails_with_one_clean_line(
    connector: SqlAlchemyConnector, database: Database
) -> None:
    """The error keeps the driver's first line and drops the statement excerpt."""
    value = f"v-{secrets.token_hex(8)}"
    query = "SELECT n FROM eb_sql_no_such_table WHERE id = :id"
    with capture_events() as events, pytest.raises(sa.exc.DBAPIError) as caught:
        connector.fetch_all(query, {"id": value})
    message = str(caught.value)
    assert "eb_sql_no_such_table" in message  # the cause is named
    assert "LINE 1" not in message
    assert "[SQL:" not in message
    assert value not in message
    assert len(connector._open) == 0  # the result's connection was closed
    failed = outcomes(events)[0]
    assert failed.payload["db.operation.name"] == "SELECT"
    assert "dbapi_error" in failed.payload
    assert nowhere(value, events)


def test_a_bad_statement_type_is_a_type_error(connector: SqlAlchemyConnector) -> None:
    """A statement that is neither text nor an executable fails before any SQL."""
    with pytest.raises(TypeError, match="SQL string or a SQLAlchemy executable"):
        connector.execute(42)  # type: ignore[arg-type]


# -- identity ------------------------------------------------------------------------


def test_events_relate_the_saved_credentials(tmp_path: Path) -> None:
    """A loaded connector's events name its credentials document (nested-block)."""
    store = DocumentStore(f"sqlite:///{tmp_path}/docs.db")
    credentials = DatabaseCredentials(
        driver="sqlite", database=str(tmp_path / "data.db")
    )
    credentials.save("analytics", store=store)
    SqlAlchemyConnector(credentials=credentials, fetch_size=10).save(
        "analytics", store=store
    )
    loaded = SqlAlchemyConnector.load("analytics", store=store)
    with loaded, capture_events() as events:
        loaded.fetch_all("SELECT 1")
    assert loaded.fetch_size == 10
    assert loaded.credentials.document_id == credentials.document_id
    for event in events:
        assert event.resource.id == f"block-document.{loaded.document_id}"
        [nested] = event.related_by_role("nested-block")
        assert nested.id == f"block-document.{credentials.document_id}"
        assert nested.name == "analytics"
        assert nested.labels["field"] == "credentials"


def test_the_connector_refuses_an_async_driver() -> None:
    """An asyncio driver needs AsyncSqlAlchemyConnector; the error says so."""
    credentials = DatabaseCredentials(driver="sqlite+aiosqlite", database="x.db")
    with pytest.raises(BlockValidationError, match="AsyncSqlAlchemyConnector"):
        SqlAlchemyConnector(credentials=credentials)
