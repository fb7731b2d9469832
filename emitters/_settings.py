"""Where eventblocks keeps its files and its database, from the environment.

``EVENTBLOCKS_HOME`` (default ``~/.eventblocks``) holds the SQLite database and the
encryption key file; ``EVENTBLOCKS_DATABASE_URL`` (any SQLAlchemy URL) replaces the
SQLite database, for a team that shares PostgreSQL or MySQL/MariaDB. Both are read
each time, so a test or a script can set them before use.

The NATS sink (``EVENTBLOCKS_EMITTERS=nats``) reads:

- ``EVENTBLOCKS_NATS_URL``: the servers, comma-separated (default
  ``nats://127.0.0.1:4222``);
- ``EVENTBLOCKS_NATS_STREAM``: the JetStream stream (default ``EVENTBLOCKS``);
- ``EVENTBLOCKS_NATS_SUBJECT``: the subject (default ``eventblocks.events``);
- ``EVENTBLOCKS_NATS_CREATE_STREAM``: ``true`` creates the stream if it is missing
  (default ``false``);
- ``EVENTBLOCKS_NATS_SPOOL_DIR``: the spool folder (default ``nats-spool`` in the
  home folder).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

__all__ = ["NatsSettings", "database_url", "home", "max_buffer_bytes", "nats_settings"]

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
    return f"sqlite:///{home() / 'eventblocks.db'}"


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


class NatsSettings(NamedTuple):
    """The NATS sink's settings from the environment (see the module docstring)."""

    servers: str
    stream: str
    subject: str
    create_stream: bool
    spool_dir: Path


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def nats_settings() -> NatsSettings:
    """Return the ``EVENTBLOCKS_NATS_*`` settings, with their defaults.

    Raises:
        ValueError: ``EVENTBLOCKS_NATS_CREATE_STREAM`` is not a yes/no value.
    """

    def read(name: str, default: str) -> str:
        return os.environ.get(name, "").strip() or default

    create = os.environ.get("EVENTBLOCKS_NATS_CREATE_STREAM", "").strip().lower()
    if create not in _TRUE + _FALSE:
        raise ValueError(
            f"EVENTBLOCKS_NATS_CREATE_STREAM must be true or false, not {create!r}"
        )
    spool = os.environ.get("EVENTBLOCKS_NATS_SPOOL_DIR", "").strip()
    return NatsSettings(
        servers=read("EVENTBLOCKS_NATS_URL", "nats://127.0.0.1:4222"),
        stream=read("EVENTBLOCKS_NATS_STREAM", "EVENTBLOCKS"),
        subject=read("EVENTBLOCKS_NATS_SUBJECT", "eventblocks.events"),
        create_stream=create in _TRUE,
        spool_dir=Path(spool).expanduser() if spool else home() / "nats-spool",
    )
