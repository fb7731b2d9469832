"""eventblocks' blocks: typed connector objects whose every call is observable.

Subclass :class:`Block`, declare fields (secrets as ``pydantic.SecretStr`` or
:class:`SecretDict`) and write methods; each public method call emits ``started``
and ``succeeded``/``failed`` events through :mod:`emitters`.
"""

from blocks._block import Block
from blocks._errors import (
    BlockDefinitionError,
    BlockError,
    BlockNotFoundError,
    BlockValidationError,
)
from blocks._instrument import event_payload, is_instrumented, no_events
from blocks._secrets import SecretDict

__all__ = [
    "Block",
    "BlockDefinitionError",
    "BlockError",
    "BlockNotFoundError",
    "BlockValidationError",
    "SecretDict",
    "event_payload",
    "is_instrumented",
    "no_events",
]
