"""One masking step for what the libraries the SDK drives log.

httpx logs each request's URL at INFO (with its query, which may carry a token);
httpcore, botocore and urllib3 log what they send and receive at DEBUG;
``sqlalchemy.engine`` logs SQL text and parameters at INFO (``echo=True``); the
database drivers log connection details. Every record of those loggers (and of
their children, such as ``httpcore.http11`` or ``sqlalchemy.engine.Engine``) is
masked when it is made, by one log-record factory installed once: before any
filter or handler sees it, URL arguments are shown with their user-info and
secret query values masked, and every registered secret in the message and in
the formatted traceback is masked.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

import httpx

from emitters._redact import has_secrets, redact_text
from emitters._urls import redact_url

__all__ = [
    "LIBRARY_LOGGERS",
    "mask_record",
    "protect_library_logs",
    "protect_logger",
]

# The loggers of the libraries the SDK drives; their children are covered too.
LIBRARY_LOGGERS = (
    "httpx",
    "httpcore",
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "psycopg",
    "pymysql",
    "asyncpg",
    "aiosqlite",
)
_DECISIONS_MAX = 10_000

_lock = threading.Lock()
_protected: set[str] = set(LIBRARY_LOGGERS)
_decisions: dict[str, bool] = {}
_installed = False
_formatter = logging.Formatter()


def _is_protected(name: str) -> bool:
    decided = _decisions.get(name)
    if decided is None:
        decided = any(name == p or name.startswith(f"{p}.") for p in _protected)
        if len(_decisions) >= _DECISIONS_MAX:
            _decisions.clear()
        _decisions[name] = decided
    return decided


def mask_record(record: logging.LogRecord) -> None:
    """Mask secret URL parts and registered secrets in ``record``, in place."""
    args = record.args
    if isinstance(args, tuple) and any(isinstance(a, httpx.URL) for a in args):
        record.args = tuple(
            redact_url(a) if isinstance(a, httpx.URL) else a for a in args
        )
    if not has_secrets():
        return
    message = record.getMessage()
    redacted = redact_text(message)
    if redacted != message:
        record.msg, record.args = redacted, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact_text(_formatter.formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)


def protect_library_logs() -> None:
    """Install the masking log-record factory, once per process.

    It wraps whatever factory is in place, and masks only the records of the
    protected loggers: the SDK never rewrites your own loggers' records.
    """
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if _is_protected(record.name):
                # A record that cannot be formatted stays as it is.
                with contextlib.suppress(Exception):
                    mask_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def protect_logger(name: str) -> None:
    """Mask the records of the logger called ``name`` and of its children too."""
    with _lock:
        if name not in _protected:
            _protected.add(name)
            _decisions.clear()
    protect_library_logs()
