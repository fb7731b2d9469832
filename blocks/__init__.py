"""eventblocks' blocks: typed connector objects whose every call is observable.

Subclass :class:`Block`, declare fields (secrets as ``pydantic.SecretStr`` or
:class:`SecretDict`) and write methods; each public method call emits ``started``
and ``succeeded``/``failed`` events through :mod:`emitters`.
"""

from blocks._block import Block
from blocks._documents.operations import DocumentInfo
from blocks._documents.store import DocumentStore
from blocks._errors import (
    BlockDecryptionError,
    BlockDefinitionError,
    BlockError,
    BlockExistsError,
    BlockNotFoundError,
    BlockStoreError,
    BlockValidationError,
)
from blocks._instrument import event_payload, is_instrumented, no_events
from blocks._registry import (
    block_class,
    register_file,
    register_module,
    registered_types,
)
from blocks._secrets import SecretDict

__all__ = [
    "Block",
    "BlockDecryptionError",
    "BlockDefinitionError",
    "BlockError",
    "BlockExistsError",
    "BlockNotFoundError",
    "BlockStoreError",
    "BlockValidationError",
    "DocumentInfo",
    "DocumentStore",
    "SecretDict",
    "block_class",
    "event_payload",
    "is_instrumented",
    "no_events",
    "register_file",
    "register_module",
    "registered_types",
]
