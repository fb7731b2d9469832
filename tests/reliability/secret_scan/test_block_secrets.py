"""Secret scan of the block types: every block that holds secrets, every method,
succeeding and failing, through every sink; zero hits (see conftest.py for what is
searched and how).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from blocks import Block
from emitters import flow_run


def attempt(call: Callable[[], Any]) -> None:
    """Make a call that may fail: its failure is part of what is scanned."""
    try:
        result = call()
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    except Exception as exc:  # the caller's own exception is not an output
        del exc


async def attempt_async(call: Callable[[], Any]) -> None:
    """Await a call that may fail: its failure is part of what is scanned."""
    try:
        await call()
    except Exception as exc:  # the caller's own exception is not an output
        del exc


def test_system_blocks_and_user_blocks_leak_nothing(scan: Any) -> None:
    """Secret, and a user block with SecretStr/SecretDict fields, in every path."""
    from pydantic import SecretStr

    from blocks import SecretDict, event_payload
    from blocks.system import Secret

    token = scan.add("secret-block")
    password = scan.add("vault-password")
    option = scan.add("vault-option")

    class ScanVault(Block):
        """A user block that misuses its secrets in every way it can."""

        password: SecretStr
        options: SecretDict = SecretDict({})

        @event_payload(lambda args, result: {"echo": args.arguments["value"]})
        def echo(self, value: str) -> str:
            return value

        def refuse(self) -> None:
            raise PermissionError(
                f"login with {self.password.get_secret_value()} refused; "
                f"options {self.options.get_secret_value()}"
            )

    Secret(value=token).save("api-token")
    vault = ScanVault(password=password, options={"client_secret": option})
    vault.save("vault")
    with flow_run("system", labels={"team": "data"}):
        assert Secret.load("api-token").get() == token
        loaded = ScanVault.load("vault")
        loaded.echo(password)
        loaded.echo(option)
        attempt(loaded.refuse)
        print(repr(loaded), loaded, loaded.model_dump_json())
    ScanVault.delete("vault")
    scan.assert_clean()


def test_http_blocks_leak_nothing(
    scan: Any, receiver: tuple[str, list[bytes]], closed_port: int
) -> None:
    """HttpEndpoint and Webhook, every method, success and failure: no secret."""
    from pydantic import SecretStr

    from blocks.http import BasicAuth, BearerAuth, HttpEndpoint, Webhook

    base, _ = receiver
    closed = f"http://127.0.0.1:{closed_port}"
    bearer = scan.add("bearer")
    api_key = scan.add("api-key")
    param = scan.add("access-token")
    call_token = scan.add("call-token")
    basic = scan.add("basic-password")
    hook = scan.add("hook-path", plain=True)
    HttpEndpoint(
        base_url=f"{base}/v1",
        auth=BearerAuth(token=bearer),
        headers={"X-Api-Key": api_key, "X-Trace": "plain"},
        params={"access_token": param, "page": "1"},
        timeout=5,
    ).save("api")
    HttpEndpoint(
        base_url=f"{base}/v1", auth=BasicAuth(username="etl", password=basic)
    ).save("basic")
    Webhook(url=SecretStr(f"{base}/hooks/T0/{hook}")).save("alerts")
    with flow_run("http", labels={"team": "data"}):
        api = HttpEndpoint.load("api")
        for verb in ("get", "post", "put", "patch", "delete"):
            attempt(lambda verb=verb: getattr(api, verb)("orders"))
        attempt(lambda: api.request("GET", "fail", raise_for_status=True))
        attempt(lambda: api.get("redirect", raise_for_status=True))
        attempt(lambda: api.get("orders", params={"token": call_token}))
        attempt(lambda: api.get(f"{base}/v1/missing?sig={call_token}"))
        basic_api = HttpEndpoint.load("basic")
        attempt(lambda: basic_api.get("orders"))
        attempt(lambda: basic_api.get("fail", raise_for_status=True))
        refused = HttpEndpoint(
            base_url=closed, auth=BearerAuth(token=bearer), params={"key": param}
        )
        attempt(lambda: refused.get("x"))
        webhook = Webhook.load("alerts")
        attempt(lambda: webhook.notify({"text": "hello"}))
        broken = [
            Webhook(url=SecretStr(url))
            for url in (f"{base}/hooks/broken/{hook}", f"{closed}/hooks/{hook}")
        ]
        for each in broken:
            attempt(lambda each=each: each.notify({"text": "x"}))

        async def async_calls() -> None:
            for verb in ("aget", "apost", "aput", "apatch", "adelete"):
                await attempt_async(lambda verb=verb: getattr(api, verb)("orders"))
            await attempt_async(lambda: api.aget("fail", raise_for_status=True))
            await attempt_async(lambda: refused.aget("x"))
            await attempt_async(lambda: webhook.anotify("hello"))
            for each in broken:
                await attempt_async(lambda each=each: each.anotify({"text": "x"}))
            for endpoint in (api, basic_api, refused):
                await endpoint.aclose()

        asyncio.run(async_calls())
        print(repr(api), repr(webhook))
    scan.assert_clean()


def test_sql_blocks_leak_nothing(scan: Any, closed_port: int, postgres: sa.URL) -> None:
    """SQL credentials and both connectors on PostgreSQL: no secret out."""
    from blocks.sql import (
        AsyncSqlAlchemyConnector,
        DatabaseCredentials,
        SqlAlchemyConnector,
    )

    # The test server trusts local logins, so any password works; a server that
    # checks them gets its own password, scanned the same way.
    password = postgres.password or scan.add("db-password")
    if postgres.password:
        scan.secrets["db-password"] = postgres.password
    ssl_password = scan.add("ssl-password")
    url_password = scan.add("url-password")
    closed = closed_port
    credentials = DatabaseCredentials(
        driver="postgresql+psycopg",
        username=postgres.username,
        password=password,
        host=postgres.host,
        port=postgres.port or 5432,
        database=postgres.database,
        connect_args={"sslpassword": ssl_password},
    )
    SqlAlchemyConnector(credentials=credentials).save("pg")
    with flow_run("sql", labels={"team": "data"}):
        with SqlAlchemyConnector.load("pg") as db:
            db.execute("DROP TABLE IF EXISTS scan_logins")
            db.execute("CREATE TABLE scan_logins (login VARCHAR PRIMARY KEY)")
            db.execute_many(
                "INSERT INTO scan_logins VALUES (:login)",
                [{"login": "a"}, {"login": password}],
            )
            # Rows are data, and SQL logging at DEBUG prints them: fetch others.
            mine = "SELECT login FROM scan_logins WHERE login = 'a'"
            db.fetch_one(mine)
            db.fetch_many(mine, size=5)
            db.fetch_all(mine)
            with db.get_connection() as conn:
                conn.execute(sa.text("SELECT 1"))
            db.get_connection(begin=False).close()
            db.get_engine()
            attempt(
                lambda: db.execute(
                    "INSERT INTO scan_logins VALUES (:v)", {"v": password}
                )
            )
            attempt(lambda: db.fetch_one("SELECT CAST(:v AS INTEGER)", {"v": password}))
            # A literal is the caller's own text, and SQL logging prints statements
            # as written: only the event's message is checked for this one.
            engine_log = logging.getLogger("sqlalchemy.engine")
            level = engine_log.level
            engine_log.setLevel(logging.WARNING)
            attempt(lambda: db.fetch_all(f"SELECT CAST('{password}' AS INTEGER)"))
            engine_log.setLevel(level)
            attempt(lambda: db.execute("SELECT * FROM no_such_table"))
            # The paged results hold a transaction open; DROP would wait on it.
            db.reset_connections()
            db.execute("DROP TABLE scan_logins")
        down = DatabaseCredentials(
            url=f"postgresql+psycopg://postgres:{quote(url_password, safe='')}"
            f"@127.0.0.1:{closed}/test"
        )
        attempt(lambda: SqlAlchemyConnector(credentials=down).fetch_one("SELECT 1"))
        attempt(lambda: down.get_engine())

        async def run_async() -> None:
            async_credentials = DatabaseCredentials(
                driver="postgresql+asyncpg",
                username=postgres.username,
                password=password,
                host=postgres.host,
                port=postgres.port or 5432,
                database=postgres.database,
            )
            async with AsyncSqlAlchemyConnector(credentials=async_credentials) as adb:
                await adb.fetch_one("SELECT 1")
                await adb.fetch_all("SELECT :v", {"v": "x"})
                try:
                    await adb.fetch_one("SELECT CAST(:v AS INTEGER)", {"v": password})
                except Exception as exc:
                    del exc
            refused = DatabaseCredentials(
                driver="postgresql+asyncpg",
                username=postgres.username,
                password=url_password,
                host="127.0.0.1",
                port=closed,
                database="test",
            )
            try:
                async with AsyncSqlAlchemyConnector(credentials=refused) as bad:
                    await bad.fetch_one("SELECT 1")
            except Exception as exc:
                del exc

        asyncio.run(run_async())
        print(repr(credentials), credentials.rendered_url)
    scan.assert_clean()


def test_aws_blocks_leak_nothing(scan: Any, tmp_path: Path) -> None:
    """AwsCredentials and S3Bucket on a real S3 server: no secret out."""
    from moto.server import ThreadedMotoServer

    from blocks.aws import AwsCredentials, S3Bucket

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        secret_key = scan.add("aws-secret-key")
        session = scan.add("aws-session-token")
        credentials = AwsCredentials(
            aws_access_key_id="AKIASCANSCANSCAN",
            aws_secret_access_key=secret_key,
            aws_session_token=session,
            region_name="us-east-1",
            aws_client_parameters={"endpoint_url": f"http://{host}:{port}"},
        )
        credentials.get_client("s3").create_bucket(Bucket="scan-bucket")
        S3Bucket(bucket_name="scan-bucket", credentials=credentials).save("raw")
        folder = tmp_path / "up"
        folder.mkdir()
        (folder / "a.txt").write_text("alpha")
        with flow_run("aws", labels={"team": "data"}):
            bucket = S3Bucket.load("raw")
            bucket.write_path("in/a.txt", b"alpha")
            bucket.read_path("in/a.txt")
            bucket.list_objects("in")
            bucket.upload_from_path(folder / "a.txt", "in/b.txt")
            bucket.download_object_to_path("in/b.txt", tmp_path / "b.txt")
            bucket.upload_from_folder(folder, "up")
            bucket.download_folder_to_path("up", tmp_path / "down")
            bucket.copy_object("in/a.txt", "in/c.txt")
            bucket.move_object("in/c.txt", "in/d.txt")
            bucket.stream_from(bucket, "in/a.txt", "in/e.txt")
            bucket.delete_objects(["in/d.txt"])
            attempt(lambda: bucket.aread_path("in/a.txt"))
            attempt(lambda: bucket.read_path("in/missing.txt"))
            attempt(lambda: bucket.aread_path("in/missing.txt"))
            attempt(lambda: bucket.download_object_to_path("nope", tmp_path / "n"))
            missing = S3Bucket(bucket_name="no-such-bucket", credentials=credentials)
            attempt(lambda: missing.write_path("x", b"x"))
            attempt(lambda: missing.list_objects())
            attempt(lambda: credentials.get_client("no-such-service"))
            bucket.credentials.get_boto3_session()
            print(repr(bucket), repr(credentials))
    finally:
        server.stop()
    scan.assert_clean()
