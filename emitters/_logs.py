"""One filter that masks secrets in what the libraries the SDK drives log.

httpx logs each request's URL at INFO (with its query, which may carry a token);
other libraries log what they send and receive at DEBUG. :func:`protect_logger`
puts one :class:`MaskingFilter` on a library's logger: URL arguments are shown
with their user-info and secret query values masked, and every registered secret
in the formatted message is masked.
"""

from __future__ import annotations

import logging

import httpx

from emitters._redact import has_secrets, redact_text
from emitters._urls import redact_url

__all__ = ["MaskingFilter", "protect_logger"]


class MaskingFilter(logging.Filter):
    """Masks secret URL parts and registered secrets in the records it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message if it would show a secret; keep the record."""
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, httpx.URL) for a in args):
            record.args = tuple(
                redact_url(a) if isinstance(a, httpx.URL) else a for a in args
            )
        if has_secrets():
            message = record.getMessage()
            redacted = redact_text(message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


def protect_logger(name: str) -> None:
    """Install :class:`MaskingFilter` on the logger called ``name``, once."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, MaskingFilter) for f in logger.filters):
        # First in line, so that no other filter sees the unmasked record.
        logger.filters.insert(0, MaskingFilter())
