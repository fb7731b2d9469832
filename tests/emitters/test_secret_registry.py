"""The secret registry: transformed forms, the refusal rule, release and scale."""

from __future__ import annotations

import base64
import gc
import json
import logging
import secrets

import pytest
from pydantic import SecretBytes, SecretStr

from blocks import Block, SecretDict
from emitters import _redact, register_secret
from emitters._redact import MASK, redact_event, redact_text
from emitters._registry import (
    MIN_SECRET_LENGTH,
    find_spans,
    refusal,
    register_owned,
    registered_count,
)
from emitters.testing import capture_events


class Holder(Block):
    """A block holding secrets of every kind."""

    token: SecretStr | None = None
    raw: SecretBytes | None = None
    options: SecretDict = SecretDict({})

    def echo(self, value: object) -> object:
        return value

    def fail(self, text: str) -> None:
        raise ValueError(text)


def _value() -> str:
    return f"Tok{secrets.token_hex(10)}Z"


def test_transformed_forms_are_masked() -> None:
    """Upper/lower case, JSON escapes, bytes repr, base64 and wrapped lines."""
    value = f"Sëcret-{secrets.token_hex(8)}/+"
    holder = Holder(token=SecretStr(value))
    basic = base64.b64encode(f"user:{value}".encode()).decode()
    texts = [
        value.upper().replace("Ë", "ë"),
        value.lower(),
        json.dumps({"v": value}),
        json.dumps({"v": value}, ensure_ascii=False),
        repr(value.encode()),
        f"Authorization: Basic {basic}",
        base64.b64encode(value.encode()).decode(),
        base64.urlsafe_b64encode(value.encode()).decode(),
        f"head {value[:9]}\n    {value[9:]} tail",
    ]
    for text in texts:
        masked = redact_text(text)
        assert MASK in masked, text
        for part in (value, value.lower(), value[:12], value[-12:]):
            assert part not in masked, text
    decoded = redact_text(f"Basic {basic}").split(" ", 1)[1]
    assert value not in base64.b64decode(decoded[:4] + "==", validate=False).decode(
        "latin-1"
    )
    del holder


def test_non_utf8_secret_bytes_are_masked_as_bytes() -> None:
    """A SecretBytes that is not UTF-8 is found by its bytes repr and base64."""
    raw = b"\xff\xfe" + secrets.token_bytes(10) + b"\x80abc"
    holder = Holder(raw=SecretBytes(raw))
    assert MASK in redact_text(f"got {raw!r}")
    assert repr(raw)[2:-1] not in redact_text(f"got {raw!r}")
    assert MASK in redact_text(base64.b64encode(raw).decode())
    del holder


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        ("1", True),
        ("a", True),
        ("prod", True),
        ("true", True),
        ("Password", True),
        ("xxxxxxxx", True),
        ("12345", False),
        ("hunter2!", False),
    ],
)
def test_refusal_rule(value: str, refused: bool) -> None:
    """Short, common and one-character values are refused as masking keys."""
    assert (refusal(value) is not None) is refused
    assert MIN_SECRET_LENGTH == 5


def test_short_secrets_warn_by_field_and_damage_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A SecretDict of 1, "prod" and "a" leaves events whole and warns by field."""
    with caplog.at_level(logging.WARNING, logger="emitters"):
        holder = Holder(options=SecretDict({"pin": 1, "env": "prod", "x": "a"}))
    warned = caplog.text
    assert "options['pin']" in warned
    assert "options['env']" in warned
    assert "holder" in warned
    assert "'prod'" not in warned
    with capture_events() as events:
        assert holder.echo(3) == 3
        with pytest.raises(ValueError, match="bad"):
            holder.fail("bad value")
    outcome = next(e for e in events if e.event.endswith("echo.succeeded"))
    failed = next(e for e in events if e.event.endswith("fail.failed"))
    assert MASK not in outcome.model_dump_json()
    assert failed.payload["error"]["type"] == "ValueError"
    assert failed.payload["error"]["message"] == "bad value"


def test_register_secret_refuses_with_a_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The public register_secret refuses a short value and names its position."""
    # Each refusal is warned about once a process: forget earlier tests' ones.
    monkeypatch.setattr(_redact, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="emitters"):
        register_secret("ab")
    assert "argument 1" in caplog.text
    assert redact_text("ab cab") == "ab cab"


def test_secrets_of_dead_blocks_are_released() -> None:
    """Registered forms come back to their count when the blocks are collected."""
    gc.collect()
    before = registered_count()
    blocks = [Holder(token=SecretStr(_value())) for _ in range(200)]
    assert registered_count() > before + 200
    del blocks
    gc.collect()
    assert registered_count() == before


def test_owned_and_permanent_values_overlap() -> None:
    """A value also registered for good outlives the block that held it."""
    value = _value()
    holder = Holder(token=SecretStr(value))
    register_secret(value)
    del holder
    gc.collect()
    assert redact_text(value) == MASK


def test_many_secrets_use_the_index_and_still_mask() -> None:
    """Past the compiled pattern's size, the index finds every form in one pass."""

    class Owner:
        pass

    owner = Owner()
    values = [_value() for _ in range(2_000)]
    register_owned(owner, values)
    text = f"a {values[0]} b {values[-1].upper()} c {values[1000]}"
    assert redact_text(text) == f"a {MASK} b {MASK} c {MASK}"
    assert find_spans("nothing here at all") == []
    del owner
    gc.collect()
    assert redact_text(values[0]) == values[0]


def test_emit_event_masks_names_ids_and_run_labels() -> None:
    """Event names, resource ids and run labels from user code are masked."""
    from emitters import Resource, emit_event, flow_run

    value = _value()
    holder = Holder(token=SecretStr(value))
    with capture_events() as events, flow_run("nightly", labels={"key": value}):
        emit_event(f"custom.{value}", Resource(id=f"thing.{value}", name=value))
        holder.echo(1)
    text = "\n".join(e.model_dump_json() for e in events)
    assert value not in text
    custom = next(e for e in events if e.event.startswith("custom."))
    assert custom.event == f"custom.{MASK}"
    assert custom.resource.id == f"thing.{MASK}"
    run = [r for e in events for r in e.related if r.role == "flow-run"]
    assert run
    assert all(r.labels["key"] == MASK for r in run)
    del holder


def test_redact_event_keeps_sdk_structure() -> None:
    """Payload keys, numbers and error types survive when no secret is in them."""
    from emitters import Event, Resource

    holder = Holder(token=SecretStr(_value()))
    event = Event(
        id="00000000-0000-7000-8000-000000000000",
        occurred="2026-01-01T00:00:00Z",
        event="block.x.failed",
        resource=Resource(id="block.x"),
        payload={"duration_ms": 1.5, "yielded": 3, "error": {"type": "ValueError"}},
    )
    assert redact_event(event, resources=True) is event
    del holder
