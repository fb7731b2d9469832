"""Where eventblocks keeps its files and its database, from the environment.

``EVENTBLOCKS_HOME`` (default ``~/.eventblocks``) holds the SQLite database and the
encryption key file; ``EVENTBLOCKS_DATABASE_URL`` (any SQLAlchemy URL) replaces the
SQLite database, for a team that shares PostgreSQL or MySQL/MariaDB. Both are read
each time, so a test or a script can set them before use.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy.engine import URL

__all__ = ["database_url", "home", "max_buffer_bytes"]

DEFAULT_MAX_BUFFER_BYTES = 64 * 1024 * 1024


def home() -> Path:
    """Return the eventblocks home folder (not created here)."""
    configured = os.environ.get("EVENTBLOCKS_HOME", "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".eventblocks"


def database_url() -> str:
    """Return the database URL: ``EVENTBLOCKS_DATABASE_URL`` or SQLite in the home."""
    configured = os.environ.get("EVENTBLOCKS_DATABASE_URL", "").strip()
    if configured:
        return configured
    # Built, not formatted: a home with "?", "#" or "%XX" in it is still a path.
    path = str(home() / "eventblocks.db")
    return URL.create("sqlite", database=path).render_as_string(hide_password=False)


def max_buffer_bytes() -> int:
    """Return ``EVENTBLOCKS_MAX_BUFFER_BYTES``, or 64 MiB when it is unset.

    A value that is not a positive whole number of bytes is ignored with a
    warning: telemetry settings never stop the program.
    """
    raw = os.environ.get("EVENTBLOCKS_MAX_BUFFER_BYTES", "").strip()
    if not raw:
        return DEFAULT_MAX_BUFFER_BYTES
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        logging.getLogger("emitters").warning(
            "EVENTBLOCKS_MAX_BUFFER_BYTES=%r is not a positive number of bytes; "
            "using %d",
            raw,
            DEFAULT_MAX_BUFFER_BYTES,
        )
        return DEFAULT_MAX_BUFFER_BYTES
    return value
