"""The exceptions that ``blocks`` raises.

::

    BlockError(Exception)
    ├── BlockValidationError(BlockError, ValueError)  bad field values
    ├── BlockNotFoundError(BlockError, LookupError)    no such document or type
    ├── BlockExistsError(BlockError, FileExistsError)  the document name is taken
    ├── BlockDecryptionError(BlockError)               no key, or the wrong key
    ├── BlockStoreError(BlockError)                    the database cannot be used
    └── BlockDefinitionError(BlockError, TypeError)    a malformed Block subclass,
                                                       or two claiming one slug

Messages are whole sentences naming the block type, the field or the document, and
never carry a secret value.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

__all__ = [
    "BlockDecryptionError",
    "BlockDefinitionError",
    "BlockError",
    "BlockExistsError",
    "BlockNotFoundError",
    "BlockStoreError",
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

    def __init__(
        self,
        block_type: str,
        errors: list[tuple[str, str]],
        *,
        document: str | None = None,
    ) -> None:
        self.block_type = block_type
        self.errors = errors
        self.document = document
        details = "; ".join(f"{field}: {msg}" for field, msg in errors)
        if document is None:
            message = f"Invalid {block_type} block: {details}."
        else:
            message = (
                f"Document {document} no longer fits its class: {details}. Save it "
                "again with the current fields, or restore the class it was saved with."
            )
        super().__init__(message)

    @classmethod
    def from_pydantic(
        cls, block_type: str, exc: ValidationError, *, document: str | None = None
    ) -> BlockValidationError:
        """Summarise a pydantic ``ValidationError`` without its input values."""
        errors: list[tuple[str, str]] = []
        for err in exc.errors(include_input=False, include_url=False):
            loc: tuple[Any, ...] = err.get("loc", ())
            field = ".".join(str(part) for part in loc) or "(block)"
            errors.append((field, str(err.get("msg", "invalid value"))))
        return cls(block_type, errors, document=document)


class BlockNotFoundError(BlockError, LookupError):
    """No block document or block type has the name asked for."""


class BlockExistsError(BlockError, FileExistsError):
    """A document with that name exists and ``overwrite`` was False."""


class BlockDecryptionError(BlockError):
    """A secret field cannot be decrypted: no key, or not the key it was saved with."""


class BlockStoreError(BlockError):
    """The document database cannot be reached or used.

    Attributes:
        transient: True when the database aborted the transaction to break a
            deadlock or a serialization conflict; running it again may succeed.
    """

    transient: bool = False


class BlockDefinitionError(BlockError, TypeError):
    """A ``Block`` subclass cannot be used as defined (bad slug, clashing slugs)."""
