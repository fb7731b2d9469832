"""DatabaseCredentials: validation, secrets, the engine, missing drivers and bad
logins against the real servers (skipped locally when one is unreachable, failed
with ``CI=true``)."""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from blocks import BlockValidationError, DocumentStore
from blocks.sql import (
    AsyncDriver,
    AsyncSqlAlchemyConnector,
    DatabaseCredentials,
    SqlAlchemyConnector,
    SyncDriver,
)
from emitters import Event
from emitters._redact import MASK, redact_text
from emitters.testing import capture_events

POSTGRES_URL = os.environ.get(
    "EVENTBLOCKS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get(
    "EVENTBLOCKS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def server(url: str, name: str) -> sa.URL:
    """Return ``url`` parsed if its server answers; skip (locally) or fail (CI)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect():
            pass
    except Exception as exc:
        message = f"{name} is unreachable: {type(exc).__name__}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the service must run)")
        pytest.skip(message)
    finally:
        engine.dispose()
    return make_url(url)


def nowhere(value: str, events: list[Event]) -> bool:
    """True if ``value`` appears in no event's JSON."""
    return all(value not in e.model_dump_json() for e in events)


# -- fields ----------------------------------------------------------------------------


def test_parts_make_the_url_and_the_rendered_url_masks_the_password() -> None:
    """The URL is built from the parts; rendered_url and repr hide the password."""
    password = f"pw-{secrets.token_hex(8)}"
    credentials = DatabaseCredentials(
        driver=SyncDriver.POSTGRESQL_PSYCOPG,
        username="etl",
        password=password,
        host="db.internal",
        port=6432,
        database="warehouse",
        query={"sslmode": "require"},
    )
    assert credentials.rendered_url == (
        "postgresql+psycopg://etl:***@db.internal:6432/warehouse?sslmode=require"
    )
    assert credentials.drivername == "postgresql+psycopg"
    assert password not in repr(credentials)
    assert password not in str(credentials)
    assert password not in credentials.model_dump_json()
    assert redact_text(password) == MASK


def test_a_whole_url_is_secret_and_so_is_its_password() -> None:
    """A url is masked in repr and dumps, and its password alone is redacted too."""
    password = f"pw-{secrets.token_hex(8)}"
    url = f"mysql+pymysql://etl:{password}@db.internal/sales"
    credentials = DatabaseCredentials(url=url)
    assert credentials.rendered_url == "mysql+pymysql://etl:***@db.internal/sales"
    assert url not in repr(credentials)
    assert password not in credentials.model_dump_json()
    assert redact_text(f"login {password} refused") == f"login {MASK} refused"
    assert credentials._target() == {
        "db.system.name": "mysql",
        "db.namespace": "sales",
        "server.address": "db.internal",
        "server.port": 3306,
    }


def test_url_and_parts_together_are_refused() -> None:
    """Giving url with URL parts names the parts and echoes neither secret."""
    password = f"pw-{secrets.token_hex(8)}"
    with pytest.raises(BlockValidationError) as caught:
        DatabaseCredentials(
            url=f"postgresql://etl:{password}@h/db", host="h", password=password
        )
    message = str(caught.value)
    assert "url and password, host were given" in message
    assert password not in message


def test_neither_url_nor_driver_is_refused() -> None:
    """Without a url a driver is required."""
    with pytest.raises(BlockValidationError, match="give a driver"):
        DatabaseCredentials(host="db.internal")


@pytest.mark.parametrize(
    "url", ["not a url", "postgresql://etl:{pw}@db:notaport/x", "://etl:{pw}@db/x"]
)
def test_an_invalid_url_is_refused_without_echoing_it(url: str) -> None:
    """A url SQLAlchemy cannot parse fails validation; the message hides it."""
    password = f"pw-{secrets.token_hex(8)}"
    with pytest.raises(BlockValidationError) as caught:
        DatabaseCredentials(url=url.format(pw=password))
    assert caught.value.errors[0][0] == "url"
    assert "must be a SQLAlchemy URL" in str(caught.value)
    assert password not in str(caught.value)


@pytest.mark.parametrize("driver", ["postgres ql", "pg+psycopg+x", "pg://x", ""])
def test_a_malformed_driver_is_refused(driver: str) -> None:
    """A driver must read dialect+driver."""
    with pytest.raises(BlockValidationError, match="dialect\\+driver"):
        DatabaseCredentials(driver=driver)


def test_a_known_driver_string_becomes_its_enum_member() -> None:
    """A driver given as text is the matching enum member; others stay text."""
    assert DatabaseCredentials(driver="postgresql+asyncpg").driver is (
        AsyncDriver.POSTGRESQL_ASYNCPG
    )
    assert DatabaseCredentials(driver="mysql+pymysql").driver is (
        SyncDriver.MYSQL_PYMYSQL
    )
    assert DatabaseCredentials(driver="snowflake").driver == "snowflake"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"driver": SyncDriver.POSTGRESQL_PSYCOPG}, False),
        ({"driver": "postgresql+psycopg_async"}, True),
        ({"driver": "sqlite"}, False),
        ({"url": "sqlite+aiosqlite:///x.db"}, True),
        ({"url": "postgresql://u@h/db"}, False),
        ({"driver": "nosuchdialect+nodriver"}, None),
    ],
)
def test_is_async_follows_the_driver(fields: dict[str, Any], expected: bool) -> None:
    """Known drivers, installed dialects and unknown ones answer True/False/None."""
    assert DatabaseCredentials(**fields).is_async is expected


def test_connection_fields_cannot_change() -> None:
    """The engine is made from the fields, so they are frozen."""
    credentials = DatabaseCredentials(driver="sqlite", database="a.db")
    with pytest.raises(BlockValidationError, match="frozen"):
        credentials.database = "b.db"  # type: ignore[misc]


def test_connect_args_with_secret_names_are_secret_and_reach_the_driver(
    tmp_path: Path,
) -> None:
    """A connect_args value under a secret name is a SecretStr, revealed only to
    the driver's connect()."""
    key_password = f"kp-{secrets.token_hex(8)}"
    credentials = DatabaseCredentials(
        driver="sqlite",
        database=str(tmp_path / "x.db"),
        connect_args={"timeout": 3, "sslpassword": key_password},
    )
    assert isinstance(credentials.connect_args["sslpassword"], SecretStr)
    assert credentials.connect_args["timeout"] == 3
    assert key_password not in repr(credentials)
    seen: dict[str, Any] = {}
    engine = credentials.get_engine()

    @sa.event.listens_for(engine, "do_connect")
    def capture(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
        seen.update(cparams)
        cparams.pop("sslpassword")  # sqlite3 itself takes no such option
        return None

    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    finally:
        credentials.close()
    assert seen["sslpassword"] == key_password
    assert seen["timeout"] == 3


def test_saved_credentials_keep_their_driver_and_encrypt_the_password(
    tmp_path: Path,
) -> None:
    """Save and load round-trip the fields; the password is not in the database."""
    db_path = tmp_path / "docs.db"
    store = DocumentStore(f"sqlite:///{db_path}")
    password = f"pw-{secrets.token_hex(8)}"
    DatabaseCredentials(
        driver="postgresql+psycopg",
        username="etl",
        password=password,
        host="db.internal",
        database="warehouse",
        connect_args={"application_name": "nightly"},
    ).save("warehouse", store=store)
    loaded = DatabaseCredentials.load("warehouse", store=store)
    assert loaded.driver is SyncDriver.POSTGRESQL_PSYCOPG
    assert loaded.password is not None
    assert loaded.password.get_secret_value() == password
    assert loaded.connect_args == {"application_name": "nightly"}
    assert password.encode() not in db_path.read_bytes()


# -- the engine ----------------------------------------------------------------------


def test_get_engine_records_the_call_and_hides_parameters(tmp_path: Path) -> None:
    """get_engine() emits events with the database's facts and reuses its engine."""
    credentials = DatabaseCredentials(driver="sqlite", database=str(tmp_path / "x"))
    with capture_events() as events:
        engine = credentials.get_engine()
        again = credentials.get_engine()
    assert engine is again
    assert engine.hide_parameters
    assert [e.event for e in events] == [
        "block.database-credentials.get_engine.started",
        "block.database-credentials.get_engine.succeeded",
    ] * 2
    assert events[1].payload["db.system.name"] == "sqlite"
    credentials.close()


def test_a_copy_shares_the_engine_and_never_disposes_it(tmp_path: Path) -> None:
    """Copies share the engine; closing one leaves the other's pool alone, and a
    copy with another field has an engine of its own."""
    credentials = DatabaseCredentials(driver="sqlite", database=str(tmp_path / "x"))
    engine = credentials.get_engine()
    twin = copy.deepcopy(credentials)
    shallow = credentials.model_copy()
    other = credentials.model_copy(update={"database": str(tmp_path / "y")})
    try:
        assert twin.get_engine() is engine
        assert shallow.get_engine() is engine
        assert other.get_engine() is not engine
        assert other.get_engine().url.database == str(tmp_path / "y")
        pool = engine.pool
        twin.close()
        shallow.close()
        assert engine.pool is pool  # not disposed: credentials still holds it
    finally:
        twin.close()
        shallow.close()
        other.close()
        credentials.close()
    assert engine.pool is not pool  # the last holder disposed it


@pytest.mark.parametrize(
    ("driver", "module", "extra"),
    [
        ("mysql+pymysql", "pymysql", "mysql"),
        ("postgresql+psycopg", "psycopg", "postgres"),
    ],
)
def test_a_driver_that_is_not_installed_names_the_extra(
    driver: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing driver package fails the call with an ImportError naming the
    eventblocks extra that installs it."""
    # None in sys.modules makes the import fail as if the package were absent.
    monkeypatch.setitem(sys.modules, module, None)
    connector = SqlAlchemyConnector(
        credentials=DatabaseCredentials(driver=driver, host="db", database="x")
    )
    with capture_events() as events, pytest.raises(ImportError) as caught:
        connector.execute("SELECT 1")
    assert f"pip install 'eventblocks[{extra}]'" in str(caught.value)
    assert caught.value.name == module
    assert events[-1].payload["error"]["type"] == "ImportError"


def test_a_driver_outside_the_extras_names_its_module() -> None:
    """A driver eventblocks has no extra for names the module to install."""
    connector = SqlAlchemyConnector(
        credentials=DatabaseCredentials(driver="mssql+pymssql", host="db")
    )
    with pytest.raises(ImportError, match="needs the Python module pymssql"):
        connector.get_engine()


def test_an_unknown_dialect_is_an_import_error() -> None:
    """A dialect SQLAlchemy cannot load fails with a sentence naming the driver."""
    credentials = DatabaseCredentials(driver="nosuchdialect+nodriver", host="db")
    with pytest.raises(ImportError, match="No SQLAlchemy dialect is installed"):
        credentials.get_engine()


def test_the_async_extra_is_named_when_greenlet_is_missing(tmp_path: Path) -> None:
    """Without greenlet an async connector asks for eventblocks[async]."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.modules["greenlet"] = None
        from blocks.sql import AsyncSqlAlchemyConnector, DatabaseCredentials

        connector = AsyncSqlAlchemyConnector(
            credentials=DatabaseCredentials(
                driver="sqlite+aiosqlite", database={str(tmp_path / "x.db")!r}
            )
        )
        try:
            asyncio.run(connector.execute("SELECT 1"))
        except ImportError as exc:
            print(exc)
        """
    )
    env = {**os.environ, "EVENTBLOCKS_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'eventblocks[async]'" in result.stdout


# -- bad logins against the servers --------------------------------------------------


def _check_one_failure(
    connector: SqlAlchemyConnector,
    error: type[BaseException],
    fragment: str,
    secret: str | None = None,
) -> Event:
    """Run a query that must fail; return its failed event after the checks
    common to every bad login."""
    with capture_events() as events, pytest.raises(error) as caught:
        connector.fetch_one("SELECT 1")
    assert fragment in str(caught.value)
    failed = [e for e in events if e.event.endswith(".failed")]
    assert len(failed) == 1
    assert failed[0].payload["error"]["message"] == str(caught.value)
    if secret is not None:
        assert secret not in str(caught.value)
        assert nowhere(secret, events)
    engine = connector.credentials._engines.current
    assert isinstance(engine, sa.Engine)
    assert engine.pool.checkedout() == 0  # no connection left open
    assert len(connector._open) == 0
    connector.close()
    return failed[0]


def test_a_wrong_password_fails_once_and_is_never_shown() -> None:
    """MariaDB refuses a wrong password with errno 1045; the password is hidden."""
    url = server(MYSQL_URL, "MariaDB")
    password = f"pw-{secrets.token_hex(8)}"
    connector = SqlAlchemyConnector(
        credentials=DatabaseCredentials(
            driver=url.drivername,
            username=url.username,
            password=password,
            host=url.host,
            port=url.port,
            database=url.database,
        )
    )
    failed = _check_one_failure(
        connector, sa.exc.OperationalError, "Access denied", password
    )
    assert failed.payload["db.response.status_code"] == "1045"
    assert failed.payload["dbapi_error"] == "pymysql.err.OperationalError"


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_missing_database_fails_once(backend: str) -> None:
    """A database that does not exist is one OperationalError naming it."""
    url = server(
        POSTGRES_URL if backend == "postgresql" else MYSQL_URL,
        "PostgreSQL" if backend == "postgresql" else "MariaDB",
    )
    missing = f"eb_missing_{secrets.token_hex(4)}"
    connector = SqlAlchemyConnector(
        credentials=DatabaseCredentials(
            url=url.set(database=missing).render_as_string(hide_password=False)
        )
    )
    failed = _check_one_failure(connector, sa.exc.OperationalError, missing)
    assert failed.payload["db.namespace"] == missing


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_an_unknown_host_fails_once(backend: str) -> None:
    """A host name that does not resolve is one OperationalError naming it."""
    url = make_url(POSTGRES_URL if backend == "postgresql" else MYSQL_URL)
    host = f"eb-{secrets.token_hex(4)}.invalid"  # .invalid never resolves
    connector = SqlAlchemyConnector(
        credentials=DatabaseCredentials(
            url=url.set(host=host).render_as_string(hide_password=False)
        )
    )
    failed = _check_one_failure(connector, sa.exc.OperationalError, host)
    assert failed.payload["server.address"] == host


def test_a_refused_port_fails_once() -> None:
    """Nothing listening on the port is one OperationalError."""
    url = make_url(POSTGRES_URL).set(host="127.0.0.1", port=1)
    connector = SqlAlchemyConnector(
        credentials=DatabaseCredentials(url=url.render_as_string(hide_password=False))
    )
    failed = _check_one_failure(connector, sa.exc.OperationalError, "refused")
    assert failed.payload["server.port"] == 1


async def test_an_unknown_host_through_asyncpg_names_the_server() -> None:
    """asyncpg raises the socket error itself; a note names the server."""
    host = f"eb-{secrets.token_hex(4)}.invalid"
    url = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg", host=host)
    connector = AsyncSqlAlchemyConnector(
        credentials=DatabaseCredentials(url=url.render_as_string(hide_password=False))
    )
    with capture_events() as events, pytest.raises(OSError, match="Errno") as caught:
        await connector.fetch_one("SELECT 1")
    assert any(host in note for note in getattr(caught.value, "__notes__", []))
    assert events[-1].payload["server.address"] == host
    await connector.close()


def test_a_password_is_in_no_event_of_a_working_connection() -> None:
    """Calls that succeed and fail on PostgreSQL never show the password."""
    url = server(POSTGRES_URL, "PostgreSQL")
    password = f"pw-{secrets.token_hex(8)}"
    # Where the server trusts local logins the password is simply not needed.
    credentials = DatabaseCredentials(
        url=url.set(password=password).render_as_string(hide_password=False)
    )
    with (
        SqlAlchemyConnector(credentials=credentials) as connector,
        capture_events() as events,
    ):
        # A server that checks passwords refuses this one.
        with contextlib.suppress(sa.exc.OperationalError):
            connector.fetch_one("SELECT current_user")
        with pytest.raises(sa.exc.DBAPIError) as caught:
            connector.fetch_one("SELECT * FROM eb_no_such_table")
    assert password not in str(caught.value)
    assert password not in credentials.rendered_url
    assert nowhere(password, events)
