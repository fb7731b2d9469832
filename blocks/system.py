"""The simple blocks every registry keeps: a secret, a JSON value, a string.

Save a value once under a name, load it in any flow. Each ``get()`` call emits
events like any block method; a :class:`Secret`'s value never appears in them, nor
in its ``repr`` or its stored document (it is encrypted at rest).

Example:
    >>> from blocks.system import Secret
    >>> Secret(value="tok-123")
    Secret(value=SecretStr('**********'))
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import SecretStr, field_validator

from blocks._block import Block

__all__ = ["JSON", "Secret", "String"]


class Secret(Block):
    """A secret string: an API token, a password, a connection string.

    ``get()`` returns the value. It is registered for redaction when the block is
    built or loaded, so it never shows in an event, even when code that received it
    puts it in an exception message.

    Attributes:
        value: The secret.
    """

    block_type_slug: ClassVar[str] = "secret"

    value: SecretStr

    def get(self) -> str:
        """Return the secret value."""
        return self.value.get_secret_value()


class JSON(Block):
    """Any JSON value: an object, a list, a string, a number, true, false, null.

    Attributes:
        value: The value; it must survive ``json.dumps`` (no NaN, no infinities).
    """

    block_type_slug: ClassVar[str] = "json"

    value: Any

    @field_validator("value")
    @classmethod
    def _json_value(cls, value: Any) -> Any:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"must be a JSON value ({exc})") from None
        return value

    def get(self) -> Any:
        """Return the value."""
        return self.value


class String(Block):
    """A string: a bucket name, a region, a channel.

    Attributes:
        value: The string.
    """

    block_type_slug: ClassVar[str] = "string"

    value: str

    def get(self) -> str:
        """Return the string."""
        return self.value
