"""What the HTTP blocks share about a request: authentication, secret values by
name, URL checks, status errors, the outcome payload of a call, and the ``delete``
method that must live beside ``Block.delete``.
"""

from __future__ import annotations

import base64
import inspect
import re
import types
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, overload

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from blocks._block import Block
from blocks._instrument import _instrumented
from emitters._sdk import (
    EVENTS_OFF_AT_IMPORT,
    check_http_url,
    is_secret_name,
)

__all__ = [
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "DeleteMethod",
    "HeaderValue",
    "check_header_values",
    "http_delete",
    "http_url",
    "request_payload",
    "response_of",
    "reveal",
    "secret_by_name",
    "sent_bytes",
    "status_error",
]

HeaderValue = str | SecretStr
"""A header or query parameter value: plain text, or a secret."""


class BasicAuth(BaseModel):
    """HTTP basic authentication: a user name and a secret password.

    Example:
        >>> from blocks.http import BasicAuth
        >>> BasicAuth(username="etl", password="pa55")
        BasicAuth(kind='basic', username='etl', password=SecretStr('**********'))
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    kind: Literal["basic"] = "basic"
    username: str
    password: SecretStr

    def header(self) -> str:
        """Return the ``Authorization`` header value."""
        pair = f"{self.username}:{self.password.get_secret_value()}".encode()
        return f"Basic {base64.b64encode(pair).decode('ascii')}"


class BearerAuth(BaseModel):
    """HTTP bearer authentication: a secret token, sent as ``Bearer <token>``.

    Example:
        >>> from blocks.http import BearerAuth
        >>> BearerAuth(token="tok-123")
        BearerAuth(kind='bearer', token=SecretStr('**********'))
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    kind: Literal["bearer"] = "bearer"
    token: SecretStr

    def header(self) -> str:
        """Return the ``Authorization`` header value."""
        return f"Bearer {self.token.get_secret_value()}"


Auth = Annotated[BasicAuth | BearerAuth, Field(discriminator="kind")]


# What HTTP/1.1 refuses in a header value: control characters but the tab, and
# DEL. A token read from a file often ends with a line break.
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def check_header_values(headers: Mapping[str, str] | httpx.Headers) -> None:
    """Refuse header values that cannot be sent, before anything is sent.

    Raises:
        ValueError: A value holds a line break or another control character, or
            starts or ends with a space. The message names the header, never
            the value (it may be a secret).
    """
    if isinstance(headers, httpx.Headers):
        # As given, not lowercased, so that the message names them as written.
        items = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers.raw]
    else:
        items = list(headers.items())
    for name, value in items:
        if _BAD_VALUE.search(value):
            raise ValueError(
                f"The value of header {name!r} contains a line break or another "
                "control character, which HTTP does not allow (a token read from "
                "a file often ends with a newline: strip it)"
            )
        if value != value.strip(" \t"):
            raise ValueError(
                f"The value of header {name!r} starts or ends with a space or a "
                "tab, which HTTP does not allow: strip it"
            )


def secret_by_name(values: dict[str, HeaderValue]) -> dict[str, HeaderValue]:
    """Return ``values`` with each value whose name carries secrets a ``SecretStr``."""
    return {
        name: SecretStr(value)
        if isinstance(value, str) and is_secret_name(name)
        else value
        for name, value in values.items()
    }


def reveal(values: Mapping[str, HeaderValue]) -> dict[str, str]:
    """Return ``values`` as plain text, secrets included, for sending."""
    return {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in values.items()
    }


def http_url(text: str) -> httpx.URL:
    """Parse an absolute http(s) URL; the errors never repeat it (it may be secret).

    Raises:
        ValueError: Not a URL, or not an absolute http:// or https:// one.
    """
    return check_http_url(text)


def status_error(response: httpx.Response, where: str) -> httpx.HTTPStatusError:
    """Return httpx's error for a 4xx/5xx ``response``, naming ``where`` only.

    httpx's own message shows the whole URL, secrets and all; ``where`` is the URL
    with its secrets masked, or just the host.
    """
    kind = "Client error" if response.is_client_error else "Server error"
    message = f"{kind} '{response.status_code} {response.reason_phrase}' from {where}"
    return httpx.HTTPStatusError(message, request=response.request, response=response)


def response_of(outcome: Any) -> httpx.Response | None:
    """The response a call returned, or that came with its status error."""
    if isinstance(outcome, httpx.Response):
        return outcome
    if isinstance(outcome, httpx.HTTPStatusError):
        return outcome.response
    return None


def sent_bytes(outcome: Any) -> int | None:
    """The length of the first request's body, if the outcome carries the request."""
    response = response_of(outcome)
    try:
        if response is not None:
            first = response.history[0] if response.history else response
            return len(first.request.content)
        if isinstance(outcome, httpx.RequestError):
            return len(outcome.request.content)
    except (RuntimeError, httpx.RequestNotRead):
        pass  # no request attached, or a streamed body
    return None


def request_payload(method: str | None) -> Callable[[Any, Any], dict[str, Any]]:
    """Return the payload hook of an ``HttpEndpoint`` request method.

    Args:
        method: The HTTP method of ``get``, ``post``...; None for ``request``,
            whose ``method`` argument says it.
    """

    def payload(args: inspect.BoundArguments, outcome: Any) -> dict[str, Any]:
        arguments = args.arguments
        detail: dict[str, Any] = {"method": method or str(arguments["method"]).upper()}
        try:
            shown = arguments["self"]._event_url(
                arguments["path_or_url"], arguments["params"]
            )
        except (ValueError, TypeError, httpx.InvalidURL):
            shown = None  # the call failed on its URL, and its error says why
        if shown is not None:
            detail["url"], detail["server.address"], detail["server.port"] = shown
        response = response_of(outcome)
        if response is not None:
            detail["status_code"] = response.status_code
            detail["bytes_received"] = len(response.content)
            detail["redirects"] = len(response.history)
            # Only where the header means something (RFC 9110): looking a header
            # up in httpx costs a microsecond, on every call.
            status = response.status_code
            if status in (429, 503) or 300 <= status < 400:
                retry_after = response.headers.get("Retry-After")
                if retry_after is not None:
                    detail["retry_after"] = retry_after
        sent = sent_bytes(outcome)
        if sent is not None:
            detail["bytes_sent"] = sent
        return detail

    return payload


class DeleteMethod:
    """``delete`` of an ``HttpEndpoint``: HTTP DELETE on an instance, while the class
    keeps ``Block.delete`` for documents (``HttpEndpoint.delete("prod")``).

    The name ``delete`` is reserved for documents, so the instrumentation installed
    when a class is created skips it; this descriptor installs the same recording
    wrapper itself, unless events are off for the process or the class.
    """

    def __init__(self, function: Callable[..., httpx.Response]) -> None:
        self._function = function
        self._recorded: Any = None
        if not EVENTS_OFF_AT_IMPORT:
            self._recorded = _instrumented(
                function,  # type: ignore[arg-type]
                request_payload("DELETE"),
            )
        self.__doc__ = function.__doc__

    @overload
    def __get__(self, instance: None, owner: type[Block]) -> Callable[..., None]: ...

    @overload
    def __get__(
        self, instance: Block, owner: type[Block]
    ) -> Callable[..., httpx.Response]: ...

    def __get__(self, instance: Block | None, owner: type[Block]) -> Any:
        if instance is None:
            return Block.__dict__["delete"].__get__(None, owner)
        if self._recorded is None or not owner.events_enabled:
            return types.MethodType(self._function, instance)
        return self._recorded.__get__(instance, owner)


def http_delete(
    self: Any,
    path_or_url: str = "",
    *,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    raise_for_status: bool = False,
    timeout: float | None = None,
) -> httpx.Response:
    """Send a DELETE request; see :meth:`request`.

    On the class, ``HttpEndpoint.delete("name")`` deletes a saved document, as for
    every block.
    """
    response: httpx.Response = self.request(
        "DELETE",
        path_or_url,
        params=params,
        headers=headers,
        raise_for_status=raise_for_status,
        timeout=timeout,
    )
    return response


http_delete.__name__ = "delete"
http_delete.__qualname__ = "HttpEndpoint.delete"
