"""Every way a block comes into being registers its secrets; no validation error
quotes its input."""

from __future__ import annotations

import copy
import gc
import pickle
import secrets

import pytest
from pydantic import BaseModel, Field, SecretStr

from blocks import Block, BlockValidationError
from emitters._redact import MASK, redact_text


class Login(BaseModel):
    """A plain pydantic model inside a block."""

    user: str = "u"
    password: SecretStr | None = None
    inner: Login | None = None


class Service(Block):
    """A block with a secret, and a plain model that may hold more."""

    token: SecretStr
    login: Login = Login()
    logins: list[Login] = Field(default_factory=list)
    retries: int = 1


def _value() -> str:
    return f"path-{secrets.token_hex(12)}"


def _masked(value: str) -> bool:
    return redact_text(f"<{value}>") == f"<{MASK}>"


def _service(token: str) -> Service:
    return Service(token=SecretStr(token))


@pytest.mark.parametrize(
    "make",
    [
        lambda v: Service(token=SecretStr(v)),
        lambda v: Service.model_validate({"token": v}),
        lambda v: Service.model_validate_json(f'{{"token": "{v}"}}'),
        lambda v: Service.model_validate_strings({"token": v}),
        lambda v: Service.model_construct(token=SecretStr(v)),
        lambda v: _service("base-" + secrets.token_hex(8)).model_copy(
            update={"token": SecretStr(v)}
        ),
        lambda v: _service(v).model_copy(deep=True),
        lambda v: copy.copy(_service(v)),
        lambda v: copy.deepcopy(_service(v)),
    ],
    ids=[
        "constructor",
        "model_validate",
        "model_validate_json",
        "model_validate_strings",
        "model_construct",
        "model_copy-update",
        "model_copy-deep",
        "copy",
        "deepcopy",
    ],
)
def test_every_way_of_making_a_block_registers(make: object) -> None:
    """The secret is masked while the block made that way lives."""
    value = _value()
    block = make(value)  # type: ignore[operator]
    assert isinstance(block, Service)
    assert _masked(value)
    del block


def test_unpickled_block_registers_its_secrets() -> None:
    """A block unpickled after the original died registers its secrets again."""
    value = _value()
    original = _service(value)
    data = pickle.dumps(original)
    del original
    gc.collect()
    assert not _masked(value)  # released with the block
    restored = pickle.loads(data)
    assert _masked(value)
    assert restored.token.get_secret_value() == value


def test_nested_assignment_registers_at_any_depth() -> None:
    """Assigning inside plain models nested in a block registers the new value."""
    block = Service(
        token=SecretStr(_value()),
        login=Login(inner=Login()),
        logins=[Login()],
    )
    first, second, third, fourth = _value(), _value(), _value(), _value()
    block.login.password = SecretStr(first)
    block.login.inner.password = SecretStr(second)  # type: ignore[union-attr]
    block.logins[0].password = SecretStr(third)
    block.login.inner = Login(password=SecretStr(fourth))
    for value in (first, second, third, fourth):
        assert _masked(value)


class Stored(Block):
    """A block that can be saved."""

    token: SecretStr


def test_load_registers_the_secrets(eventblocks_home: object) -> None:
    """A loaded document's secrets are registered after the saved block died."""
    value = _value()
    block = Stored(token=SecretStr(value))
    block.save("loaded-one")
    del block
    gc.collect()
    loaded = Stored.load("loaded-one")
    assert _masked(value)
    del loaded


@pytest.mark.parametrize(
    "call",
    [
        lambda v: Service(token=SecretStr("t0k3n-abc"), retries=v),
        lambda v: Service.model_validate({"token": "t0k3n-abc", "retries": v}),
        lambda v: Service.model_validate_json(
            f'{{"token": "t0k3n-abc", "retries": "{v}"}}'
        ),
        lambda v: Service.model_validate_json(f'{{"token": "{v}", "retries": }}'),
        lambda v: Service.model_validate_strings({"token": "abcdef", "retries": v}),
    ],
    ids=["constructor", "validate", "validate_json", "bad_json", "strings"],
)
def test_validation_errors_never_quote_input(call: object) -> None:
    """Every entry point raises BlockValidationError naming fields, not values."""
    value = f"input-{secrets.token_hex(10)}"
    with pytest.raises(BlockValidationError) as info:
        call(value)  # type: ignore[operator]
    text = str(info.value)
    assert value not in text
    assert "Invalid service block" in text
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
