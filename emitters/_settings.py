"""Every ``EVENTBLOCKS_*`` environment variable, read in one place.

Each variable has one function here that reads it (stripped; empty counts as
unset) and documents it; no other module of ``emitters`` or ``blocks`` reads the
environment for them. Values are read each time a function is called, so a test or
a script can set them before use, except ``EVENTBLOCKS_EVENTS``, which the pipeline
reads once at import.

The Configuration page of the documentation lists them all in one table; a test
keeps that table and this module in step.

The NATS sink (``EVENTBLOCKS_EMITTERS=nats``) reads (see :func:`nats_settings`):

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
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "ENCRYPTION_KEY_VARIABLE",
    "HTTP_HEADERS_VARIABLE",
    "NatsSettings",
    "database_url",
    "emitters_setting",
    "encryption_key",
    "environment_reader",
    "events_off",
    "file_path",
    "flow_run_id",
    "flow_run_name",
    "home",
    "http_headers",
    "http_spool_dir",
    "http_url",
    "max_buffer_bytes",
    "nats_settings",
    "prefect_api_setting",
    "prefect_deployment_name",
]

ENCRYPTION_KEY_VARIABLE = "EVENTBLOCKS_ENCRYPTION_KEY"
HTTP_HEADERS_VARIABLE = "EVENTBLOCKS_HTTP_HEADERS"


def _read(name: str) -> str:
    return os.environ.get(name, "").strip()


DEFAULT_MAX_BUFFER_BYTES = 64 * 1024 * 1024


def home() -> Path:
    """``EVENTBLOCKS_HOME``: the eventblocks home folder (not created here).

    It holds the SQLite database, the encryption key file, and the file and HTTP
    sinks' default paths. Default: ``~/.eventblocks``.
    """
    configured = _read("EVENTBLOCKS_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".eventblocks"


def database_url() -> str:
    """``EVENTBLOCKS_DATABASE_URL``: the database of documents and events.

    Any SQLAlchemy URL, for a team that shares PostgreSQL or MySQL/MariaDB.
    Default: SQLite in the home folder.
    """
    configured = _read("EVENTBLOCKS_DATABASE_URL")
    if configured:
        return configured
    # Built, not formatted: a home with "?", "#" or "%XX" in it is still a path.
    # SQLAlchemy is imported here, not with the package: a program whose events
    # go elsewhere does not load it.
    from sqlalchemy.engine import URL

    path = str(home() / "eventblocks.db")
    return URL.create("sqlite", database=path).render_as_string(hide_password=False)


def max_buffer_bytes() -> int:
    """Return ``EVENTBLOCKS_MAX_BUFFER_BYTES``, or 64 MiB when it is unset.

    A value that is not a positive whole number of bytes is ignored with a
    warning: telemetry settings never stop the program.
    """
    raw = _read("EVENTBLOCKS_MAX_BUFFER_BYTES")
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


def encryption_key() -> str:
    """``EVENTBLOCKS_ENCRYPTION_KEY``: the Fernet key of saved secrets ("" if unset).

    Unset, the key lives in a file in the home folder, made on first save.
    """
    return _read(ENCRYPTION_KEY_VARIABLE)


def events_off() -> bool:
    """``EVENTBLOCKS_EVENTS``: True when it is ``off``, ``0``, ``false`` or ``no``.

    Read once when the pipeline is imported: a process started with events off
    records none, whatever ``configure`` is later given.
    """
    return _read("EVENTBLOCKS_EVENTS").lower() in ("off", "0", "false", "no")


def emitters_setting() -> str:
    """``EVENTBLOCKS_EMITTERS``: the default sinks as written ("" if unset).

    A comma list of sink names (``sql``, ``console``, ``file``, ``http``, ``otel``,
    or ``none``); the pipeline parses it. Unset means ``sql``.
    """
    return _read("EVENTBLOCKS_EMITTERS")


def file_path() -> Path:
    """``EVENTBLOCKS_FILE_PATH``: the file sink's JSON-lines file.

    Default: ``events.jsonl`` in the home folder.
    """
    configured = _read("EVENTBLOCKS_FILE_PATH")
    return Path(configured) if configured else home() / "events.jsonl"


def http_url() -> str:
    """``EVENTBLOCKS_HTTP_URL``: the HTTP sink's endpoint ("" if unset; required)."""
    return _read("EVENTBLOCKS_HTTP_URL")


def http_headers() -> str:
    """``EVENTBLOCKS_HTTP_HEADERS``: the HTTP sink's extra headers as written.

    ``name=value,name=value`` with percent-encoded values, like OpenTelemetry's
    ``OTEL_EXPORTER_OTLP_HEADERS``; the HTTP sink parses it.
    """
    return _read(HTTP_HEADERS_VARIABLE)


def http_spool_dir() -> Path:
    """``EVENTBLOCKS_HTTP_SPOOL_DIR``: the HTTP sink's spool folder.

    Default: ``spool`` in the home folder.
    """
    configured = _read("EVENTBLOCKS_HTTP_SPOOL_DIR")
    return Path(configured).expanduser() if configured else home() / "spool"


def flow_run_id() -> str | None:
    """``EVENTBLOCKS_FLOW_RUN_ID``: the run every event belongs to, or None.

    When unset, Prefect's ``PREFECT__FLOW_RUN_ID`` is used, so events of a flow
    run by Prefect are tagged with its run.
    """
    return _read("EVENTBLOCKS_FLOW_RUN_ID") or _read("PREFECT__FLOW_RUN_ID") or None


def flow_run_name() -> str | None:
    """``EVENTBLOCKS_FLOW_RUN_NAME``: the run's name, or None (the id names it)."""
    return _read("EVENTBLOCKS_FLOW_RUN_NAME") or None


def prefect_deployment_name() -> str | None:
    """``PREFECT__DEPLOYMENT_NAME``: set by Prefect's runner in a deployment's run."""
    return _read("PREFECT__DEPLOYMENT_NAME") or None


def environment_reader(
    names: tuple[str, ...],
) -> tuple[Callable[[Any], Any], tuple[Any, ...], Callable[[Any], str]]:
    """Return ``(get, keys, decode)``: the fastest way to read ``names`` often.

    For a provider that reads an orchestrator's variables on every block call
    (Airflow's ``AIRFLOW_CTX_*``): the environment mapping's own lookup encodes
    the name and raises and catches ``KeyError`` for a missing variable, which
    costs more than a whole block call; its underlying dictionary answers in
    tens of nanoseconds, so that is what ``get(key)`` reads where the platform
    has one (``decode`` turns a found value into text).
    """
    environ: Any = os.environ
    data = getattr(environ, "_data", None)
    encode = getattr(environ, "encodekey", None)
    decode = getattr(environ, "decodevalue", None)
    if isinstance(data, dict) and callable(encode) and callable(decode):
        return data.get, tuple(encode(name) for name in names), decode
    return environ.get, names, str


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
    """Return the NATS sink's settings (``EVENTBLOCKS_NATS_URL`` and the others
    listed in this module's docstring), with their defaults.

    Raises:
        ValueError: ``EVENTBLOCKS_NATS_CREATE_STREAM`` is not a yes/no value.
    """

    def read(name: str, default: str) -> str:
        return _read(name) or default

    create = _read("EVENTBLOCKS_NATS_CREATE_STREAM").lower()
    if create not in _TRUE + _FALSE:
        raise ValueError(
            f"EVENTBLOCKS_NATS_CREATE_STREAM must be true or false, not {create!r}"
        )
    spool = _read("EVENTBLOCKS_NATS_SPOOL_DIR")
    return NatsSettings(
        servers=read("EVENTBLOCKS_NATS_URL", "nats://127.0.0.1:4222"),
        stream=read("EVENTBLOCKS_NATS_STREAM", "EVENTBLOCKS"),
        subject=read("EVENTBLOCKS_NATS_SUBJECT", "eventblocks.events"),
        create_stream=create in _TRUE,
        spool_dir=Path(spool).expanduser() if spool else home() / "nats-spool",
    )


def prefect_api_setting(name: str) -> str | None:
    """One of Prefect's own client settings (``PREFECT_API_URL``,
    ``PREFECT_API_KEY``, ``PREFECT_API_AUTH_STRING``) for the Prefect sink, or None."""
    if name not in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING"):
        raise ValueError(f"{name!r} is not a Prefect API setting")
    return _read(name) or None
