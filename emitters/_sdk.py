"""The contract between the two packages: everything ``blocks`` takes from ``emitters``.

``emitters`` is a complete event library on its own; ``blocks`` builds connector
blocks on top of it and needs a few of its internals that are not for users: the
call wrapper it installs on block methods, the pipeline's hooks, the secret
registry (its mask, its encoded forms, the secret-name rule and the log filter),
the URL checker, the shared database engine helpers, small helpers on values and
the settings. They are re-exported here, and ``blocks`` imports no other private
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
from emitters._introspect import iter_leaves, package_version, qualified_name
from emitters._logs import protect_logger
from emitters._observed import INFRA_PREFIX, first_failure, infra_failure
from emitters._pipeline.build import SourceInfo
from emitters._pipeline.calls import PayloadHook, call_wrapper, error_info
from emitters._pipeline.pipeline import (
    EVENTS_OFF_AT_IMPORT,
    drain,
    ensure_configured,
)
from emitters._redact import MASK, redact_text, register_named, secret_forms
from emitters._secret_names import is_secret_name
from emitters._settings import (
    ENCRYPTION_KEY_VARIABLE,
    database_url,
    encryption_key,
    home,
)
from emitters._urls import check_http_url, origin, redact_url

__all__ = [
    "ENCRYPTION_KEY_VARIABLE",
    "EVENTS_OFF_AT_IMPORT",
    "INFRA_PREFIX",
    "MASK",
    "DatabaseURLError",
    "PayloadHook",
    "SourceInfo",
    "call_wrapper",
    "check_http_url",
    "database_url",
    "drain",
    "encryption_key",
    "engine_for",
    "ensure_configured",
    "error_info",
    "first_failure",
    "home",
    "infra_failure",
    "is_secret_name",
    "iter_leaves",
    "mask_url",
    "max_statement_bytes",
    "origin",
    "package_version",
    "prepare",
    "protect_logger",
    "qualified_name",
    "redact_text",
    "redact_url",
    "register_named",
    "run_short_id",
    "secret_forms",
]
