"""Secret fields: never shown, never in an event, never echoed by validation."""

import inspect
import traceback
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from blocks import Block, BlockError, BlockValidationError, SecretDict, event_payload
from emitters import Event
from emitters.testing import capture_events

MASK = "**********"


class Login(BaseModel):
    """A plain model nested in a block, holding a secret."""

    user: str
    password: SecretStr


def leak_strings(bound: inspect.BoundArguments, outcome: Any) -> dict[str, Any]:
    """A careless payload hook that returns the block's secret strings."""
    vault: Vault = bound.arguments["self"]
    return {
        "token": vault.token.get_secret_value(),
        "api_key": vault.options.get_secret_value()["api_key"],
        "password": vault.login.password.get_secret_value(),
        "sentence": f"used {vault.token.get_secret_value()} to log in",
    }


def leak_options(bound: inspect.BoundArguments, outcome: Any) -> dict[str, Any]:
    """A careless payload hook that returns the whole SecretDict, number included."""
    vault: Vault = bound.arguments["self"]
    return {"options": vault.options.get_secret_value()}


class Vault(Block):
    """A block holding a SecretStr, a SecretDict and a nested secret."""

    token: SecretStr
    options: SecretDict
    login: Login
    region: str = "eu-west-1"

    def leak(self) -> None:
        """Fail with every secret value in the exception message."""
        raise RuntimeError(
            f"denied: token={self.token.get_secret_value()} "
            f"api_key={self.options.get_secret_value()['api_key']} "
            f"password={self.login.password.get_secret_value()} "
            f"pin={self.options.get_secret_value()['pin']}"
        )

    @event_payload(leak_strings)
    def report(self) -> str:
        """Succeed; the payload hook returns the secret strings."""
        return "ok"

    @event_payload(leak_options)
    def report_options(self) -> str:
        """Succeed; the payload hook returns the SecretDict's contents."""
        return "ok"

    def use_token(self) -> None:
        """Fail with the current token in the message."""
        raise PermissionError(f"token {self.token.get_secret_value()} expired")


def secrets() -> dict[str, str]:
    """Return fresh secret values, unique to the calling test."""
    tag = uuid.uuid4().hex
    return {
        "token": f"tok-{tag}",
        "api_key": f"key-{tag}",
        "password": f"pw-{tag}",
        "pin": str(10**15 + int(tag[:12], 16)),
    }


def make_vault(values: dict[str, str]) -> Vault:
    """Build a vault holding ``values``."""
    return Vault(
        token=values["token"],
        options={"api_key": values["api_key"], "pin": int(values["pin"])},
        login={"user": "app", "password": values["password"]},
    )


def assert_clean(events: list[Event], values: dict[str, str]) -> None:
    """Check no event carries any of ``values`` anywhere in its JSON."""
    for event in events:
        dumped = event.model_dump_json()
        for value in values.values():
            assert value not in dumped, (event.event, value)


def test_repr_str_and_json_hide_secret_values() -> None:
    """repr, str and model_dump_json of a block never show its secret values."""
    values = secrets()
    vault = make_vault(values)
    for text in (repr(vault), str(vault), vault.model_dump_json()):
        for value in values.values():
            assert value not in text
        assert MASK in text
    assert vault.token.get_secret_value() == values["token"]
    assert vault.options.get_secret_value()["api_key"] == values["api_key"]


def test_secrets_in_an_exception_message_are_masked_in_the_failed_event() -> None:
    """A failed event masks every secret value quoted by the exception message."""
    values = secrets()
    vault = make_vault(values)
    with capture_events() as events, pytest.raises(RuntimeError) as info:
        vault.leak()
    # The caller's own exception is untouched.
    assert values["token"] in str(info.value)
    assert [e.event for e in events] == [
        "block.vault.leak.started",
        "block.vault.leak.failed",
    ]
    assert_clean(events, values)
    message = events[1].payload["error"]["message"]
    assert message == (
        f"denied: token={MASK} api_key={MASK} password={MASK} pin={MASK}"
    )


def test_secrets_returned_by_a_payload_hook_are_masked() -> None:
    """Secret values a payload hook returns are masked in the outcome event."""
    values = secrets()
    vault = make_vault(values)
    with capture_events() as events:
        assert vault.report() == "ok"
    assert [e.event for e in events] == [
        "block.vault.report.started",
        "block.vault.report.succeeded",
    ]
    assert_clean(events, values)
    payload = events[1].payload
    assert payload["token"] == MASK
    assert payload["api_key"] == MASK
    assert payload["password"] == MASK
    assert payload["sentence"] == f"used {MASK} to log in"


def test_secret_dict_returned_by_a_payload_hook_is_masked_numbers_too() -> None:
    """Every SecretDict value a hook returns is masked, the number included."""
    values = secrets()
    vault = make_vault(values)
    with capture_events() as events:
        assert vault.report_options() == "ok"
    assert len(events) == 2
    assert_clean(events, values)
    assert events[1].payload["options"]["api_key"] == MASK
    assert events[1].payload["options"]["pin"] == MASK


def test_secret_assigned_after_construction_is_masked() -> None:
    """A SecretStr assigned to a built block is redacted from then on."""
    values = secrets()
    vault = make_vault(values)
    later = f"later-{uuid.uuid4().hex}"
    vault.token = SecretStr(later)
    with capture_events() as events, pytest.raises(PermissionError):
        vault.use_token()
    assert_clean(events, {**values, "later": later})
    assert events[1].payload["error"]["message"] == f"token {MASK} expired"


def test_plain_string_assigned_to_secret_field_is_masked() -> None:
    """A str assigned to a SecretStr field is validated into a secret and masked."""
    vault = make_vault(secrets())
    later = f"plain-{uuid.uuid4().hex}"
    vault.token = later  # type: ignore[assignment]
    assert isinstance(vault.token, SecretStr)
    with capture_events() as events, pytest.raises(PermissionError):
        vault.use_token()
    assert_clean(events, {"later": later})
    assert MASK in events[1].model_dump_json()


def test_nested_model_assigned_after_construction_is_masked() -> None:
    """A nested model with a secret assigned to a built block is redacted."""
    values = secrets()
    vault = make_vault(values)
    later = f"pw-later-{uuid.uuid4().hex}"
    vault.login = Login(user="ops", password=SecretStr(later))
    with capture_events() as events, pytest.raises(RuntimeError):
        vault.leak()
    assert_clean(events, {**values, "later": later})
    assert f"password={MASK} " in events[1].payload["error"]["message"]


INVALID = [
    ("token", {"token": ["tok-invalid-input-7f3a"]}, "tok-invalid-input-7f3a"),
    ("options", {"options": "opt-invalid-input-9c1e"}, "opt-invalid-input-9c1e"),
    (
        "login.password",
        {"login": {"user": "app", "password": 987654321123}},
        "987654321123",
    ),
]


@pytest.mark.parametrize(
    ("field", "override", "raw"), INVALID, ids=[f for f, _, _ in INVALID]
)
def test_invalid_secret_input_raises_without_echoing_it(
    field: str, override: dict[str, Any], raw: str
) -> None:
    """Invalid secret input raises BlockValidationError naming the field only."""
    data: dict[str, Any] = {
        "token": "t",
        "options": {"api_key": "k"},
        "login": {"user": "app", "password": "p"},
        **override,
    }
    with pytest.raises(BlockValidationError) as info:
        Vault(**data)
    error = info.value
    assert isinstance(error, ValueError)
    assert isinstance(error, BlockError)
    assert field in str(error)
    assert "vault" in str(error)
    assert raw not in str(error)
    assert raw not in repr(error)
    assert raw not in "".join(traceback.format_exception(error))


def test_invalid_secret_assignment_raises_without_echoing_it() -> None:
    """Assigning invalid input to a secret field names the field, not the value."""
    vault = make_vault(secrets())
    raw = "assigned-invalid-input-4b2d"
    with pytest.raises(BlockValidationError) as info:
        vault.options = raw  # type: ignore[assignment]
    assert "options" in str(info.value)
    assert raw not in str(info.value)
    assert raw not in "".join(traceback.format_exception(info.value))


SHORT_SECRET_CHILD = """
from pydantic import SecretStr
from blocks import Block
from emitters.testing import capture_events

class Tiny(Block):
    code: SecretStr
    def run(self) -> None:
        raise ValueError("code is " + self.code.get_secret_value())

with capture_events() as events:
    try:
        Tiny(code="d").run()
    except ValueError:
        pass
print(sorted(events[-1].payload), events[-1].payload["error"]["message"])
"""


def test_a_one_character_secret_does_not_garble_the_sdk_payload_keys() -> None:
    """A one-character secret is refused as a masking key, with a warning naming
    its field: nothing in the event is garbled."""
    import subprocess
    import sys

    # In a child process: a secret "d" registered here would mask every later "d".
    done = subprocess.run(
        [sys.executable, "-c", SHORT_SECRET_CHILD],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "['duration_ms', 'error'] code is d"
    assert "the secret in code of tiny is not masked" in done.stderr
    assert "shorter than 5 characters" in done.stderr
