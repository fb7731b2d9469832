"""Where eventblocks keeps its files and its database, from the environment.

``EVENTBLOCKS_HOME`` (default ``~/.eventblocks``) holds the SQLite database and the
encryption key file; ``EVENTBLOCKS_DATABASE_URL`` (any SQLAlchemy URL) replaces the
SQLite database, for a team that shares PostgreSQL or MySQL/MariaDB. Both are read
each time, so a test or a script can set them before use.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import URL

__all__ = ["database_url", "home"]


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
