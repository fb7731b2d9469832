"""The ``Webhook`` block, and the body it sends.

A body is a mapping (sent as JSON) or text (sent as plain text), or the values for
the webhook's template. A template is text with ``string.Template`` placeholders
(``$text``, ``${flow}``). When the template is itself JSON, such as
``{"text": "Flow $flow failed"}``, the placeholders are filled inside its strings,
so values are escaped as JSON needs (quotes, newlines), and a string that is one
placeholder alone (``"$count"``) takes the value itself, number or object.
Otherwise the template is filled as text and sent as JSON if the result parses as
JSON, else as plain text.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Mapping
from string import Template
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr, field_validator

from blocks._block import Block
from blocks._instrument import event_payload
from blocks.http._clients import ssl_context
from blocks.http._redact import scrub_exception
from blocks.http._request import (
    HeaderValue,
    check_header_values,
    http_url,
    response_of,
    reveal,
    secret_by_name,
    sent_bytes,
    status_error,
)

__all__ = ["JSON_TYPE", "TEXT_TYPE", "Webhook", "render_body"]

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
_ALONE = re.compile(
    r"\$(?:(?P<named>[_a-z][_a-z0-9]*)|\{(?P<braced>[_a-z][_a-z0-9]*)\})",
    re.IGNORECASE | re.ASCII,
)
_METHOD = re.compile(r"^[A-Z]+$")


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _fill_text(text: str, values: Mapping[str, Any]) -> str:
    try:
        return Template(text).substitute({k: _as_text(v) for k, v in values.items()})
    except KeyError as exc:
        given = ", ".join(sorted(values)) or "nothing"
        raise ValueError(
            f"The webhook template needs a value for ${exc.args[0]}, which the body "
            f"does not give (it gives {given})."
        ) from None
    except ValueError as exc:
        raise ValueError(f"The webhook template is malformed: {exc}.") from None


def _fill(node: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(node, str):
        alone = _ALONE.fullmatch(node) if "$" in node else None
        if alone is not None:
            name = alone["named"] or alone["braced"]
            if name not in values:
                _fill_text(node, values)  # raises the error that names the value
            return values[name]
        return _fill_text(node, values)
    if isinstance(node, dict):
        return {_fill_text(k, values): _fill(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(item, values) for item in node]
    return node


def _dumps(value: Any) -> bytes:
    try:
        return json.dumps(value, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"The webhook body cannot be sent as JSON: {exc}.") from None


def render_body(
    template: str | None, body: Mapping[str, Any] | str | None
) -> tuple[bytes | None, str | None]:
    """Return the bytes to send and their content type (None for no body).

    Raises:
        TypeError: A template is set and ``body`` is not a mapping.
        ValueError: The template needs a value the body does not give, or is
            malformed; or the body cannot be sent as JSON.
    """
    if template is None:
        if body is None:
            return None, None
        if isinstance(body, str):
            return body.encode("utf-8"), TEXT_TYPE
        return _dumps(body), JSON_TYPE
    if isinstance(body, str):
        raise TypeError(
            "A webhook with a template takes a mapping of the values to fill in, "
            "not a string."
        )
    values: Mapping[str, Any] = body or {}
    try:
        parsed = json.loads(template)
    except ValueError:
        text = _fill_text(template, values)
        try:
            json.loads(text)
        except ValueError:
            return text.encode("utf-8"), TEXT_TYPE
        return text.encode("utf-8"), JSON_TYPE
    return _dumps(_fill(parsed, values)), JSON_TYPE


def _notify_payload(args: inspect.BoundArguments, outcome: Any) -> dict[str, Any]:
    """The outcome detail of a notification: never the URL, which is the secret."""
    webhook: Webhook = args.arguments["self"]
    detail: dict[str, Any] = {
        "method": webhook.method,
        "server.address": webhook._url().host,
    }
    response = response_of(outcome)
    if response is not None:
        detail["status_code"] = response.status_code
        detail["bytes_received"] = len(response.content)
    sent = sent_bytes(outcome)
    if sent is not None:
        detail["bytes_sent"] = sent
    return detail


class Webhook(Block):
    """A webhook: a secret URL that receives a notification (Slack, Teams, any).

    ``notify(body)`` sends ``body`` (a mapping as JSON, text as text), or fills the
    ``template`` with it, and returns the ``httpx.Response``. A 4xx or 5xx status
    raises ``httpx.HTTPStatusError`` by default, since a notification that did not
    arrive should fail loudly; pass ``raise_for_status=False`` to get the response
    instead. The outcome event records ``method``, ``status_code``, ``bytes_sent``,
    ``bytes_received`` and the host (``server.address``), never the URL.

    Attributes:
        url: The webhook's URL, secret: whoever has it can post.
        method: The HTTP method, ``POST`` by default.
        headers: Sent with every notification; values may be ``SecretStr``, and
            those of secret-bearing names (``Authorization``...) are made secret.
        template: A ``string.Template`` for the body, or None to send it as is.
        timeout: Seconds for each phase of the request.
        verify: Check the server's TLS certificate.
    """

    block_type_slug: ClassVar[str] = "webhook"

    url: SecretStr
    method: str = "POST"
    headers: dict[str, HeaderValue] = Field(default_factory=dict)
    template: str | None = None
    timeout: float = Field(default=10.0, gt=0)
    verify: bool = True

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: SecretStr) -> SecretStr:
        http_url(value.get_secret_value())
        return value

    @field_validator("method")
    @classmethod
    def _valid_method(cls, value: str) -> str:
        method = value.upper()
        if not _METHOD.match(method):
            raise ValueError("must be an HTTP method such as POST or PUT")
        return method

    @field_validator("headers")
    @classmethod
    def _secret_names(cls, value: dict[str, HeaderValue]) -> dict[str, HeaderValue]:
        return secret_by_name(value)

    def _url(self) -> httpx.URL:
        return httpx.URL(self.url.get_secret_value())

    def _request(self, body: Mapping[str, Any] | str | None) -> dict[str, Any]:
        content, content_type = render_body(self.template, body)
        headers = httpx.Headers(reveal(self.headers))
        if content_type is not None and "content-type" not in headers:
            headers["Content-Type"] = content_type
        check_header_values(headers)
        return {"content": content, "headers": headers, "timeout": self.timeout}

    def _secrets(self, url: httpx.URL) -> list[str]:
        """What an error message must not show: the URL in any spelling, and the
        secret header values."""
        found = [self.url.get_secret_value(), str(url)]
        if len(url.raw_path) > 1:
            found.append(url.raw_path.decode("ascii"))
        found.extend(
            value.get_secret_value()
            for value in self.headers.values()
            if isinstance(value, SecretStr)
        )
        return found

    def _check(self, response: httpx.Response, raise_for_status: bool) -> None:
        if raise_for_status and response.is_error:
            raise status_error(response, f"the webhook at {response.url.host}")

    @event_payload(_notify_payload)
    def notify(
        self,
        body: Mapping[str, Any] | str | None = None,
        *,
        raise_for_status: bool = True,
    ) -> httpx.Response:
        """Send a notification and return the response.

        Args:
            body: A mapping sent as JSON, or text sent as ``text/plain``; with a
                ``template``, the mapping of values to fill in.
            raise_for_status: Raise ``httpx.HTTPStatusError`` on a 4xx or 5xx
                status (its message names the host only).

        Raises:
            httpx.HTTPError: The request failed, or its status.
            ValueError: The template needs a value the body does not give.
        """
        url = self._url()
        request = self._request(body)
        try:
            with httpx.Client(verify=ssl_context(self.verify)) as client:
                response = client.request(self.method, url, **request)
        except httpx.HTTPError as exc:
            scrub_exception(exc, self._secrets(url))
            raise
        self._check(response, raise_for_status)
        return response

    @event_payload(_notify_payload)
    async def anotify(
        self,
        body: Mapping[str, Any] | str | None = None,
        *,
        raise_for_status: bool = True,
    ) -> httpx.Response:
        """Send a notification with ``httpx.AsyncClient``; see :meth:`notify`."""
        url = self._url()
        request = self._request(body)
        try:
            async with httpx.AsyncClient(verify=ssl_context(self.verify)) as client:
                response = await client.request(self.method, url, **request)
        except httpx.HTTPError as exc:
            scrub_exception(exc, self._secrets(url))
            raise
        self._check(response, raise_for_status)
        return response
