"""The ASGI application: the page, its assets, and the JSON API, read-only.

Only GET (and HEAD) are answered: any other method, on any path, is 405. Every
response carries a Content-Security-Policy that allows the page's own scripts,
styles and images alone (no inline script, no other origin, no framing),
``nosniff`` and no referrer. Given ``allowed_hosts``, a request whose ``Host``
names another host is 400 (what the command line does on loopback, against DNS
rebinding).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from blocks._documents.store import DocumentStore
from blocks._ui._api import Api
from blocks._ui._json import json_response
from emitters.sql import SQLEventStore

__all__ = ["LOOPBACK_HOSTS", "SECURITY_HEADERS", "STATIC", "create_app"]

STATIC = Path(__file__).resolve().parent / "static"
"""The page's assets, shipped in the wheel."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
"""Headers set on every response."""

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
"""The host names a page served on loopback answers to (any port)."""

_READ_METHODS = frozenset({"GET", "HEAD"})

_RAW_HEADERS = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


class _SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _RAW_HEADERS if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _ReadOnly:
    """Answers 405 to any method but GET and HEAD, whatever the path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in _READ_METHODS:
            response = _http_error(
                Request(scope), HTTPException(405, headers={"Allow": "GET, HEAD"})
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _http_error(request: Request, exc: Exception) -> Response:
    """A routing error (404, 405): JSON under ``/api/``, text elsewhere."""
    assert isinstance(exc, HTTPException)
    response: Response
    if request.url.path.startswith("/api/"):
        response = json_response({"error": exc.detail}, exc.status_code)
    else:
        response = PlainTextResponse(exc.detail, exc.status_code)
    for name, value in (exc.headers or {}).items():  # Allow, on a 405
        response.headers[name] = value
    return response


def _server_error(request: Request, exc: Exception) -> Response:
    message = "The server failed to answer; its log says why."
    if request.url.path.startswith("/api/"):
        return json_response({"error": message}, 500)
    return PlainTextResponse(message, 500)


def create_app(
    store: SQLEventStore,
    *,
    documents: DocumentStore | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """Return the page and its JSON API over ``store``, as an ASGI application.

    Args:
        store: The event store to read. Open it with ``read_only=True`` so that
            nothing can be written; its tables are checked here.
        documents: The document store whose saved documents the blocks list
            shows (read without writing); None lists the blocks seen in events.
        allowed_hosts: The host names (``[::1]`` for an IPv6 address, any port)
            requests may name in their ``Host`` header; others are refused with
            400, so that a web site whose name resolves to this machine cannot
            read the page. None accepts any (the page is served on a network
            address, with its warning); :data:`LOOPBACK_HOSTS` on loopback.

    Raises:
        LookupError: ``store`` holds no event store this version can read.
    """
    store.engine  # noqa: B018  (a store without event tables fails here, at start)
    api = Api(store, documents)

    def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    def get(path: str, answer: Any) -> Route:
        return Route(path, api.handler(answer), methods=["GET"])

    routes = [
        Route("/", index, methods=["GET"]),
        get("/api/runs", api.runs),
        get("/api/runs/{ref:path}/timeline", api.timeline),
        get("/api/runs/{ref:path}", api.run),
        get("/api/events/{event_id}", api.event),
        get("/api/blocks", api.blocks),
        get("/api/blocks/{slug}/runs", api.block_runs),
        get("/api/blocks/{slug}/{name:path}/runs", api.block_runs),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(_SecurityHeaders)]
    if allowed_hosts is not None:
        middleware.append(
            Middleware(
                TrustedHostMiddleware,
                allowed_hosts=list(allowed_hosts),
                www_redirect=False,
            )
        )
    middleware.append(Middleware(_ReadOnly))
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
