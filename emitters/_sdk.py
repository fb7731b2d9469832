"""The contract between the two packages: everything ``blocks`` takes from ``emitters``.

``emitters`` is a complete event library on its own; ``blocks`` builds connector
blocks on top of it and needs a few of its internals that are not for users: the
call wrapper it installs on block methods, the pipeline's hooks, the secret
registry's mask and log filter, the shared database engine helpers and the
settings. They are re-exported here, and ``blocks`` imports no other private
module of ``emitters`` (a test enforces it), so a change behind this module that
keeps these names cannot break ``blocks``, and a change to one of them is a
change to this contract.
"""

from emitters._engine import (
    DatabaseURLError,
    engine_for,
    mask_url,
    max_statement_bytes,
    prepare,
)
from emitters._ids import run_short_id
from emitters._pipeline.build import SourceInfo
from emitters._pipeline.calls import PayloadHook, call_wrapper, error_info
from emitters._pipeline.pipeline import (
    EVENTS_OFF_AT_IMPORT,
    drain,
    ensure_configured,
)
from emitters._redact import MASK, protect_logger, redact_text
from emitters._settings import database_url, home

__all__ = [
    "EVENTS_OFF_AT_IMPORT",
    "MASK",
    "DatabaseURLError",
    "PayloadHook",
    "SourceInfo",
    "call_wrapper",
    "database_url",
    "drain",
    "engine_for",
    "ensure_configured",
    "error_info",
    "home",
    "mask_url",
    "max_statement_bytes",
    "prepare",
    "protect_logger",
    "redact_text",
    "run_short_id",
]
