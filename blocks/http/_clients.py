"""The httpx clients of one HTTP block: made on first use, reused, closed together."""

from __future__ import annotations

import asyncio
import functools
import ssl
import threading
import weakref
from typing import Any

import httpx

from emitters._sdk import is_secret_name, origin, protect_logger

__all__ = ["ClientPair", "guard_redirects", "ssl_context"]

# httpx logs every request's URL at INFO: mask the secrets in it.
protect_logger("httpx")


@functools.cache
def ssl_context(verify: bool) -> ssl.SSLContext:
    """Return the process's TLS context for ``verify``, made once.

    Making one loads the CA bundle, about 50 ms; clients made afterwards (a
    webhook's per notification, an endpoint's after ``close()``) share it.
    """
    return httpx.create_ssl_context(verify=verify)


Origin = tuple[str, str, int | None]


def _strip_for_other_origin(request: httpx.Request, home: Origin) -> None:
    """Remove secret headers and query values from a request to another origin.

    httpx drops ``Authorization`` (and cookies) when a redirect leaves the origin,
    but keeps every other header: an ``X-Api-Key`` would reach the other server.
    """
    if origin(request.url) == home:
        return
    for name in [n for n in request.headers if is_secret_name(n)]:
        del request.headers[name]
    secret = [n for n in request.url.params if is_secret_name(n)]
    if secret:
        params = request.url.params
        for name in secret:
            params = params.remove(name)
        request.url = request.url.copy_with(params=params)


def guard_redirects(
    home: Origin,
) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """Return the sync and async event hooks that keep secrets on ``home``."""

    def sync_hook(request: httpx.Request) -> None:
        _strip_for_other_origin(request, home)

    async def async_hook(request: httpx.Request) -> None:
        _strip_for_other_origin(request, home)

    return {"request": [sync_hook]}, {"request": [async_hook]}


class ClientPair:
    """One ``httpx.Client`` and one ``httpx.AsyncClient``, each made when first needed.

    The sync client serves every thread. The async client belongs to the event loop
    that first used it; a call from another loop (a second ``asyncio.run``) gets a
    new one, because httpx connections cannot move between loops. A copy of the
    holder starts empty, so copies of a block never share or close each other's
    connections.
    """

    __slots__ = ("_async", "_async_loop", "_lock", "_sync")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sync: httpx.Client | None = None
        self._async: httpx.AsyncClient | None = None
        self._async_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def __copy__(self) -> ClientPair:
        return ClientPair()

    def __deepcopy__(self, memo: dict[int, Any]) -> ClientPair:
        return ClientPair()

    def __reduce__(self) -> tuple[type[ClientPair], tuple[()]]:
        return ClientPair, ()

    @property
    def sync_client(self) -> httpx.Client | None:
        """The current sync client, if one was made and not closed."""
        client = self._sync
        return client if client is not None and not client.is_closed else None

    def sync(
        self, *, verify: bool, retries: int, home: Origin | None = None
    ) -> httpx.Client:
        """Return the sync client, making it on first use."""
        client = self._sync
        if client is not None and not client.is_closed:
            return client
        with self._lock:
            client = self._sync
            if client is None or client.is_closed:
                transport = httpx.HTTPTransport(
                    verify=ssl_context(verify), retries=retries
                )
                hooks = guard_redirects(home)[0] if home is not None else None
                client = httpx.Client(transport=transport, event_hooks=hooks)
                self._sync = client
            return client

    def asynchronous(
        self, *, verify: bool, retries: int, home: Origin | None = None
    ) -> httpx.AsyncClient:
        """Return the async client of the running event loop, making it if needed."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async
            owner = self._async_loop() if self._async_loop is not None else None
            if client is not None and not client.is_closed and owner is loop:
                return client
            # A client left by another loop cannot be closed from this one.
            transport = httpx.AsyncHTTPTransport(
                verify=ssl_context(verify), retries=retries
            )
            hooks = guard_redirects(home)[1] if home is not None else None
            client = httpx.AsyncClient(transport=transport, event_hooks=hooks)
            self._async, self._async_loop = client, weakref.ref(loop)
            return client

    def close(self) -> None:
        """Close the sync client; the next call makes a new one."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async client of this loop and the sync client."""
        with self._lock:
            client, self._async, self._async_loop = self._async, None, None
        if client is not None:
            await client.aclose()
        self.close()
