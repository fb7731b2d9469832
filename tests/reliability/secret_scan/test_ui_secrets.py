"""Secret scan of the web page: a Secret block's value, a DatabaseCredentials
password and whole URL, and a password in an error message, saved and used in
runs; every route of the page and its JSON API is then read, and no answer, log
record or other output holds any form of any secret (see conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import quote

import pytest
from pydantic import SecretStr

from blocks import Block, DocumentStore
from emitters import flow_run, flush
from emitters.sql import SQLEventStore

pytest.importorskip("starlette")


class UiVault(Block):
    """Fails with its password in the message (the store gets it masked)."""

    password: SecretStr

    def open(self, key: str) -> str:
        if key == "denied":
            raise PermissionError(f"{self.password.get_secret_value()} was refused")
        return key


def test_ui_routes_leak_nothing(scan: Any, closed_port: int) -> None:
    """Every API route, the page and its assets: no form of any secret."""
    import httpx

    from blocks._ui import LOOPBACK_HOSTS, create_app
    from blocks.sql import DatabaseCredentials, SqlAlchemyConnector
    from blocks.system import Secret

    token = scan.add("ui-secret")
    password = scan.add("ui-vault-password")
    db_password = scan.add("ui-db-password")
    url_password = scan.add("ui-url-password")
    Secret(value=SecretStr(token)).save("ui-token")
    UiVault(password=SecretStr(password)).save("vault")
    DatabaseCredentials(
        driver="postgresql+psycopg",
        username="etl",
        password=db_password,
        host="127.0.0.1",
        port=closed_port,
        database="test",
    ).save("ui-db")
    DatabaseCredentials(
        url=f"postgresql+psycopg://etl:{quote(url_password, safe='')}"
        f"@127.0.0.1:{closed_port}/test"
    ).save("ui-url")
    with flow_run("ui-scan", labels={"team": "data"}):
        assert Secret.load("ui-token").get() == token
        vault = UiVault.load("vault")
        vault.open("a")
        with pytest.raises(PermissionError):
            vault.open("denied")
        for name in ("ui-db", "ui-url"):
            connector = SqlAlchemyConnector(credentials=DatabaseCredentials.load(name))
            # Nothing listens there: a failed call whose error names the server.
            with contextlib.suppress(Exception):
                connector.fetch_one("SELECT 1")
    flush(10)  # the down endpoint's spool waits; the home store has them all

    store = SQLEventStore(read_only=True)
    app = create_app(store, documents=DocumentStore(), allowed_hosts=LOOPBACK_HOSTS)
    answers: list[bytes] = []

    async def read_everything() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8642"
        ) as client:

            async def get(path: str) -> Any:
                response = await client.get(path)
                answers.append(f"GET {path} {response.status_code}\n".encode())
                answers.append(response.content)
                return response

            paths = ["/", "/static/app.js", "/api/blocks", "/api/runs?limit=500"]
            runs = (await get("/api/runs?limit=500")).json()["runs"]
            assert any(r["name"] == "ui-scan" for r in runs)
            for run in runs:
                paths += [f"/api/runs/{run['id']}", f"/api/runs/{run['id']}/timeline"]
                timeline = (await get(f"/api/runs/{run['id']}/timeline")).json()
                for call in timeline["calls"]:
                    paths.append(f"/api/events/{call['event_id']}")
                    if call["outcome_event_id"]:
                        paths.append(f"/api/events/{call['outcome_event_id']}")
            blocks = (await get("/api/blocks")).json()["blocks"]
            names = {b["block"] for b in blocks}
            assert {
                "secret/ui-token",
                "ui-vault/vault",
                "database-credentials/ui-db",
            } <= names
            paths += [f"/api/blocks/{b['block']}/runs" for b in blocks]
            paths += ["/api/runs/no-such-run", "/api/events/not-an-id", "/api/x"]
            for path in paths:
                await get(path)

    asyncio.run(read_everything())
    assert len(answers) > 40
    scan.outputs["web page and API answers"] = lambda: b"\n".join(answers)
    scan.assert_clean()
