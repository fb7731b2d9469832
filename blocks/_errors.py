"""The exceptions that ``blocks`` raises.

::

    BlockError(Exception)
    ├── BlockValidationError(BlockError, ValueError)   bad field values; no input echoed
    ├── BlockNotFoundError(BlockError, LookupError)     no document or type by that name
    └── BlockDefinitionError(BlockError, TypeError)     a Block subclass is malformed

Messages are whole sentences naming the block type, the field or the document, and
never carry a secret value.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

__all__ = [
    "BlockDefinitionError",
    "BlockError",
    "BlockNotFoundError",
    "BlockValidationError",
]


class BlockError(Exception):
    """Base class of every error raised by ``blocks``."""


class BlockValidationError(BlockError, ValueError):
    """A block's field values are invalid.

    Attributes:
        block_type: The slug of the block type.
        errors: One ``(field, message)`` pair per problem; input values are left
            out, because they may be secrets.
    """

    def __init__(self, block_type: str, errors: list[tuple[str, str]]) -> None:
        self.block_type = block_type
        self.errors = errors
        details = "; ".join(f"{field}: {msg}" for field, msg in errors)
        super().__init__(f"Invalid {block_type} block: {details}.")

    @classmethod
    def from_pydantic(
        cls, block_type: str, exc: ValidationError
    ) -> BlockValidationError:
        """Summarise a pydantic ``ValidationError`` without its input values."""
        errors: list[tuple[str, str]] = []
        for err in exc.errors(include_input=False, include_url=False):
            loc: tuple[Any, ...] = err.get("loc", ())
            field = ".".join(str(part) for part in loc) or "(block)"
            errors.append((field, str(err.get("msg", "invalid value"))))
        return cls(block_type, errors)


class BlockNotFoundError(BlockError, LookupError):
    """No block document or block type has the name asked for."""


class BlockDefinitionError(BlockError, TypeError):
    """A ``Block`` subclass cannot be used as defined (bad slug, clashing names)."""
