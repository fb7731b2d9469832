"""A database password in the URL's query is masked wherever a URL is shown and
stored encrypted."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks import BlockStoreError, DocumentStore
from blocks.sql import DatabaseCredentials
from emitters._redact import redact_text
from emitters._sdk import mask_url
from emitters.sql import SQLEventStore


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _password() -> str:
    return f"qpw-{secrets.token_hex(10)}"


def test_mask_url_masks_user_info_and_query_passwords() -> None:
    """Both passwords are ***; other options stay readable."""
    first, second = _password(), _password()
    text = mask_url(
        f"postgresql+psycopg://u:{first}@h:5432/db?password={second}"
        "&sslmode=require&sslpassword=abcdef1"
    )
    assert first not in text
    assert second not in text
    assert "abcdef1" not in text
    assert "u:***@h:5432/db" in text
    assert "password=***" in text
    assert "sslmode=require" in text


def test_credentials_query_password_is_secret_everywhere(
    eventblocks_home: Path,
) -> None:
    """repr, rendered_url, dumps and the stored document never show it."""
    value = _password()
    creds = DatabaseCredentials(
        driver="postgresql+psycopg",
        username="etl",
        host="127.0.0.1",
        database="db",
        query={"password": value, "sslmode": "prefer"},
    )
    assert isinstance(creds.query["password"], SecretStr)  # type: ignore[index]
    for text in (repr(creds), str(creds), creds.rendered_url, creds.model_dump_json()):
        assert value not in text
    assert "sslmode=prefer" in creds.rendered_url
    assert redact_text(f"x {value} y") == "x ********** y"
    creds.save("query-pw")
    raw = Path(eventblocks_home, "eventblocks.db").read_bytes()
    assert value.encode() not in raw
    loaded = DatabaseCredentials.load("query-pw")
    assert loaded.query["password"].get_secret_value() == value  # type: ignore[index, union-attr]
    assert loaded._url().query["password"] == value


def test_whole_url_query_password_is_registered() -> None:
    """A ?password= inside a whole url is masked in text and in rendered_url."""
    value = _password()
    creds = DatabaseCredentials(
        url=SecretStr(f"postgresql+psycopg://etl@127.0.0.1/db?password={value}")
    )
    assert value not in creds.rendered_url
    assert redact_text(value) == "**********"


def test_store_errors_and_display_urls_mask_query_passwords(closed_port: int) -> None:
    """BlockStoreError, DocumentStore repr and SQLEventStore.display_url."""
    value = _password()
    url = f"postgresql+psycopg://etl@127.0.0.1:{closed_port}/db?password={value}"
    store = DocumentStore(url)
    assert value not in repr(store)
    with pytest.raises(BlockStoreError) as info:
        store.list_documents()
    assert value not in str(info.value)
    assert "password=***" in str(info.value)
    assert value not in SQLEventStore(url).display_url
