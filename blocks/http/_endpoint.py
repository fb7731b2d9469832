"""The ``HttpEndpoint`` block: an HTTP API called through one reused httpx client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

import httpx
from pydantic import ConfigDict, Field, PrivateAttr, field_validator

from blocks._block import Block
from blocks._instrument import event_payload, no_events
from blocks.http._clients import ClientPair
from blocks.http._redact import request_secrets, scrub_exception
from blocks.http._request import (
    Auth,
    DeleteMethod,
    HeaderValue,
    check_header_values,
    http_delete,
    http_url,
    request_payload,
    reveal,
    secret_by_name,
    status_error,
)
from emitters._sdk import is_secret_name, origin, redact_url

__all__ = ["HttpEndpoint"]

_EVENT_URLS_KEPT = 256


class HttpEndpoint(Block):
    """An HTTP API: base URL, headers, authentication, timeout, retries, TLS.

    Every request method returns the ``httpx.Response``; an error status (4xx,
    5xx) raises ``httpx.HTTPStatusError`` only with ``raise_for_status=True``.
    Either way the outcome event records ``method``, ``url`` (user-info and secret
    query values masked), ``status_code``, ``bytes_sent``, ``bytes_received``,
    ``redirects``, ``server.address`` and ``server.port``.

    Secret: ``auth``; header and parameter values given as ``SecretStr``; and the
    values of headers and parameters whose names carry secrets (``Authorization``,
    ``Cookie``, ``X-Api-Key``, ``api_key``, names with ``token``, ``secret``,
    ``password``, ``signature``, or a word ending in ``key``), which become
    ``SecretStr`` automatically.

    One ``httpx.Client`` per block, made on first use and shared by every thread,
    and one ``httpx.AsyncClient`` per event loop; ``close()``/``aclose()``, or
    ``with``/``async with``, closes them.

    Attributes:
        base_url: The API's root; paths are appended to it.
        headers: Sent with every request.
        params: Query parameters sent with every request.
        auth: ``BasicAuth`` or ``BearerAuth``, or None.
        timeout: Seconds for each phase (connect, write, read, pool wait).
        retries: Retries of a connection that failed to open (not of statuses).
        verify: Check the server's TLS certificate.
        follow_redirects: Follow 3xx responses (the events count them).
    """

    model_config = ConfigDict(ignored_types=(DeleteMethod,))

    block_type_slug: ClassVar[str] = "http-endpoint"

    base_url: str
    headers: dict[str, HeaderValue] = Field(default_factory=dict)
    params: dict[str, HeaderValue] = Field(default_factory=dict)
    auth: Auth | None = None
    timeout: float = Field(default=10.0, gt=0)
    retries: int = Field(default=0, ge=0, frozen=True)
    verify: bool = Field(default=True, frozen=True)
    follow_redirects: bool = True

    _clients: ClientPair = PrivateAttr(default_factory=ClientPair)
    # The URLs of calls as their events show them (see _event_url).
    _event_urls: dict[Any, tuple[Any, tuple[str, str, int | None]]] = PrivateAttr(
        default_factory=dict
    )

    @field_validator("base_url")
    @classmethod
    def _valid_base_url(cls, value: str) -> str:
        url = http_url(value)
        if url.userinfo:
            raise ValueError(
                "must not contain a user name or password; use auth=BasicAuth(...)"
            )
        secret = sorted({name for name in url.params if is_secret_name(name)})
        if secret:
            raise ValueError(
                f"must not carry the secret query parameter(s) {', '.join(secret)}; "
                "give them in params, which keeps them secret"
            )
        return value

    @field_validator("headers", "params")
    @classmethod
    def _secret_names(cls, value: dict[str, HeaderValue]) -> dict[str, HeaderValue]:
        return secret_by_name(value)

    # -- building a request --------------------------------------------------------

    def _url(self, path_or_url: str, params: Mapping[str, Any] | None) -> httpx.URL:
        """The full URL of a call: the base URL and the path, with every parameter."""
        base = httpx.URL(self.base_url)
        target = httpx.URL(path_or_url)
        query = httpx.QueryParams(base.params)
        if target.is_absolute_url:
            if origin(target) != origin(base):
                raise ValueError(
                    f"This endpoint calls {base.scheme}://{base.netloc.decode()} only, "
                    f"not {target.scheme}://{target.netloc.decode()}: its headers and "
                    "credentials are not for other servers. Use another HttpEndpoint."
                )
            url, query = target, httpx.QueryParams()
        elif not path_or_url:
            url = base
        else:
            # As httpx's base_url: the path is appended to the base URL's path.
            root = base.copy_with(query=None, fragment=None)
            prefix = root.raw_path.rstrip(b"/") + b"/"
            url = root.copy_with(raw_path=prefix + target.raw_path.lstrip(b"/"))
        query = query.merge(reveal(self.params)).merge(url.params)
        if params:
            query = query.merge(params)
        return url.copy_with(params=query)

    def _event_url(
        self, path_or_url: str, params: Mapping[str, Any] | None
    ) -> tuple[str, str, int | None]:
        """The call's URL as its event shows it (secrets masked), and its server.

        Building the URL costs tens of microseconds, and a program calls the same
        few URLs again and again, so the answer is kept per endpoint, keyed by
        everything it depends on (up to 256 of them).

        Raises:
            ValueError, TypeError, httpx.InvalidURL: The URL cannot be built.
        """
        # The private-attribute dict directly: pydantic's attribute access for
        # private names costs microseconds.
        private = self.__pydantic_private__
        assert private is not None
        cache: dict[Any, tuple[Any, tuple[str, str, int | None]]] | None = private.get(
            "_event_urls"
        )
        if cache is None:
            cache = private["_event_urls"] = {}
        # The endpoint's own parameters are compared, not hashed: a secret value
        # hashes in Python, while equal tuples of the same objects compare by
        # identity.
        own = tuple(self.params.items())
        try:
            key: Any = (
                self.base_url,
                path_or_url,
                tuple(params.items()) if params else None,
            )
            hit = cache.get(key)
        except TypeError:  # a parameter value that cannot be a key (a list)
            key = hit = None
        if hit is not None and hit[0] == own:
            return hit[1]
        url = self._url(path_or_url, params)
        _, host, port = origin(url)
        known = (redact_url(url), host, port)
        if key is not None:
            if len(cache) >= _EVENT_URLS_KEPT:
                cache.clear()
            cache[key] = (own, known)
        return known

    def _home(self) -> tuple[str, str, int | None]:
        """The only origin this endpoint's secrets may be sent to."""
        return origin(httpx.URL(self.base_url))

    def _headers(self, headers: Mapping[str, str] | None) -> httpx.Headers:
        merged = httpx.Headers(reveal(self.headers))
        if self.auth is not None:
            merged["Authorization"] = self.auth.header()
        if headers:
            merged.update(headers)
        check_header_values(merged)
        return merged

    def _options(
        self, headers: Mapping[str, str] | None, timeout: float | None
    ) -> dict[str, Any]:
        return {
            "headers": self._headers(headers),
            "timeout": httpx.Timeout(self.timeout if timeout is None else timeout),
            "follow_redirects": self.follow_redirects,
        }

    @staticmethod
    def _check(response: httpx.Response, raise_for_status: bool) -> None:
        if raise_for_status and response.is_error:
            raise status_error(response, redact_url(response.url))

    # -- sync ----------------------------------------------------------------------

    @event_payload(request_payload(None))
    def request(
        self,
        method: str,
        path_or_url: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: str | bytes | None = None,
        data: Mapping[str, Any] | None = None,
        raise_for_status: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request and return its response, the body read.

        Args:
            method: ``GET``, ``POST``... (any case).
            path_or_url: A path appended to ``base_url`` (``"items/7"``), or an
                absolute URL with the same scheme, host and port. Empty: the base
                URL itself.
            params: Query parameters, over ``self.params`` and the path's own.
            headers: Headers for this request, over ``self.headers`` and ``auth``.
            json: A value sent as a JSON body.
            content: Bytes or text sent as the body.
            data: A form, sent URL-encoded.
            raise_for_status: Raise ``httpx.HTTPStatusError`` on a 4xx or 5xx
                status; its message masks the URL's secrets as the events do.
            timeout: Seconds for this request instead of ``self.timeout``.

        Raises:
            httpx.HTTPError: The request failed (``httpx.ConnectError``,
                ``httpx.ReadTimeout``...), or its status with ``raise_for_status``.
            ValueError: An absolute URL on another server.
        """
        url = self._url(path_or_url, params)
        client = self._clients.sync(
            verify=self.verify, retries=self.retries, home=self._home()
        )
        options = self._options(headers, timeout)
        try:
            response = client.request(
                method.upper(), url, json=json, content=content, data=data, **options
            )
        except httpx.HTTPError as exc:
            scrub_exception(exc, request_secrets(url, headers))
            raise
        self._check(response, raise_for_status)
        return response

    @event_payload(request_payload("GET"))
    def get(
        self,
        path_or_url: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        raise_for_status: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a GET request; see :meth:`request`."""
        return self.request(
            "GET",
            path_or_url,
            params=params,
            headers=headers,
            raise_for_status=raise_for_status,
            timeout=timeout,
        )

    @event_payload(request_payload("POST"))
    def post(
        self,
        path_or_url: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: str | bytes | None = None,
        data: Mapping[str, Any] | None = None,
        raise_for_status: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a POST request; see :meth:`request`."""
        return self.request(
            "POST",
            path_or_url,
            params=params,
            headers=headers,
            json=json,
            content=content,
            data=data,
            raise_for_status=raise_for_status,
            timeout=timeout,
        )

    @event_payload(request_payload("PUT"))
    def put(
        self,
        path_or_url: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: str | bytes | None = None,
        data: Mapping[str, Any] | None = None,
        raise_for_status: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a PUT request; see :meth:`request`."""
        return self.request(
            "PUT",
            path_or_url,
            params=params,
            headers=headers,
            json=json,
            content=content,
            data=data,
            raise_for_status=raise_for_status,
            timeout=timeout,
        )

    @event_payload(request_payload("PATCH"))
    def patch(
        self,
        path_or_url: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: str | bytes | None = None,
        data: Mapping[str, Any] | None = None,
        raise_for_status: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a PATCH request; see :meth:`request`."""
        return self.request(
            "PATCH",
            path_or_url,
            params=params,
            headers=headers,
            json=json,
            content=content,
            data=data,
            raise_for_status=raise_for_status,
            timeout=timeout,
        )

    delete = DeleteMethod(http_delete)  # type: ignore[assignment,pydantic-field]

    # -- async ---------------------------------------------------------------------

    @event_payload(request_payload(None))
    async def arequest(
        self,
        method: str,
        path_or_url: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: str | bytes | None = None,
        data: Mapping[str, Any] | None = None,
        raise_for_status: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request with the event loop's ``httpx.AsyncClient``; see
        :meth:`request`."""
        url = self._url(path_or_url, params)
        client = self._clients.asynchronous(
            verify=self.verify, retries=self.retries, home=self._home()
        )
        options = self._options(headers, timeout)
        try:
            response = await client.request(
                method.upper(), url, json=json, content=content, data=data, **options
            )
        except httpx.HTTPError as exc:
            scrub_exception(exc, request_secrets(url, headers))
            raise
        self._check(response, raise_for_status)
        return response

    @event_payload(request_payload("GET"))
    async def aget(
        self,
        path_or_url: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        raise_for_status: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a GET request; see :meth:`arequest`."""
        return await self.arequest(
            "GET",
            path_or_url,
            params=params,
            headers=headers,
            raise_for_status=raise_for_status,
            timeout=timeout,
        )

    @event_payload(request_payload("POST"))
    async def apost(
        self,
        path_or_url: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: str | bytes | None = None,
        data: Mapping[str, Any] | None = None,
        raise_for_status: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a POST request; see :meth:`arequest`."""
        return await self.arequest(
            "POST",
            path_or_url,
            params=params,
            headers=headers,
            json=json,
            content=content,
            data=data,
            raise_for_status=raise_for_status,
            timeout=timeout,
        )

    @event_payload(request_payload("PUT"))
    async def aput(
        self,
        path_or_url: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: str | bytes | None = None,
        data: Mapping[str, Any] | None = None,
        raise_for_status: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a PUT request; see :meth:`arequest`."""
        return await self.arequest(
            "PUT",
            path_or_url,
            params=params,
            headers=headers,
            json=json,
            content=content,
            data=data,
            raise_for_status=raise_for_status,
            timeout=timeout,
        )

    @event_payload(request_payload("PATCH"))
    async def apatch(
        self,
        path_or_url: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: str | bytes | None = None,
        data: Mapping[str, Any] | None = None,
        raise_for_status: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a PATCH request; see :meth:`arequest`."""
        return await self.arequest(
            "PATCH",
            path_or_url,
            params=params,
            headers=headers,
            json=json,
            content=content,
            data=data,
            raise_for_status=raise_for_status,
            timeout=timeout,
        )

    @event_payload(request_payload("DELETE"))
    async def adelete(
        self,
        path_or_url: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        raise_for_status: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a DELETE request; see :meth:`arequest`."""
        return await self.arequest(
            "DELETE",
            path_or_url,
            params=params,
            headers=headers,
            raise_for_status=raise_for_status,
            timeout=timeout,
        )

    # -- lifecycle -----------------------------------------------------------------

    @no_events
    def close(self) -> None:
        """Close the sync client and its connections; a later call opens new ones.

        No events: closing idle connections is bookkeeping, not a call to the API.
        """
        self._clients.close()

    @no_events
    async def aclose(self) -> None:
        """Close this event loop's async client, and the sync client."""
        await self._clients.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
