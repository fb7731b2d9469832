"""``eventblocks ui``: the read-only web page over the event store, and its API.

It reads the store the other commands read (the home database, or
``EVENTBLOCKS_DATABASE_URL``) unless ``--database`` names another, opened
read-only. It listens on loopback unless ``--host`` says otherwise; the page has
no authentication, so any other host is warned about. Ctrl-C or SIGTERM stops it
cleanly (exit status 0). Needs the ``ui`` extra; the import is made only when the
command runs, so the rest of the command line works without it.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
import threading
import time
import webbrowser
from types import FrameType
from typing import Annotated, Any

import typer
from sqlalchemy.exc import SQLAlchemyError

from blocks._cli.errors import CommandError
from blocks._documents.store import DocumentStore
from emitters._sdk import database_url, mask_url
from emitters.sql import SQLEventStore

__all__ = ["serve_ui"]

DEFAULT_PORT = 8642


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _allowed_hosts(host: str, loopback: tuple[str, ...]) -> list[str] | None:
    """The names a request's Host may give: on loopback, ``loopback``'s names and
    the address listened on (against DNS rebinding); elsewhere any (warned)."""
    if not _is_loopback(host):
        return None
    bare = host.strip("[]").lower()
    listened = f"[{bare}]" if ":" in bare else bare
    return sorted({*loopback, listened})


def _listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket here, so that a taken port is one clear line."""
    try:
        infos = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise CommandError(f"Cannot listen on {host}: {exc.strerror}.") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise CommandError(
            f"Cannot listen on {host}:{port}: {reason}. Is another server on that "
            "port? Choose another with --port."
        ) from None
    sock.set_inheritable(True)
    return sock


def _page_url(host: str, port: int) -> str:
    shown = host.strip("[]")
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def _open_when_up(server: Any, url: str) -> None:
    """Open the page in a browser once the server accepts connections."""

    def wait_and_open() -> None:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            if server.should_exit:
                return
            time.sleep(0.05)
        if server.started:
            webbrowser.open(url)

    threading.Thread(
        target=wait_and_open, name="eventblocks-ui-open", daemon=True
    ).start()


def serve_ui(
    host: Annotated[
        str,
        typer.Option(
            "--host", help="The address to listen on; other than loopback, warned."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="The port to listen on.")
    ] = DEFAULT_PORT,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            metavar="URL",
            help="The event store's database URL (default: the home database).",
        ),
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the page in a browser once it is up.")
    ] = False,
) -> None:
    """Serve a read-only web page over the event store: runs, timelines, blocks."""
    try:
        import uvicorn

        from blocks._ui import LOOPBACK_HOSTS, create_app
    except ImportError as exc:
        raise CommandError(str(exc)) from None
    url = database if database is not None else database_url()
    store = SQLEventStore(url, read_only=True)
    allowed = _allowed_hosts(host, LOOPBACK_HOSTS)
    try:
        app = create_app(store, documents=DocumentStore(url), allowed_hosts=allowed)
    except SQLAlchemyError as exc:
        cause = type(getattr(exc, "orig", None) or exc).__name__
        raise CommandError(
            f"Cannot read events from {mask_url(url)} ({cause})."
        ) from None
    sock = _listen(host, port)
    page = _page_url(host, port)
    if not _is_loopback(host):
        sys.stderr.write(
            f"Warning: the page has no authentication: anyone who can reach "
            f"{host}:{port} can read the event store {mask_url(url)}.\n"
        )
    sys.stdout.write(
        f"Serving the event store {mask_url(url)} at {page} (Ctrl-C to stop).\n"
    )
    sys.stdout.flush()
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", server_header=False
    )
    server = uvicorn.Server(config)
    if open_browser:
        _open_when_up(server, page)
    stopped_by: list[int] = []

    def note(sig: int, _frame: FrameType | None) -> None:
        stopped_by.append(sig)

    # uvicorn stops gracefully on SIGINT and SIGTERM, then raises the signal again
    # once its own handlers are gone: these take it, so the command ends with 0.
    previous = {
        sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    sys.stdout.write("Stopped.\n")
