"""The one secret-name rule, the encoded forms of a secret, and the URL helpers."""

from __future__ import annotations

import logging

import httpx
import pytest

from emitters import register_secret
from emitters._introspect import iter_leaves, package_version, qualified_name
from emitters._logs import protect_logger
from emitters._redact import MASK, redact_text, secret_forms
from emitters._secret_names import is_secret_name
from emitters._urls import check_http_url, display_url, origin, redact_url

# name -> secret? One table for every part of the SDK that asks.
NAMES = {
    "Authorization": True,
    "Proxy-Authorization": True,
    "Cookie": True,
    "Set-Cookie": True,
    "X-Api-Key": True,
    "apiKey": True,
    "api_key": True,
    "key": True,
    "Idempotency-Key": True,
    "token": True,
    "access_token": True,
    "refresh_token": True,
    "X-Auth-Token": True,
    "X-Amz-Security-Token": True,
    "client_secret": True,
    "password": True,
    "passwd": True,
    "pwd": True,
    "pass": True,
    "sig": True,
    "signature": True,
    "X-Amz-Signature": True,
    "X-Amz-Credential": True,
    "X-Session-Id": True,
    "sessionid": True,
    "session": True,
    "X-Passcode": True,
    "passphrase": True,
    "auth": True,
    "Passport": False,
    "Bypass": False,
    "X-Author": False,
    "Keep-Alive": False,
    "Accept": False,
    "Content-Type": False,
    "page": False,
    "sort": False,
    "X-Request-Id": False,
    "signed": False,
    "User-Agent": False,
}


@pytest.mark.parametrize(("name", "secret"), sorted(NAMES.items()))
def test_secret_name_rule(name: str, secret: bool) -> None:
    """Each name is secret or not as the table says, in any case."""
    assert is_secret_name(name) is secret
    assert is_secret_name(name.upper()) is secret
    assert is_secret_name(name.lower()) is secret


def test_blocks_and_the_http_emitter_share_the_rule() -> None:
    """The HTTP blocks and the HTTP emitter decide with the same function."""
    import blocks.http._request as block_request
    import emitters._sdk as sdk
    import emitters.http._emitter as emitter

    assert block_request.is_secret_name is is_secret_name
    assert emitter.is_secret_name is is_secret_name
    assert sdk.is_secret_name is is_secret_name


def test_secret_forms_are_the_value_and_its_encodings() -> None:
    """The value travels as itself, percent-encoded, JSON-escaped, as a bytes repr
    and in base64; each form is listed once, none shorter than the rule's minimum."""
    import base64

    value = 'a b/cé"'
    forms = secret_forms(value)
    assert forms[0] == value
    for form in (
        "a%20b%2Fc%C3%A9%22",
        "a%20b/c%C3%A9%22",
        "a+b%2Fc%C3%A9%22",
        'a b/c\\u00e9\\"',
        'a b/cé\\"',
        'a b/c\\xc3\\xa9"',
        base64.b64encode(value.encode()).decode().rstrip("="),
    ):
        assert form in forms, form
    assert len(forms) == len(set(forms))
    assert all(len(form) >= 5 for form in forms)
    assert secret_forms("abcde")[0] == "abcde"


def test_redact_url_masks_user_info_and_secret_values_only() -> None:
    """redact_url keeps the shape of the URL and masks what is secret."""
    url = httpx.URL(
        "https://u:p@api.example.com:8443/a%20b?page=2&token=t&sort=&sig=s#f"
    )
    assert redact_url(url) == (
        f"https://{MASK}@api.example.com:8443/a%20b?page=2&token={MASK}&sort=&sig={MASK}"
    )
    assert display_url(url) == "https://api.example.com:8443/a b"


@pytest.mark.parametrize(
    "text",
    ["127.0.0.1:9000", "ftp://host/x", "http:///nohost", "/relative", "http://[::1"],
)
def test_check_http_url_refuses_without_echo(text: str) -> None:
    """Only absolute http(s) URLs with a host pass; the message never repeats it."""
    with pytest.raises(ValueError, match="http:// or https://") as info:
        check_http_url(text)
    assert text not in str(info.value)


def test_check_http_url_refuses_other_types() -> None:
    """A non-string is a TypeError naming the type."""
    with pytest.raises(TypeError, match="int"):
        check_http_url(3)


def test_origin_fills_the_default_port() -> None:
    """https://h and https://h:443 are one origin; http://h is another."""
    assert origin(check_http_url("https://h/x")) == origin(
        check_http_url("https://h:443/y")
    )
    assert origin(check_http_url("http://h/x")) != origin(check_http_url("https://h"))


def test_iter_leaves_walks_containers_to_a_depth() -> None:
    """Leaves of dicts, lists, tuples and sets come out; depth is bounded."""
    value = {"a": [1, ("b", {"c": None})], "d": {"e"}}
    assert sorted(map(str, iter_leaves(value))) == ["1", "None", "b", "e"]
    deep: object = "x"
    for _ in range(10):
        deep = [deep]
    assert list(iter_leaves(deep, max_depth=5)) == []
    assert list(iter_leaves(deep, max_depth=10)) == ["x"]


def test_qualified_name_and_version() -> None:
    """Built-ins keep their bare name; others carry their module."""
    assert qualified_name(ValueError("x")) == "ValueError"
    assert qualified_name(httpx.ConnectError("x")) == "httpx.ConnectError"
    assert package_version()


def test_masking_filter_masks_urls_and_registered_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One filter masks httpx URL arguments and registered secrets in messages."""
    secret = "filter-secret-7f3a9c"
    register_secret(secret)
    protect_logger("eventblocks-test-lib")
    protect_logger("eventblocks-test-lib")
    logger = logging.getLogger("eventblocks-test-lib")
    with caplog.at_level(logging.INFO, logger="eventblocks-test-lib"):
        logger.info("GET %s", httpx.URL("https://h/x?token=tok123&page=1"))
        logger.info("said %s", secret)
    text = caplog.text
    assert "tok123" not in text
    assert "token=**********&page=1" in text
    assert secret not in text
    assert redact_text(f"said {secret}") in text
