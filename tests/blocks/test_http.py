"""HttpEndpoint and Webhook against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from blocks import BlockValidationError, DocumentStore, event_payload, is_instrumented
from blocks.http import BasicAuth, BearerAuth, HttpEndpoint, Webhook
from blocks.http._redact import request_secrets, scrub_exception
from emitters import Event
from emitters.testing import capture_events

MASK = "**********"
SHORT = 0.2  # a client timeout that the slow routes outlast


# -- the server ----------------------------------------------------------------------


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client_port: int


@dataclass
class Server:
    """A running test server: its base URL and the requests it received."""

    url: str
    port: int
    requests: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def last(self) -> Seen:
        """Return the last request received."""
        return self.requests[-1]


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out close early; their broken pipes are expected."""


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so that reuse is visible

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output clean."""

        def reply(
            self,
            status: int,
            body: bytes = b"",
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            split = urlsplit(self.path)
            server.requests.append(
                Seen(
                    self.command,
                    split.path,
                    parse_qs(split.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    self.client_address[1],
                )
            )
            parts = split.path.strip("/").split("/")
            route = parts[0]
            if split.path.endswith("/json"):
                payload = {"ok": True, "method": self.command}
                self.reply(
                    200,
                    json.dumps(payload).encode(),
                    {"Content-Type": "application/json"},
                )
            elif route == "redirect":
                left = int(parts[-1])
                if left == 0:
                    self.reply(200, b"arrived")
                else:
                    self.reply(302, b"", {"Location": f"/redirect/{left - 1}"})
            elif route == "status":
                status = int(parts[-1])
                headers = {"Retry-After": "3"} if status == 429 else {}
                self.reply(status, f"status {status}".encode(), headers)
            elif split.path == "/slow":
                self.send_response(200)
                self.send_header("Content-Length", "10")
                self.end_headers()
                self.wfile.write(b"x")
                self.wfile.flush()
                if not server.release.wait(5):
                    self.wfile.write(b"y" * 9)
            elif split.path == "/hang":
                server.release.wait(5)
            elif route == "hook":
                status = 500 if parts[-1] == "fail" else 200
                self.reply(status, b"ok" if status == 200 else b"no")
            else:
                self.reply(404, b"no such route")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    """Serve the test routes on 127.0.0.1 and record every request."""
    state = Server(url="", port=0)
    httpd = _Quiet(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    state.url = f"http://127.0.0.1:{state.port}"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def endpoint(server: Server) -> Iterator[HttpEndpoint]:
    """An HttpEndpoint on the test server, closed afterwards."""
    with HttpEndpoint(base_url=server.url) as http:
        yield http


@pytest.fixture
async def aendpoint(server: Server) -> AsyncIterator[HttpEndpoint]:
    """An HttpEndpoint for async tests, its async client closed afterwards."""
    async with HttpEndpoint(base_url=server.url) as http:
        yield http


def unused_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def outcome(events: list[Event]) -> Event:
    """Return the single outcome event of one call."""
    [event] = [e for e in events if not e.event.endswith(".started")]
    return event


def nowhere(value: str, events: list[Event]) -> bool:
    """True if ``value`` appears in no event's JSON."""
    return all(value not in e.model_dump_json() for e in events)


# -- calls and payloads ----------------------------------------------------------------


def test_get_returns_the_response_and_records_the_call(
    endpoint: HttpEndpoint, server: Server
) -> None:
    """get() returns the httpx response; its outcome carries the request's facts."""
    with capture_events() as events:
        response = endpoint.get("/json")
    assert response.json() == {"ok": True, "method": "GET"}
    assert [e.event for e in events] == [
        "block.http-endpoint.get.started",
        "block.http-endpoint.get.succeeded",
    ]
    payload = outcome(events).payload
    assert payload["method"] == "GET"
    assert payload["url"] == f"{server.url}/json"
    assert payload["status_code"] == 200
    assert payload["bytes_received"] == len(response.content)
    assert payload["bytes_sent"] == 0
    assert payload["redirects"] == 0
    assert payload["server.address"] == "127.0.0.1"
    assert payload["server.port"] == server.port


SYNC_METHODS = ["get", "post", "put", "patch", "delete"]


@pytest.mark.parametrize("name", SYNC_METHODS)
def test_each_method_sends_its_verb(
    name: str, endpoint: HttpEndpoint, server: Server
) -> None:
    """Each verb method sends that verb and emits events under its own name."""
    with capture_events() as events:
        response = getattr(endpoint, name)("/json")
    assert response.status_code == 200
    assert server.last().method == name.upper()
    assert [e.event for e in events] == [
        f"block.http-endpoint.{name}.started",
        f"block.http-endpoint.{name}.succeeded",
    ]
    assert outcome(events).payload["method"] == name.upper()


@pytest.mark.parametrize("name", SYNC_METHODS)
async def test_each_async_twin_sends_its_verb(
    name: str, aendpoint: HttpEndpoint, server: Server
) -> None:
    """Each async twin sends its verb and emits events under its own name."""
    with capture_events() as events:
        response = await getattr(aendpoint, f"a{name}")("/json")
    assert response.json() == {"ok": True, "method": name.upper()}
    assert [e.event for e in events] == [
        f"block.http-endpoint.a{name}.started",
        f"block.http-endpoint.a{name}.succeeded",
    ]
    payload = outcome(events).payload
    assert payload["method"] == name.upper()
    assert payload["status_code"] == 200
    assert payload["url"] == f"{server.url}/json"


def test_request_takes_any_method_and_records_only_the_outer_call(
    endpoint: HttpEndpoint, server: Server
) -> None:
    """request() takes the verb in any case; get() calling request() is one call."""
    with capture_events() as events:
        endpoint.request("post", "/json", json={"a": 1})
        endpoint.get("/json")
    assert server.requests[0].method == "POST"
    assert [e.event for e in events] == [
        "block.http-endpoint.request.started",
        "block.http-endpoint.request.succeeded",
        "block.http-endpoint.get.started",
        "block.http-endpoint.get.succeeded",
    ]
    assert events[1].payload["method"] == "POST"
    assert events[1].payload["bytes_sent"] == len(b'{"a":1}')


async def test_arequest_records_the_call(
    aendpoint: HttpEndpoint, server: Server
) -> None:
    """arequest() sends the verb and records method, status and URL."""
    with capture_events() as events:
        response = await aendpoint.arequest("PUT", "json", content=b"abc")
    assert response.status_code == 200
    assert server.last().body == b"abc"
    payload = outcome(events).payload
    assert outcome(events).event == "block.http-endpoint.arequest.succeeded"
    assert payload["method"] == "PUT"
    assert payload["bytes_sent"] == 3


def test_bodies_json_content_and_form(endpoint: HttpEndpoint, server: Server) -> None:
    """json=, content= and data= reach the server as JSON, raw bytes and a form."""
    endpoint.post("/json", json={"rows": [1, 2]})
    assert json.loads(server.last().body) == {"rows": [1, 2]}
    assert server.last().headers["content-type"] == "application/json"
    endpoint.put("/json", content="plain text")
    assert server.last().body == b"plain text"
    endpoint.patch("/json", data={"a": "1", "b": "two"})
    assert parse_qs(server.last().body.decode()) == {"a": ["1"], "b": ["two"]}


def test_paths_join_the_base_url_and_parameters_merge(server: Server) -> None:
    """Paths are appended to the base path; block, path and call parameters merge."""
    with (
        HttpEndpoint(
            base_url=f"{server.url}/v1/", params={"lang": "en", "page": "1"}
        ) as http,
        capture_events() as events,
    ):
        http.get("items/json?sort=asc", params={"page": "2"})
        http.get()
    first, second = server.requests
    assert first.path == "/v1/items/json"
    assert first.query == {"lang": ["en"], "page": ["2"], "sort": ["asc"]}
    assert second.path == "/v1/"
    url = events[1].payload["url"]
    assert url.startswith(f"{server.url}/v1/items/json?")
    assert "page=2" in url
    assert "sort=asc" in url


def test_the_event_url_follows_each_call_and_a_changed_endpoint(
    server: Server,
) -> None:
    """The URL an event shows is kept per endpoint, yet each call's event shows its
    own path and parameters, and a change to the endpoint's parameters or base URL
    shows at once; secret values stay masked."""
    token = secrets.token_hex(8)
    with (
        HttpEndpoint(base_url=f"{server.url}/v1", params={"token": token}) as http,
        capture_events() as events,
    ):
        http.get("json", params={"page": "1"})
        http.get("json", params={"page": "2"})
        http.get("json", params={"page": "1"})
        http.params["lang"] = "en"
        http.get("json", params={"page": "1"})
        http.base_url = f"{server.url}/v2"
        http.get("json", params={"page": [1, 2]})  # a value that cannot be a key
    urls = [e.payload["url"] for e in events if e.event.endswith(".succeeded")]
    assert urls == [
        f"{server.url}/v1/json?token={MASK}&page=1",
        f"{server.url}/v1/json?token={MASK}&page=2",
        f"{server.url}/v1/json?token={MASK}&page=1",
        f"{server.url}/v1/json?token={MASK}&lang=en&page=1",
        f"{server.url}/v2/json?token={MASK}&lang=en&page=1&page=2",
    ]
    assert nowhere(token, events)


def test_an_absolute_url_on_another_server_is_refused(
    endpoint: HttpEndpoint, server: Server
) -> None:
    """The block's headers and credentials are never sent to another server."""
    with capture_events() as events, pytest.raises(ValueError, match="calls http"):
        endpoint.get(f"http://localhost:{unused_port()}/json")
    assert server.requests == []
    assert outcome(events).payload["error"]["type"] == "ValueError"
    endpoint.get(f"{server.url}/json")  # the same origin, absolute, is fine
    assert server.last().path == "/json"


# -- statuses, redirects, timeouts -----------------------------------------------------


@pytest.mark.parametrize("status", [404, 429, 500])
def test_an_error_status_is_returned_by_default(
    status: int, endpoint: HttpEndpoint
) -> None:
    """Without raise_for_status a 4xx/5xx is a response and the call succeeded."""
    with capture_events() as events:
        response = endpoint.get(f"/status/{status}")
    assert response.status_code == status
    event = outcome(events)
    assert event.event == "block.http-endpoint.get.succeeded"
    assert event.payload["status_code"] == status
    assert event.payload["bytes_received"] == len(f"status {status}")
    if status == 429:
        assert event.payload["retry_after"] == "3"


@pytest.mark.parametrize("status", [429, 500])
def test_raise_for_status_raises_and_records_the_failure(
    status: int, endpoint: HttpEndpoint
) -> None:
    """raise_for_status=True raises HTTPStatusError; the event fails with that type."""
    with capture_events() as events, pytest.raises(httpx.HTTPStatusError) as caught:
        endpoint.get(f"/status/{status}", raise_for_status=True)
    assert caught.value.response.status_code == status
    event = outcome(events)
    assert event.event == "block.http-endpoint.get.failed"
    assert event.payload["error"] == {
        "type": "httpx.HTTPStatusError",
        "message": str(caught.value),
    }
    assert event.payload["status_code"] == status


async def test_async_raise_for_status(aendpoint: HttpEndpoint) -> None:
    """The async twins raise and record status errors the same way."""
    with capture_events() as events, pytest.raises(httpx.HTTPStatusError):
        await aendpoint.apost("/status/500", raise_for_status=True)
    assert outcome(events).payload["error"]["type"] == "httpx.HTTPStatusError"
    assert outcome(events).payload["status_code"] == 500


def test_redirects_are_followed_and_counted(
    endpoint: HttpEndpoint, server: Server
) -> None:
    """A 302 chain is followed; the payload counts it and keeps the first URL."""
    with capture_events() as events:
        response = endpoint.get("/redirect/2")
    assert response.text == "arrived"
    assert [r.path for r in server.requests] == [
        "/redirect/2",
        "/redirect/1",
        "/redirect/0",
    ]
    payload = outcome(events).payload
    assert payload["redirects"] == 2
    assert payload["status_code"] == 200
    assert payload["url"] == f"{server.url}/redirect/2"


def test_redirects_can_be_left_alone(server: Server) -> None:
    """follow_redirects=False returns the 302 itself, which is not an error."""
    http = HttpEndpoint(base_url=server.url, follow_redirects=False)
    with http, capture_events() as events:
        response = http.get("/redirect/1", raise_for_status=True)
    assert response.status_code == 302
    assert outcome(events).payload["redirects"] == 0


@pytest.mark.parametrize("path", ["/slow", "/hang"])
def test_a_timeout_fails_with_httpx_read_timeout(
    path: str, endpoint: HttpEndpoint
) -> None:
    """A slow body or a silent server past the timeout raises ReadTimeout."""
    with capture_events() as events, pytest.raises(httpx.ReadTimeout) as caught:
        endpoint.get(path, timeout=SHORT)
    event = outcome(events)
    assert event.event == "block.http-endpoint.get.failed"
    assert event.payload["error"] == {
        "type": "httpx.ReadTimeout",
        "message": str(caught.value),
    }
    assert "status_code" not in event.payload
    assert event.payload["url"].endswith(path)


def test_the_block_timeout_applies(server: Server) -> None:
    """The block's own timeout governs calls that give none."""
    http = HttpEndpoint(base_url=server.url, timeout=SHORT)
    with http, pytest.raises(httpx.ReadTimeout):
        http.get("/hang")


async def test_an_async_timeout_fails_with_read_timeout(
    aendpoint: HttpEndpoint,
) -> None:
    """The async twins time out with ReadTimeout and record it."""
    with capture_events() as events, pytest.raises(httpx.ReadTimeout):
        await aendpoint.aget("/slow", timeout=SHORT)
    assert outcome(events).payload["error"]["type"] == "httpx.ReadTimeout"


def test_a_refused_connection_fails_with_connect_error() -> None:
    """A refused connection raises ConnectError; the event records it and the URL."""
    port = unused_port()
    http = HttpEndpoint(base_url=f"http://127.0.0.1:{port}", retries=1)
    with http, capture_events() as events, pytest.raises(httpx.ConnectError) as caught:
        http.get("/json")
    event = outcome(events)
    assert event.event == "block.http-endpoint.get.failed"
    assert event.payload["error"] == {
        "type": "httpx.ConnectError",
        "message": str(caught.value),
    }
    assert event.payload["url"] == f"http://127.0.0.1:{port}/json"
    assert "status_code" not in event.payload


class ProbeEndpoint(HttpEndpoint):
    """An endpoint whose own method records the outcome its payload hook sees."""

    block_type_slug: ClassVar[str] = "probe-endpoint"
    seen: ClassVar[list[Any]] = []

    @event_payload(lambda args, outcome: ProbeEndpoint.seen.append(outcome))
    def fetch(self, path: str) -> httpx.Response:
        """Get ``path`` with a short timeout."""
        return self.get(path, timeout=SHORT)


def test_the_caller_gets_the_very_exception(server: Server) -> None:
    """The timeout the instrumentation recorded is the object the caller catches."""
    ProbeEndpoint.seen.clear()
    http = ProbeEndpoint(base_url=server.url)
    with http, capture_events() as events, pytest.raises(httpx.ReadTimeout) as caught:
        http.fetch("/hang")
    assert ProbeEndpoint.seen == [caught.value]
    assert ProbeEndpoint.seen[0] is caught.value
    assert [e.event for e in events] == [
        "block.probe-endpoint.fetch.started",
        "block.probe-endpoint.fetch.failed",
    ]


# -- secrets ---------------------------------------------------------------------------


def test_basic_auth_arrives_and_never_leaks(server: Server) -> None:
    """Basic credentials reach the server; no event, repr or error shows them."""
    password = secrets.token_hex(8)
    with (
        HttpEndpoint(
            base_url=server.url, auth=BasicAuth(username="etl", password=password)
        ) as http,
        capture_events() as events,
    ):
        http.get("/json")
        with pytest.raises(httpx.HTTPStatusError) as caught:
            http.get("/status/500", raise_for_status=True)
    expected = base64.b64encode(f"etl:{password}".encode()).decode()
    assert server.requests[0].headers["authorization"] == f"Basic {expected}"
    assert password not in repr(http)
    assert password not in http.model_dump_json()
    assert password not in str(caught.value)
    assert nowhere(password, events)
    assert nowhere(expected, events)


async def test_bearer_auth_arrives_and_never_leaks(server: Server) -> None:
    """The bearer token reaches the server, and no event, repr or error shows it."""
    token = secrets.token_hex(8)
    async with HttpEndpoint(
        base_url=server.url, auth={"kind": "bearer", "token": token}
    ) as http:
        assert isinstance(http.auth, BearerAuth)
        with capture_events() as events:
            await http.aget("/json")
            with pytest.raises(httpx.HTTPStatusError) as caught:
                await http.aget("/status/429", raise_for_status=True)
    assert server.requests[0].headers["authorization"] == f"Bearer {token}"
    assert token not in repr(http)
    assert token not in str(caught.value)
    assert nowhere(token, events)


def test_secret_headers_are_sent_and_masked(server: Server) -> None:
    """SecretStr headers and secret-named headers are sent, masked everywhere else."""
    key, custom, session = (secrets.token_hex(8) for _ in range(3))
    with (
        HttpEndpoint(
            base_url=server.url,
            headers={
                "X-Api-Key": key,
                "X-Custom": SecretStr(custom),
                "X-Session-Token": session,
                "Accept": "application/json",
            },
        ) as http,
        capture_events() as events,
    ):
        http.get("/json", headers={"X-Request-Id": "r-1"})
    seen = server.last().headers
    assert seen["x-api-key"] == key
    assert seen["x-custom"] == custom
    assert seen["x-session-token"] == session
    assert seen["accept"] == "application/json"
    assert seen["x-request-id"] == "r-1"
    assert isinstance(http.headers["X-Api-Key"], SecretStr)
    assert http.headers["Accept"] == "application/json"
    for value in (key, custom, session):
        assert value not in repr(http)
        assert nowhere(value, events)


def test_secret_query_parameters_are_masked_in_the_payload(
    endpoint: HttpEndpoint, server: Server
) -> None:
    """?token=...&page=2 reaches the server; the event keeps page=2, masks token."""
    token, key = secrets.token_hex(8), secrets.token_hex(8)
    with capture_events() as events:
        endpoint.get("/json", params={"token": token, "page": "2", "X-Api-Key": key})
    assert server.last().query["token"] == [token]
    url = outcome(events).payload["url"]
    assert url == f"{server.url}/json?token={MASK}&page=2&X-Api-Key={MASK}"
    assert nowhere(token, events)
    assert nowhere(key, events)


def test_user_info_and_secrets_in_an_absolute_url_are_masked(
    endpoint: HttpEndpoint, server: Server
) -> None:
    """User-info, api_key and sig of a same-origin absolute URL never reach events."""
    password, key, sig = (secrets.token_hex(8) for _ in range(3))
    target = (
        f"http://etl:{password}@127.0.0.1:{server.port}/json"
        f"?api_key={key}&Signature={sig}&x=1"
    )
    with capture_events() as events:
        endpoint.get(target)
    assert server.last().query["api_key"] == [key]
    assert outcome(events).payload["url"] == (
        f"http://{MASK}@127.0.0.1:{server.port}/json"
        f"?api_key={MASK}&Signature={MASK}&x=1"
    )
    for value in (password, key, sig):
        assert nowhere(value, events)


def test_a_status_error_message_masks_the_url_secrets(
    endpoint: HttpEndpoint,
) -> None:
    """The HTTPStatusError message shows the URL with its secret values masked."""
    token = secrets.token_hex(8)
    with capture_events() as events, pytest.raises(httpx.HTTPStatusError) as caught:
        endpoint.get(
            "/status/500",
            params={"access_token": token, "page": "3"},
            raise_for_status=True,
        )
    message = str(caught.value)
    assert token not in message
    assert f"access_token={MASK}" in message
    assert "500" in message
    assert nowhere(token, events)


def test_block_params_are_secret_by_name(server: Server) -> None:
    """A secret-named default parameter is a SecretStr, sent but never shown."""
    key = secrets.token_hex(8)
    with HttpEndpoint(base_url=server.url, params={"key": key}) as http:
        assert isinstance(http.params["key"], SecretStr)
        with capture_events() as events:
            http.get("/json")
    assert server.last().query == {"key": [key]}
    assert outcome(events).payload["url"] == f"{server.url}/json?key={MASK}"
    assert key not in repr(http)
    assert nowhere(key, events)


def test_a_connection_error_leaks_no_query_secret() -> None:
    """A refused connection's event carries the masked URL and no secret."""
    token = secrets.token_hex(8)
    http = HttpEndpoint(base_url=f"http://127.0.0.1:{unused_port()}")
    with http, capture_events() as events, pytest.raises(httpx.ConnectError) as caught:
        http.get("/x", params={"token": token})
    assert token not in str(caught.value)
    assert nowhere(token, events)
    assert f"token={MASK}" in outcome(events).payload["url"]


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("ftp://files.example.com", "http"),
        ("not a url", "http"),
        ("https://etl:{secret}@api.example.com", "BasicAuth"),
        ("https://api.example.com/?api_key={secret}", "api_key"),
    ],
)
def test_a_bad_base_url_is_refused_without_echoing_it(
    base_url: str, problem: str
) -> None:
    """Invalid base URLs fail validation, naming the problem but not the value."""
    secret = secrets.token_hex(8)
    with pytest.raises(BlockValidationError, match=problem) as caught:
        HttpEndpoint(base_url=base_url.format(secret=secret))
    assert secret not in str(caught.value)
    assert [field for field, _ in caught.value.errors] == ["base_url"]


def test_client_options_cannot_change_after_construction() -> None:
    """verify and retries shape the client, so they are frozen."""
    http = HttpEndpoint(base_url="https://api.example.com")
    with pytest.raises(BlockValidationError, match="frozen"):
        http.verify = False
    http.timeout = 3.0  # per request: free to change


# -- redaction helpers -----------------------------------------------------------------


def test_scrub_exception_masks_a_message_in_place() -> None:
    """A request's secrets are masked in an exception message; the object stays."""
    token = secrets.token_hex(8) + " /+"
    url = httpx.URL("https://api.example.com/x", params={"token": token})
    error = httpx.ConnectError(f"cannot reach {url} with {token}")
    scrub_exception(error, request_secrets(url, {"Authorization": "Bearer abc"}))
    assert token not in str(error)
    assert "token=" in str(error)
    assert MASK in str(error)
    assert str(httpx.QueryParams({"token": token})).split("=", 1)[1] not in str(error)
    clean = httpx.ConnectError("connection refused")
    scrub_exception(clean, [token])
    assert str(clean) == "connection refused"


# -- the client ------------------------------------------------------------------------


def test_one_client_is_reused_until_closed(server: Server) -> None:
    """Calls share one client and one connection; close() ends both."""
    http = HttpEndpoint(base_url=server.url)
    http.get("/json")
    client = http._clients.sync_client
    http.post("/json")
    assert http._clients.sync_client is client
    assert server.requests[0].client_port == server.requests[1].client_port
    with capture_events() as events:
        http.close()
    assert events == []
    assert client is not None
    assert client.is_closed
    assert not is_instrumented(http.close)
    http.get("/json")  # a new client, a new connection
    assert server.requests[2].client_port != server.requests[0].client_port
    http.close()


def test_the_context_manager_closes_the_client(server: Server) -> None:
    """Leaving a with block closes the client."""
    with HttpEndpoint(base_url=server.url) as http:
        http.get("/json")
        client = http._clients.sync_client
    assert client is not None
    assert client.is_closed


async def test_the_async_client_is_reused_until_aclose(server: Server) -> None:
    """Async calls share one AsyncClient and connection; aclose() closes it."""
    http = HttpEndpoint(base_url=server.url)
    await http.aget("/json")
    await http.aget("/json")
    assert server.requests[0].client_port == server.requests[1].client_port
    client = http._clients._async
    with capture_events() as events:
        await http.aclose()
    assert events == []
    assert client is not None
    assert client.is_closed


# -- documents -------------------------------------------------------------------------


def test_an_endpoint_saves_and_loads_and_still_works(
    server: Server, tmp_path: Path
) -> None:
    """A saved endpoint loads with its secrets intact and calls the server."""
    store = DocumentStore(f"sqlite:///{tmp_path}/s.db")
    token, key = secrets.token_hex(8), secrets.token_hex(8)
    HttpEndpoint(
        base_url=f"{server.url}/v1",
        headers={"X-Api-Key": key, "Accept": "application/json"},
        auth=BearerAuth(token=token),
        timeout=5,
    ).save("api", store=store)
    with HttpEndpoint.load("api", store=store) as http, capture_events() as events:
        http.get("json")
    assert isinstance(http.auth, BearerAuth)
    assert isinstance(http.headers["X-Api-Key"], SecretStr)
    seen = server.last()
    assert seen.path == "/v1/json"
    assert seen.headers["authorization"] == f"Bearer {token}"
    assert seen.headers["x-api-key"] == key
    assert events[0].resource.id == f"block-document.{http.document_id}"
    assert nowhere(token, events)
    assert nowhere(key, events)
    HttpEndpoint.delete("api", store=store)  # on the class: the document
    assert HttpEndpoint.list_documents(store=store) == []


# -- webhooks --------------------------------------------------------------------------


@pytest.fixture
def hook_url(server: Server) -> str:
    """A webhook URL on the test server whose path is a secret."""
    return f"{server.url}/hook/{secrets.token_hex(8)}"


def test_a_slack_style_notification_arrives_exactly(
    hook_url: str, server: Server
) -> None:
    """notify({"text": ...}) POSTs exactly that JSON; the event names the host only."""
    hook = Webhook(url=hook_url)
    with capture_events() as events:
        response = hook.notify({"text": 'Flow "etl" failed\nsee logs'})
    assert response.status_code == 200
    seen = server.last()
    assert seen.method == "POST"
    assert json.loads(seen.body) == {"text": 'Flow "etl" failed\nsee logs'}
    assert seen.headers["content-type"] == "application/json"
    event = outcome(events)
    assert event.event == "block.webhook.notify.succeeded"
    assert event.payload["method"] == "POST"
    assert event.payload["status_code"] == 200
    assert event.payload["bytes_sent"] == len(seen.body)
    assert event.payload["server.address"] == "127.0.0.1"
    assert "url" not in event.payload
    assert nowhere(urlsplit(hook_url).path, events)
    assert hook_url not in repr(hook)


def test_a_json_template_is_filled_with_escaped_values(
    hook_url: str, server: Server
) -> None:
    """A JSON template's placeholders are filled as JSON: quotes and numbers hold."""
    hook = Webhook(
        url=hook_url,
        method="put",
        headers={"X-Source": "eventblocks"},
        template='{"text": "Flow $flow failed: ${reason}", "count": "$count"}',
    )
    hook.notify({"flow": "etl", "reason": 'key "x" missing', "count": 3})
    seen = server.last()
    assert seen.method == "PUT"
    assert seen.headers["x-source"] == "eventblocks"
    assert json.loads(seen.body) == {
        "text": 'Flow etl failed: key "x" missing',
        "count": 3,
    }


def test_a_text_template_is_sent_as_text(hook_url: str, server: Server) -> None:
    """A template that is not JSON is filled and sent as plain text."""
    hook = Webhook(url=hook_url, template="Flow $flow failed at $step.")
    hook.notify({"flow": "etl", "step": "load"})
    assert server.last().body == b"Flow etl failed at load."
    assert server.last().headers["content-type"].startswith("text/plain")


def test_a_body_without_template_is_json_or_text(hook_url: str, server: Server) -> None:
    """Without a template a mapping goes as JSON and a string as text."""
    hook = Webhook(url=hook_url)
    hook.notify("plain words")
    assert server.last().body == b"plain words"
    assert server.last().headers["content-type"].startswith("text/plain")


def test_a_missing_template_value_fails_the_call(hook_url: str, server: Server) -> None:
    """A placeholder the body does not fill is a ValueError naming it; nothing sent."""
    hook = Webhook(url=hook_url, template='{"text": "$text"}')
    with capture_events() as events, pytest.raises(ValueError, match=r"\$text"):
        hook.notify({"other": 1})
    assert server.requests == []
    assert outcome(events).payload["error"]["type"] == "ValueError"


def test_a_failed_notification_raises_by_default(server: Server) -> None:
    """A 500 raises HTTPStatusError naming the host only; the event fails."""
    secret_part = secrets.token_hex(8)
    hook = Webhook(url=f"{server.url}/hook/{secret_part}/fail")
    with capture_events() as events, pytest.raises(httpx.HTTPStatusError) as caught:
        hook.notify({"text": "hello"})
    assert secret_part not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)
    event = outcome(events)
    assert event.event == "block.webhook.notify.failed"
    assert event.payload["error"]["type"] == "httpx.HTTPStatusError"
    assert event.payload["status_code"] == 500
    assert nowhere(secret_part, events)
    response = hook.notify({"text": "hello"}, raise_for_status=False)
    assert response.status_code == 500


def test_an_unreachable_webhook_leaks_no_url() -> None:
    """A refused connection fails with ConnectError and no trace of the URL."""
    secret_part = secrets.token_hex(8)
    hook = Webhook(url=f"http://127.0.0.1:{unused_port()}/hook/{secret_part}")
    with capture_events() as events, pytest.raises(httpx.ConnectError) as caught:
        hook.notify({"text": "hello"})
    assert secret_part not in str(caught.value)
    assert nowhere(secret_part, events)
    assert outcome(events).payload["error"]["type"] == "httpx.ConnectError"


async def test_anotify_sends_the_notification(hook_url: str, server: Server) -> None:
    """anotify() sends like notify() and records its own events."""
    token = secrets.token_hex(8)
    hook = Webhook(url=hook_url, headers={"Authorization": f"Bearer {token}"})
    with capture_events() as events:
        response = await hook.anotify({"text": "async hello"})
    assert response.status_code == 200
    assert json.loads(server.last().body) == {"text": "async hello"}
    assert server.last().headers["authorization"] == f"Bearer {token}"
    assert [e.event for e in events] == [
        "block.webhook.anotify.started",
        "block.webhook.anotify.succeeded",
    ]
    assert nowhere(token, events)
    assert token not in repr(hook)


def test_a_webhook_saves_and_loads_and_still_works(
    hook_url: str, server: Server, tmp_path: Path
) -> None:
    """A saved webhook loads with its secret URL and template, and notifies."""
    store = DocumentStore(f"sqlite:///{tmp_path}/s.db")
    Webhook(url=hook_url, template='{"text": "$text"}').save("alerts", store=store)
    hook = Webhook.load("alerts", store=store)
    assert hook.url.get_secret_value() == hook_url
    hook.notify({"text": "from a loaded webhook"})
    assert json.loads(server.last().body) == {"text": "from a loaded webhook"}


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "https://hooks.example.com/x", "method": "PO ST"}, "method"),
    ],
)
def test_a_bad_webhook_is_refused(fields: dict[str, Any], field_name: str) -> None:
    """A non-HTTP URL or a malformed method fails validation on that field."""
    with pytest.raises(BlockValidationError) as caught:
        Webhook(**fields)
    assert [f for f, _ in caught.value.errors] == [field_name]
    assert "hooks.example.com" not in str(caught.value)


def test_a_secret_header_under_an_ordinary_name_stays_secret_after_load(
    tmp_path: Path,
) -> None:
    """A SecretStr header the name rule does not know is a SecretStr when loaded."""
    value = f"hv-{secrets.token_hex(8)}"
    store = DocumentStore(f"sqlite:///{tmp_path / 'headers.db'}")
    HttpEndpoint(
        base_url="http://127.0.0.1:9", headers={"X-Plain-Name": SecretStr(value)}
    ).save("plain-name-secret", store=store)

    loaded = HttpEndpoint.load("plain-name-secret", store=store)

    header = loaded.headers["X-Plain-Name"]
    assert isinstance(header, SecretStr)
    assert header.get_secret_value() == value
    assert value not in repr(loaded)
