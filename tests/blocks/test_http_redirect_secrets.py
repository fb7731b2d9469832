"""Per-call HTTP safety: header values checked before sending, and no secret
header, query value or credential sent to another origin after a redirect."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from blocks.http import BearerAuth, HttpEndpoint
from emitters.testing import capture_events


class Recorder(BaseHTTPRequestHandler):
    """Records each request's path and headers; /away redirects to the other server."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server: Any = self.server
        server.seen.append((self.path, dict(self.headers)))
        if self.path.startswith("/away"):
            self.send_response(302)
            self.send_header("Location", f"{server.other}/landed?page=2")
        elif self.path.startswith("/home"):
            self.send_response(302)
            self.send_header("Location", "/landed-home")
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


@pytest.fixture
def servers() -> Iterator[tuple[Any, Any]]:
    """Two real local servers on two ports: two origins."""
    made = []
    for _ in range(2):
        server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        server.seen = []
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        made.append(server)
    first, second = made
    first.other = f"http://127.0.0.1:{second.server_address[1]}"
    second.other = f"http://127.0.0.1:{first.server_address[1]}"
    yield first, second
    for server in made:
        server.shutdown()
        server.server_close()


def _endpoint(server: Any, token: str, key: str) -> HttpEndpoint:
    return HttpEndpoint(
        base_url=f"http://127.0.0.1:{server.server_address[1]}",
        auth=BearerAuth(token=token),
        headers={"X-Api-Key": key, "X-Trace": "plain"},
        params={"access_token": key, "page": "1"},
    )


def test_a_cross_origin_redirect_carries_no_secret(servers: tuple[Any, Any]) -> None:
    """The other server gets the redirect without Authorization, X-Api-Key or the
    secret query; the same origin keeps them."""
    first, second = servers
    token, key = f"tok{secrets.token_hex(8)}", f"key{secrets.token_hex(8)}"
    api = _endpoint(first, token, key)
    per_call = f"call{secrets.token_hex(8)}"
    response = api.get("away", headers={"X-Session-Id": per_call})
    assert response.status_code == 200
    assert response.url.port == second.server_address[1]
    path, headers = second.seen[-1]
    assert path.startswith("/landed")
    sent = repr((path, headers))
    for value in (token, key, per_call):
        assert value not in sent
    lowered = {name.lower() for name in headers}
    assert "authorization" not in lowered
    assert "x-api-key" not in lowered
    assert "x-session-id" not in lowered
    assert headers["X-Trace"] == "plain"
    # The first server, the endpoint's own origin, got everything.
    assert key in first.seen[0][1]["X-Api-Key"]
    # A same-origin redirect keeps the credentials.
    api.get("home")
    home_path, home_headers = first.seen[-1]
    assert home_path == "/landed-home"
    assert home_headers["X-Api-Key"] == key
    assert home_headers["Authorization"] == f"Bearer {token}"
    api.close()


def test_async_cross_origin_redirect_carries_no_secret(
    servers: tuple[Any, Any],
) -> None:
    """The async client strips the same headers."""
    first, second = servers
    token, key = f"tok{secrets.token_hex(8)}", f"key{secrets.token_hex(8)}"
    api = _endpoint(first, token, key)

    async def call() -> None:
        await api.aget("away")
        await api.aclose()

    asyncio.run(call())
    sent = repr(second.seen[-1])
    assert token not in sent
    assert key not in sent


def test_header_values_are_checked_before_sending(
    servers: tuple[Any, Any],
) -> None:
    """A token with a trailing newline fails clearly, without its value, unsent."""
    first, _ = servers
    token = f"tok{secrets.token_hex(8)}"
    api = HttpEndpoint(
        base_url=f"http://127.0.0.1:{first.server_address[1]}",
        auth=BearerAuth(token=token + "\n"),
    )
    with capture_events() as events, pytest.raises(ValueError, match="header") as info:
        api.get("x")
    message = str(info.value)
    assert "'Authorization'" in message
    assert "line break" in message
    assert token not in message
    assert first.seen == []  # nothing was sent
    assert token not in "\n".join(e.model_dump_json() for e in events)
    failed = [e for e in events if e.event.endswith(".failed")]
    assert failed
    api.close()
    clean = HttpEndpoint(base_url=f"http://127.0.0.1:{first.server_address[1]}")
    with pytest.raises(ValueError, match="'X-Custom'"):
        clean.get("x", headers={"X-Custom": " padded"})
    with pytest.raises(ValueError, match="'X-Key' contains a line break") as info:
        clean.get("x", headers={"X-Key": f"{token}\r\nInjected: 1"})
    assert token not in str(info.value)
    assert first.seen == []
    clean.close()


def test_httpx_alone_would_leak_the_api_key(servers: tuple[Any, Any]) -> None:
    """The finding this guards: plain httpx forwards X-Api-Key across origins."""
    first, second = servers
    key = f"key{secrets.token_hex(8)}"
    with httpx.Client(follow_redirects=True) as client:
        client.get(
            f"http://127.0.0.1:{first.server_address[1]}/away",
            headers={"X-Api-Key": key},
        )
    assert second.seen[-1][1].get("X-Api-Key") == key
