"""Database credentials expire: which flow runs used them, and when they failed.

Run it from the repository root (it needs the ``postgres`` extra and a PostgreSQL
server it may create a role on)::

    python examples/expired_credentials.py

The server is ``EVENTBLOCKS_TEST_POSTGRES_URL``, by default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``. The script creates a login
role with a random name and password, saves a ``DatabaseCredentials`` document
for it and a ``SqlAlchemyConnector`` document that uses it, and runs the flow
``nightly-load`` three times. Then the role's password is changed, and its login
taken away, and the flow runs twice more. Events go to the SQL event store in a
temporary eventblocks home. From the credentials' side, the store shows every run
that used them: the early ones without failures, the later ones with their
error. The role is dropped at the end.

The login is taken away too (``NOLOGIN``) because a server that trusts local
connections, as test servers often do, never asks for the password: changing it
alone would not stop anyone. Without a reachable server the script says what it
needs and exits with status 0.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from blocks.sql import DatabaseCredentials, SqlAlchemyConnector
from emitters import configure, flow_run, flush
from emitters.sql import BlockRunSummary, SQLEventStore

SERVER = os.environ.get(
    "EVENTBLOCKS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def admin_engine() -> sa.Engine | None:
    """An autocommit engine on the server, or None (saying why) if out of reach."""
    shown = make_url(SERVER).render_as_string(hide_password=True)
    try:
        engine = sa.create_engine(
            SERVER, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
        )
        with engine.connect():
            pass
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(
            "This example needs a PostgreSQL server where it may create a role, "
            "and the postgres extra (pip install 'eventblocks[postgres]').\n"
            f"It could not use {shown}: {reason}\n"
            "Start PostgreSQL there, or set EVENTBLOCKS_TEST_POSTGRES_URL to a "
            "server's SQLAlchemy URL (postgresql+psycopg://user@host:port/db)."
        )
        return None
    return engine


def nightly_load(number: int) -> str:
    """The flow: load the saved connector and read from the warehouse."""
    with flow_run("nightly-load", labels={"night": str(number)}) as run:
        try:
            with SqlAlchemyConnector.load("warehouse") as warehouse:
                warehouse.fetch_one("SELECT current_user")
            print(f"nightly-load #{number}: ok")
        except sa.exc.OperationalError as exc:
            first_line = str(exc).splitlines()[0]
            print(f"nightly-load #{number}: FAILED: {first_line}")
    return run.id


def table(uses: list[BlockRunSummary], names: dict[str, str]) -> list[str]:
    """The runs_for_block rows as an aligned table."""
    lines = [f"  {'flow run':<26} {'first used (UTC)':<17} calls failures last error"]
    for use in uses:
        run = names.get(use.flow_run_id or "", "(saving, outside any run)")
        when = f"{use.first_used:%H:%M:%S}.{use.first_used.microsecond // 1000:03d}"
        error = use.last_error_type or "-"
        lines.append(f"  {run:<26} {when:<17} {use.calls:>5} {use.failures:>8} {error}")
    return lines


def main() -> int:
    """Tell the story; return the exit status."""
    admin = admin_engine()
    if admin is None:
        return 0
    home = tempfile.TemporaryDirectory()
    os.environ["EVENTBLOCKS_HOME"] = home.name
    store = SQLEventStore()  # the home database
    configure(emitters=[store])
    role, password = f"eb_example_{secrets.token_hex(4)}", secrets.token_hex(12)
    server = make_url(SERVER)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        credentials = DatabaseCredentials(
            driver=server.drivername,
            username=role,
            password=password,
            host=server.host,
            port=server.port,
            database=server.database,
        )
        credentials.save("warehouse")
        SqlAlchemyConnector(credentials=credentials).save("warehouse")

        runs = [nightly_load(night) for night in (1, 2, 3)]
        print(f"-- the password of {role} is changed, and its login taken away --")
        with admin.connect() as conn:
            new = secrets.token_hex(12)
            conn.execute(sa.text(f"ALTER ROLE {role} WITH PASSWORD '{new}'"))
            conn.execute(sa.text(f"ALTER ROLE {role} NOLOGIN"))
        runs += [nightly_load(night) for night in (4, 5)]
        flush()

        uses = store.runs_for_block("database-credentials/warehouse")
        lines = ["\nEvery flow run that used database-credentials/warehouse:"]
        names = {run: f"nightly-load #{night}" for night, run in enumerate(runs, 1)}
        lines += table(uses, names)
        first_bad = next(use for use in uses if use.failures)
        [failed] = store.events(flow_run=first_bad.flow_run_id, failed=True)
        detail = failed.payload
        lines += [
            f"\nFirst failure: {names[str(first_bad.flow_run_id)]} "
            f"(flow run {first_bad.flow_run_id})",
            f"  event:  {failed.event}",
            f"  error:  {detail['error']['type']} (driver: {detail['dbapi_error']})",
            f"  reason: {detail['error']['message'].splitlines()[0]}",
        ]
        print("\n".join(lines))

        events = store.events(limit=1000)
        if any(password in e.model_dump_json() for e in events) or any(
            password in line for line in lines
        ):
            print("The password leaked.", file=sys.stderr)
            return 1
        failures = [use.failures for use in uses if use.flow_run_id in runs]
        if failures != [0, 0, 0, 1, 1]:
            print(f"The story did not go as told: {failures}.", file=sys.stderr)
            return 1
        print(f"\nThe password appears in none of the {len(events)} stored events.")
        return 0
    finally:
        configure()
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE usename = :role"
                ),
                {"role": role},
            )
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()
        home.cleanup()


if __name__ == "__main__":
    sys.exit(main())
