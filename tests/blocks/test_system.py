"""The system blocks: Secret, JSON and String."""

from __future__ import annotations

import math
import secrets
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import blocks.http
import blocks.system
from blocks import Block, BlockValidationError, DocumentStore
from blocks.system import JSON, Secret, String
from emitters import Event
from emitters.testing import capture_events


def nowhere(value: str, events: list[Event]) -> bool:
    """True if ``value`` appears in no event's JSON."""
    return all(value not in e.model_dump_json() for e in events)


@pytest.mark.parametrize("module", [blocks.system, blocks.http])
def test_the_modules_export_a_sorted_documented_surface(module: Any) -> None:
    """__all__ is sorted, names the public classes, and each has a docstring."""
    assert list(module.__all__) == sorted(module.__all__)
    for name in module.__all__:
        assert (getattr(module, name).__doc__ or "").strip(), name


def test_the_slugs() -> None:
    """The types are registered as secret, json and string."""
    assert (Secret.block_type_slug, JSON.block_type_slug, String.block_type_slug) == (
        "secret",
        "json",
        "string",
    )


def test_secret_get_returns_the_value_and_emits_no_trace_of_it() -> None:
    """get() returns the value and emits events; neither they nor repr show it."""
    value = secrets.token_hex(8)
    secret = Secret(value=value)
    with capture_events() as events:
        assert secret.get() == value
    assert [e.event for e in events] == [
        "block.secret.get.started",
        "block.secret.get.succeeded",
    ]
    assert value not in repr(secret)
    assert value not in str(secret)
    assert value not in secret.model_dump_json()
    assert nowhere(value, events)


class Consumer(Block):
    """A block that uses a secret and fails with it in the message."""

    def connect(self, secret: Secret) -> None:
        """Fail, naming the secret as careless drivers do."""
        raise ConnectionError(f"login with {secret.get()} refused")


def test_a_secret_in_another_blocks_error_is_masked() -> None:
    """A secret that a caller puts in an exception is masked in the failed event."""
    value = secrets.token_hex(8)
    secret = Secret(value=value)
    with capture_events() as events, pytest.raises(ConnectionError) as caught:
        Consumer().connect(secret)
    assert value in str(caught.value)  # the caller's exception is untouched
    failed = [e for e in events if e.event == "block.consumer.connect.failed"]
    assert failed[0].payload["error"]["message"] == "login with ********** refused"
    assert nowhere(value, events)


def test_a_secret_saves_encrypted_and_loads() -> None:
    """Saved, the value is encrypted; loaded, get() returns it and events hide it."""
    value = secrets.token_hex(8)
    with capture_events() as events:
        Secret(value=value).save("api-token")
        loaded = Block.load("secret/api-token")
        assert isinstance(loaded, Secret)
        assert loaded.get() == value
    engine = sa.create_engine(DocumentStore().url)
    try:
        with engine.connect() as conn:
            raw = conn.execute(
                sa.text("SELECT data FROM eventblocks_block_documents")
            ).scalar_one()
    finally:
        engine.dispose()
    assert value not in raw
    assert [e.event for e in events] == [
        "block-document.saved",
        "block-document.loaded",
        "block.secret.get.started",
        "block.secret.get.succeeded",
    ]
    assert nowhere(value, events)
    assert value not in repr(loaded)


def test_a_secret_must_be_text() -> None:
    """A non-string secret is refused without echoing it."""
    value = secrets.token_hex(8)
    with pytest.raises(BlockValidationError) as caught:
        Secret(value=[value])
    assert [field for field, _ in caught.value.errors] == ["value"]
    assert value not in str(caught.value)


JSON_VALUES = [
    {"region": "eu-west-1", "limits": {"rows": 1000}, "tags": ["a", "b"]},
    [1, 2.5, "three", None, True],
    "just a string",
    42,
    3.5,
    False,
    None,
]


@pytest.mark.parametrize("value", JSON_VALUES)
def test_json_round_trips_through_a_document(value: Any, tmp_path: Path) -> None:
    """Every kind of JSON value saves and loads back equal; get() emits events."""
    store = DocumentStore(f"sqlite:///{tmp_path}/s.db")
    JSON(value=value).save("config", store=store)
    loaded = JSON.load("config", store=store)
    with capture_events() as events:
        assert loaded.get() == value
    assert [e.event for e in events] == [
        "block.json.get.started",
        "block.json.get.succeeded",
    ]
    assert events[0].resource.id == f"block-document.{loaded.document_id}"


@pytest.mark.parametrize("value", [{1, 2}, math.nan, object(), {"x": math.inf}])
def test_json_refuses_what_json_cannot_carry(value: Any) -> None:
    """Sets, NaN, infinities and arbitrary objects are not JSON values."""
    with pytest.raises(BlockValidationError, match="JSON value") as caught:
        JSON(value=value)
    assert [field for field, _ in caught.value.errors] == ["value"]


def test_string_round_trips_and_get_emits_events(tmp_path: Path) -> None:
    """A String saves, loads back, and its get() emits events."""
    store = DocumentStore(f"sqlite:///{tmp_path}/s.db")
    String(value="raw-data-eu").save("bucket", store=store)
    loaded = String.load("string/bucket", store=store)
    with capture_events() as events:
        assert loaded.get() == "raw-data-eu"
    assert [e.event for e in events] == [
        "block.string.get.started",
        "block.string.get.succeeded",
    ]


def test_string_refuses_other_types() -> None:
    """A String's value must be a string."""
    with pytest.raises(BlockValidationError):
        String(value=7)


FIND_WITHOUT_IMPORT = """
import sys
from blocks import block_class
assert "blocks.system" not in sys.modules
print(block_class("json").__module__, block_class("http-endpoint").__module__)
"""


def test_built_in_types_are_found_by_slug_without_an_import() -> None:
    """The eventblocks.blocks entry points find built-in types in a fresh process."""
    import os
    import subprocess
    import sys

    # No store is given, so no saved import path can help: only entry points.
    done = subprocess.run(
        [sys.executable, "-c", FIND_WITHOUT_IMPORT],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
        check=True,
    )
    assert done.stdout.split() == ["blocks.system", "blocks.http"]
