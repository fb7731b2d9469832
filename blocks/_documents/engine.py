"""The document store's engines: the shared engine helpers, with the blocks' errors."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from blocks._errors import BlockStoreError
from emitters._sdk import DatabaseURLError, mask_url, max_statement_bytes
from emitters._sdk import engine_for as _engine_for

__all__ = ["engine_for", "mask_url", "max_statement_bytes"]


def engine_for(url: str) -> Engine:
    """Return the engine for ``url``, created once per process.

    Raises:
        BlockStoreError: The URL is malformed or its driver is not installed.
    """
    try:
        return _engine_for(url)
    except DatabaseURLError as exc:
        raise BlockStoreError(str(exc)) from None
