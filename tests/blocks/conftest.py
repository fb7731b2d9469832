"""Fixtures shared by the block tests: a local S3 endpoint, over HTTP or HTTPS,
AWS credentials for it with the machine's AWS settings hidden, an event store as
the only sink, and a local Kubernetes API."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import secrets
import sqlite3
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    # Imported by the fixtures that use them: collecting the block tests must
    # not load a connector or a sink.
    from blocks.aws import AwsCredentials
    from emitters.sql import SQLEventStore

# The machine's AWS settings, which a test must not pick up.
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """Run moto's threaded S3 server on 127.0.0.1 for this module."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def hidden_aws_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Hide the machine's AWS variables, files and metadata service; return the
    folder of the test's own (empty) ``aws-config`` and ``aws-creds`` files."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-creds"))
    # botocore would otherwise ask the instance metadata service for credentials.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


@pytest.fixture
def clean_aws(moto_url: str, hidden_aws_settings: Path) -> None:
    """Empty moto's server, and hide the machine's AWS settings."""
    httpx.post(f"{moto_url}/moto-api/reset").raise_for_status()


def _make_credentials(moto_url: str, **fields: Any) -> AwsCredentials:
    from blocks.aws import AwsClientParameters, AwsCredentials

    values: dict[str, Any] = {
        "aws_access_key_id": f"AKIA{secrets.token_hex(6).upper()}",
        "aws_secret_access_key": secrets.token_hex(16),
        "region_name": "us-east-1",
        "aws_client_parameters": AwsClientParameters(endpoint_url=moto_url),
    }
    values.update(fields)
    return AwsCredentials(**values)


@pytest.fixture
def make_credentials() -> Callable[..., AwsCredentials]:
    """``make_credentials(endpoint_url, **fields)``: credentials for a moto server
    with fresh secret values (``fields`` replace any of them)."""
    return _make_credentials


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLEventStore]:
    """An event store in a SQLite file, configured as the only sink."""
    from emitters import configure
    from emitters.sql import SQLEventStore

    events = SQLEventStore(f"sqlite:///{tmp_path / 'events.db'}")
    configure(emitters=[events])
    yield events
    configure(emitters=[])


@pytest.fixture
def stored_infra_events(eventblocks_home: Path) -> Callable[[], int]:
    """A function that counts the infrastructure events in the home database (0
    before there is one), for tests of the observers' commands."""

    def count() -> int:
        path = eventblocks_home / "eventblocks.db"
        if not path.exists():
            return 0
        with sqlite3.connect(path) as db:
            try:
                row = db.execute(
                    "SELECT count(*) FROM eventblocks_events WHERE event LIKE 'infra.%'"
                ).fetchone()
            except sqlite3.OperationalError:
                return 0
        return int(row[0])

    return count


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """Write a CA, and a certificate for 127.0.0.1 signed by it; return the CA's
    file, the certificate's and its key's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server-key.pem",
    )
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


@dataclass(frozen=True)
class TlsMoto:
    """moto over HTTPS: its URL and the CA file that signed its certificate."""

    url: str
    ca_file: Path


@pytest.fixture(scope="module")
def moto_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsMoto]:
    """Run moto on 127.0.0.1 over HTTPS, with a certificate of a CA of its own."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    ca_file, cert_file, key_file = _certificates(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = make_server(
        "127.0.0.1",
        0,
        DomainDispatcherApplication(create_backend_app),
        threaded=True,
        request_handler=MotoRequestHandler,
        ssl_context=context,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TlsMoto(
            url=f"https://127.0.0.1:{server.server_address[1]}", ca_file=ca_file
        )
    finally:
        server.shutdown()
        thread.join()


@dataclass
class FakeKubeApi:
    """A stand-in for a Kubernetes API server's pod list and watch endpoints.

    ``lists`` holds the PodList bodies the next list requests get; ``watches``
    the next watch requests' streams: each a list of watch events (dicts, sent
    as chunked JSON lines), where the string ``"drop"`` closes the connection
    mid-stream and ``"hang"`` keeps it open, silent, until ``release`` is set.
    A watch with nothing scripted ends at once, as a watch whose
    ``timeoutSeconds`` passed. ``requests`` records each request's path and
    query.
    """

    url: str
    lists: list[dict[str, object]]
    watches: list[list[object]]
    requests: list[tuple[str, dict[str, str]]]
    release: threading.Event

    def kubeconfig(self, token: str = "fake-token") -> str:
        """Return a kubeconfig naming this server, with a bearer token."""
        return (
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
            f"clusters:\n- name: test\n  cluster:\n    server: {self.url}\n"
            "contexts:\n- name: test\n  context:\n    cluster: test\n    user: u\n"
            f"users:\n- name: u\n  user:\n    token: {token}\n"
        )


@pytest.fixture
def kube_api() -> Iterator[FakeKubeApi]:
    """Serve FakeKubeApi on 127.0.0.1 (http.server in a thread)."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qsl, urlsplit

    api = FakeKubeApi("", [], [], [], threading.Event())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            api.requests.append((parts.path, query))
            if query.get("watch") == "true":
                self._stream(api.watches.pop(0) if api.watches else [])
                return
            body = json.dumps(
                api.lists.pop(0)
                if api.lists
                else {"kind": "PodList", "metadata": {"resourceVersion": "1"}}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stream(self, items: list[object]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for item in items:
                if item == "hang":
                    api.release.wait(30)
                    item = "drop"
                if item == "drop":
                    self.wfile.flush()
                    self.close_connection = True
                    return
                line = json.dumps(item).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.release.set()
        server.shutdown()
        server.server_close()
