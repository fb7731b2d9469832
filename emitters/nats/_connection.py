"""What the NATS sink and the ingester share: server URLs, an event loop of their
own on a thread, and connecting.

``nats-py`` is an asyncio client. The sink is called on the pipeline's worker
thread, which has no event loop, so each sink owns one loop running on a daemon
thread and hands it coroutines; :meth:`LoopThread.close` stops it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client

from emitters._pipeline.delivery import throttle
from emitters._redact import redact_text, register_secret

__all__ = ["LoopThread", "check_servers", "connect", "display_servers"]

T = TypeVar("T")

_SCHEMES = ("nats", "tls", "ws", "wss")
_log = logging.getLogger("emitters.nats")


def check_servers(servers: object, what: str = "servers") -> list[str]:
    """Return the server URLs as a list; raise naming ``what`` if one is malformed.

    Passwords and tokens in the URLs are registered as secrets; messages never
    echo a URL.

    Raises:
        TypeError: ``servers`` is not a string or a sequence of strings.
        ValueError: A URL is not ``nats://``, ``tls://``, ``ws://`` or ``wss://``
            with a host, or there is none.
    """
    if isinstance(servers, str):
        urls = [part.strip() for part in servers.split(",") if part.strip()]
    elif isinstance(servers, Sequence) and all(isinstance(s, str) for s in servers):
        urls = [s.strip() for s in servers]
    else:
        raise TypeError(f"{what} must be a URL or a sequence of URLs")
    if not urls:
        raise ValueError(
            f"{what} must name at least one server, such as nats://HOST:4222"
        )
    for url in urls:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if parts is None or parts.scheme not in _SCHEMES or not parts.hostname:
            raise ValueError(
                f"{what} must be nats://HOST:PORT URLs (or tls://, ws://, wss://) "
                "with a host"
            )
        del port
        register_secret(parts.password, parts.username if not parts.password else None)
    return urls


def display_servers(urls: Sequence[str]) -> str:
    """Return the server URLs without user info (safe to show)."""
    shown = []
    for url in urls:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        shown.append(f"{parts.scheme}://{host}{port}")
    return ",".join(shown)


async def connect(
    servers: Sequence[str], *, timeout: float, reconnect_wait: float, name: str
) -> Client:
    """Connect to the first server that answers within ``timeout`` seconds.

    Once connected, the client reconnects by itself, without limit.

    Raises:
        ConnectionError: No server answered in time (the message has no secret).
    """
    client = Client()

    async def on_error(exc: Exception) -> None:
        throttle.warn(
            f"nats-error:{name}",
            "%s: NATS: %s",
            name,
            redact_text(f"{type(exc).__name__}: {exc}".rstrip(": ")),
        )

    async def quiet(*_: Any) -> None:
        return None

    try:
        await asyncio.wait_for(
            client.connect(
                servers=list(servers),
                name="eventblocks",
                connect_timeout=max(1, round(timeout)),
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=reconnect_wait,  # type: ignore[arg-type]
                error_cb=on_error,
                disconnected_cb=quiet,
                reconnected_cb=quiet,
                closed_cb=quiet,
            ),
            timeout,
        )
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        with contextlib.suppress(Exception):  # best effort: it never connected
            await asyncio.wait_for(client.close(), 1.0)
        reason = "no answer" if isinstance(exc, TimeoutError) else type(exc).__name__
        raise ConnectionError(
            f"cannot connect to NATS at {display_servers(servers)} "
            f"({reason} within {timeout:g}s)"
        ) from None
    return client


class LoopThread:
    """An asyncio event loop running on a daemon thread of its own.

    Args:
        name: The thread's name.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name=self._name, daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run ``coro`` on the loop and return its result.

        Raises:
            TimeoutError: It took longer than ``timeout`` seconds (it is cancelled).
        """
        future = asyncio.run_coroutine_threadsafe(coro, self._ensure())
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no result within {timeout}s") from None

    def close(self, last: Coroutine[Any, Any, object] | None, timeout: float) -> None:
        """Run ``last`` (a clean-up) if given, then stop the loop and its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            if last is not None:
                last.close()
            return
        if last is not None:
            future = asyncio.run_coroutine_threadsafe(last, loop)
            try:
                future.result(timeout)
            except Exception:  # closing: nothing is left to report to
                future.cancel()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
