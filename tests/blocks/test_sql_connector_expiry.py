"""Expired database credentials, seen from the credentials block's side.

A PostgreSQL role logs in for a few flow runs, then its password is changed and
its login taken away, and later runs fail. ``runs_for_block`` on the credentials
document must tell the runs apart: the early ones without failures, the later
ones with failures and their error type.

The role loses its login (``NOLOGIN``) as well as its password because the test
server may trust local connections (the local test servers do): under trust
authentication PostgreSQL never asks for a password, so a changed password alone
would change nothing, and neither would ``VALID UNTIL``. ``NOLOGIN`` is refused
under every authentication method; where the server does check passwords, the
new password is what refuses the old one first.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from blocks.sql import DatabaseCredentials, SqlAlchemyConnector
from emitters import configure, flow_run, flush
from emitters.sql import SQLEventStore

POSTGRES_URL = os.environ.get(
    "EVENTBLOCKS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
REFUSALS = ("is not permitted to log in", "password authentication failed")


@pytest.fixture
def admin() -> Iterator[sa.Engine]:
    """An autocommit engine on the test server, as its administrator."""
    engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            pass
    except Exception as exc:
        engine.dispose()
        message = f"PostgreSQL is unreachable: {type(exc).__name__}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the service must run)")
        pytest.skip(message)
    yield engine
    engine.dispose()


@pytest.fixture
def role(admin: sa.Engine) -> Iterator[tuple[str, str]]:
    """A login role with a random name and password, dropped afterwards."""
    name = f"eb_expiry_{secrets.token_hex(4)}"
    password = secrets.token_hex(12)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'"))
    try:
        yield name, password
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE usename = :name"
                ),
                {"name": name},
            )
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {name}"))


def nightly(document: str, number: int) -> str:
    """One flow run that loads the saved connector and queries; returns its id."""
    with flow_run(f"nightly-{number}") as run:
        try:
            with SqlAlchemyConnector.load(document) as db:
                db.fetch_one("SELECT current_user")
        except sa.exc.OperationalError:
            pass  # the flow carries on; the store keeps the failure
    return run.id


def test_runs_for_block_shows_when_the_credentials_expired(
    admin: sa.Engine, role: tuple[str, str], tmp_path: object
) -> None:
    """Runs before the change have no failures; runs after it fail, with the type."""
    name, password = role
    store = SQLEventStore(f"sqlite:///{tmp_path}/events.db")
    configure(emitters=[store])
    server = make_url(POSTGRES_URL)
    credentials = DatabaseCredentials(
        driver=server.drivername,
        username=name,
        password=password,
        host=server.host,
        port=server.port,
        database=server.database,
    )
    credentials.save("warehouse")
    SqlAlchemyConnector(credentials=credentials).save("warehouse")

    before = [nightly("warehouse", n) for n in range(3)]
    with admin.connect() as conn:
        conn.execute(
            sa.text(f"ALTER ROLE {name} WITH PASSWORD '{secrets.token_hex(12)}'")
        )
        conn.execute(sa.text(f"ALTER ROLE {name} NOLOGIN"))
    after = [nightly("warehouse", n) for n in range(3, 5)]
    flush()

    summaries = store.runs_for_block("database-credentials/warehouse")
    # Saving the documents happened outside any flow run: not one of the runs.
    summaries = [s for s in summaries if s.flow_run_id is not None]
    assert [s.flow_run_id for s in summaries] == before + after
    assert [s.flow_run_name for s in summaries] == [f"nightly-{n}" for n in range(5)]
    assert [s.failures for s in summaries] == [0, 0, 0, 1, 1]
    assert [s.calls for s in summaries] == [1] * 5
    assert [s.last_error_type for s in summaries] == [None] * 3 + [
        "sqlalchemy.exc.OperationalError"
    ] * 2

    [failed] = store.events(flow_run=after[0], failed=True)
    assert failed.event == "block.sqlalchemy-connector.fetch_one.failed"
    assert failed.payload["dbapi_error"] == "psycopg.OperationalError"
    assert any(reason in failed.payload["error"]["message"] for reason in REFUSALS)
    assert password not in failed.model_dump_json()
    [call] = store.timeline(after[-1])
    assert call.outcome == "failed"
    assert call.error_type == "sqlalchemy.exc.OperationalError"
