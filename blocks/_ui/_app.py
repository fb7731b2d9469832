"""The ASGI application: the page, its assets, and the JSON API, read-only.

Only GET (and HEAD) are routed: any other method answers 405. Every response
carries a Content-Security-Policy that allows the page's own scripts, styles and
images alone (no inline script, no other origin, no framing), ``nosniff`` and no
referrer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from blocks._documents.store import DocumentStore
from blocks._ui._api import Api
from blocks._ui._json import json_response
from emitters.sql import SQLEventStore

__all__ = ["SECURITY_HEADERS", "STATIC", "create_app"]

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
    store: SQLEventStore, *, documents: DocumentStore | None = None
) -> Starlette:
    """Return the page and its JSON API over ``store``, as an ASGI application.

    Args:
        store: The event store to read. Open it with ``read_only=True`` so that
            nothing can be written; its tables are checked here.
        documents: The document store whose saved documents the blocks list
            shows (read without writing); None lists the blocks seen in events.

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
    return Starlette(
        routes=routes,
        middleware=[Middleware(_SecurityHeaders)],
        exception_handlers={
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
