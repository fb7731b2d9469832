"""Secret scan of the ways a secret can reach a block and leave it: every way a
block comes into being, validation errors, transformed forms of a secret, and the
names, ids and run labels given to ``emit_event``; zero hits (see conftest.py)."""

from __future__ import annotations

import base64
import copy
import gc
import json
import pickle
from typing import Any

from pydantic import BaseModel, SecretStr

from blocks import Block, BlockValidationError
from emitters import Resource, emit_event, flow_run


class ScanLogin(BaseModel):
    """A plain model nested in a block."""

    user: str = "etl"
    password: SecretStr | None = None


class ScanService(Block):
    """A block that puts its secrets into payloads and error messages."""

    token: SecretStr
    login: ScanLogin = ScanLogin()

    def leak(self) -> dict[str, str]:
        secret = self.token.get_secret_value()
        nested = self.login.password
        inner = nested.get_secret_value() if nested is not None else ""
        return {"token": secret, "inner": inner}

    def fail(self) -> None:
        secret = self.token.get_secret_value()
        raise RuntimeError(f"refused {secret} and {self.login.password!s}")


class ScanForms(Block):
    """A block that shows its secret in transformed forms."""

    token: SecretStr

    def forms(self) -> None:
        secret = self.token.get_secret_value()
        basic = base64.b64encode(f"etl:{secret}".encode()).decode()
        raise ValueError(
            f"upper {secret.upper()} json {json.dumps(secret)} "
            f"bytes {secret.encode()!r} basic Basic {basic} "
            f"b64 {base64.b64encode(secret.encode()).decode()} "
            f"wrapped {secret[:10]}\n    {secret[10:]}"
        )


def _use(block: ScanService) -> None:
    block.leak()
    try:
        block.fail()
    except RuntimeError as exc:
        del exc


def test_every_way_a_block_comes_into_being_leaks_nothing(scan: Any) -> None:
    """Constructor, validate, validate_json, construct, copy, unpickle, nested
    assignment and load: each block's calls carry no secret anywhere."""
    made = {
        "validate": lambda v: ScanService.model_validate({"token": v}),
        "validate-json": lambda v: ScanService.model_validate_json(
            json.dumps({"token": v})
        ),
        "construct": lambda v: ScanService.model_construct(token=SecretStr(v)),
        "copy-update": lambda v: ScanService(
            token=SecretStr(scan.add("copy-base"))
        ).model_copy(update={"token": SecretStr(v)}),
        "deepcopy": lambda v: copy.deepcopy(ScanService(token=SecretStr(v))),
    }
    with flow_run("paths"):
        for label, make in made.items():
            _use(make(scan.add(label)))
        pickled = pickle.dumps(ScanService(token=SecretStr(scan.add("pickled"))))
        gc.collect()
        _use(pickle.loads(pickled))
        nested = ScanService(token=SecretStr(scan.add("nested-root")))
        nested.login.password = SecretStr(scan.add("nested-password"))
        _use(nested)
        ScanService(token=SecretStr(scan.add("loaded"))).save("scan-loaded")
        gc.collect()
        _use(ScanService.load("scan-loaded"))
    scan.assert_clean()


def test_validation_errors_quote_no_input(scan: Any) -> None:
    """Failing model_validate, model_validate_json and model_validate_strings."""
    texts: list[str] = []
    secret = scan.add("invalid-input")
    for call in (
        lambda: ScanService.model_validate({"token": secret, "login": secret}),
        lambda: ScanService.model_validate_json(
            json.dumps({"token": secret, "login": secret})
        ),
        lambda: ScanService.model_validate_json('{"token": "' + secret),
        lambda: ScanService.model_validate_strings({"token": secret, "login": secret}),
    ):
        try:
            call()
        except BlockValidationError as exc:
            texts.append(str(exc))
    assert len(texts) == 4
    ScanService(token=SecretStr(scan.add("valid"))).leak()  # the sinks have events
    scan.outputs["validation errors"] = lambda: "\n".join(texts).encode()
    scan.assert_clean()


def test_transformed_forms_are_masked_everywhere(scan: Any) -> None:
    """Upper case, JSON, bytes repr, base64 (alone and in Basic), wrapped lines."""
    block = ScanForms(token=SecretStr(scan.add("forms")))
    with flow_run("forms"):
        try:
            block.forms()
        except ValueError as exc:
            del exc
    scan.assert_clean()


def test_emit_event_names_ids_and_run_labels_are_masked(scan: Any) -> None:
    """A registered secret in an event name, resource id and run labels."""
    secret = scan.add("emit-secret", plain=True)
    holder = ScanService(token=SecretStr(secret))
    with flow_run("labels", labels={"key": secret}):
        emit_event(
            f"custom.{secret}",
            Resource(id=f"thing.{secret}", name=secret, labels={"k": secret}),
        )
        holder.leak()
    scan.assert_clean()


def test_database_query_passwords_leak_nothing(
    scan: Any, postgres: Any, closed_port: int
) -> None:
    """A password in the query (parts and whole URL): saved, loaded, used, shown."""
    from blocks import DocumentStore
    from blocks.sql import DatabaseCredentials, SqlAlchemyConnector

    query_password = scan.add("query-password")
    url_password = scan.add("url-query-password", plain=True)
    credentials = DatabaseCredentials(
        driver="postgresql+psycopg",
        username=postgres.username,
        host=postgres.host,
        port=postgres.port or 5432,
        database=postgres.database,
        query={"password": query_password, "application_name": "scan"},
    )
    SqlAlchemyConnector(credentials=credentials).save("pg-query")
    shown: list[str] = []
    with flow_run("query-password"):
        with SqlAlchemyConnector.load("pg-query") as db:
            db.fetch_one("SELECT 1")
            shown += [repr(db), str(db.credentials.rendered_url)]
        down = DatabaseCredentials(
            url=f"postgresql+psycopg://etl@127.0.0.1:{closed_port}/db"
            f"?password={url_password}"
        )
        shown += [repr(down), down.rendered_url]
        try:
            SqlAlchemyConnector(credentials=down).fetch_one("SELECT 1")
        except Exception as exc:
            shown.append(str(exc))
        store = DocumentStore(
            f"postgresql+psycopg://etl@127.0.0.1:{closed_port}/db"
            f"?password={url_password}"
        )
        shown.append(repr(store))
        try:
            store.list_documents()
        except Exception as exc:
            shown.append(str(exc))
    scan.outputs["shown"] = lambda: "\n".join(shown).encode()
    scan.assert_clean()


def test_library_logs_leak_nothing(scan: Any, postgres: Any) -> None:
    """SQL text with a secret at DEBUG, and a redirect's Location in httpcore's log."""
    import secrets as random_names
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import quote

    from blocks.http import HttpEndpoint
    from blocks.sql import DatabaseCredentials, SqlAlchemyConnector
    from blocks.system import Secret

    role_password = scan.add("role-password")
    api_key = scan.add("redirect-api-key")
    holder = Secret(value=role_password)
    role = f"scan_role_{random_names.token_hex(4)}"
    credentials = DatabaseCredentials(
        driver="postgresql+psycopg",
        username=postgres.username,
        host=postgres.host,
        port=postgres.port or 5432,
        database=postgres.database,
    )

    class Redirects(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/start"):
                self.send_response(302)
                self.send_header("Location", f"/next?api_key={quote(api_key, safe='')}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Stay quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirects)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with flow_run("library-logs"):
            with SqlAlchemyConnector(credentials=credentials) as db:
                db.execute(f"CREATE ROLE {role} PASSWORD '{role_password}'")
                db.execute(f"DROP ROLE {role}")
            endpoint = HttpEndpoint(
                base_url=f"http://127.0.0.1:{server.server_address[1]}",
                headers={"X-Api-Key": api_key},
            )
            endpoint.get("start")
            endpoint.close()
    finally:
        server.shutdown()
        server.server_close()
    assert holder.get() == role_password
    scan.assert_clean()


def test_unsendable_header_values_leak_nothing(
    scan: Any, receiver: tuple[str, list[bytes]]
) -> None:
    """A bearer token with a trailing newline (as read from a file), and a per-call
    header value with a line break: refused before sending, named, never shown."""
    from blocks.http import BearerAuth, HttpEndpoint

    base, _ = receiver
    token = scan.add("newline-token")
    header = scan.add("newline-header")
    shown: list[str] = []
    with flow_run("headers"):
        api = HttpEndpoint(base_url=f"{base}/v1", auth=BearerAuth(token=token + "\n"))
        plain = HttpEndpoint(base_url=f"{base}/v1")
        for call in (
            lambda: api.get("orders"),
            lambda: plain.get("orders", headers={"X-Api-Key": header + "\n"}),
        ):
            try:
                call()
            except ValueError as exc:
                shown.append(str(exc))
        api.close()
        plain.close()
    assert len(shown) == 2
    scan.outputs["exceptions"] = lambda: "\n".join(shown).encode()
    scan.assert_clean()
