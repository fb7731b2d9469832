"""One masking step covers the loggers of every library the SDK drives."""

from __future__ import annotations

import logging
import secrets

import pytest
import sqlalchemy as sa

from emitters import register_secret
from emitters._logs import LIBRARY_LOGGERS, protect_library_logs

MASK = "**********"


def _secret() -> str:
    value = f"log-{secrets.token_hex(10)}"
    register_secret(value)
    return value


@pytest.mark.parametrize(
    "name",
    [
        "httpx",
        "httpcore.http11",
        "httpcore.connection",
        "botocore.endpoint",
        "urllib3.connectionpool",
        "sqlalchemy.engine.Engine",
        "psycopg",
        "psycopg.pool",
        "pymysql",
        "s3transfer.tasks",
    ],
)
def test_library_records_are_masked_before_any_handler(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Message, arguments and traceback of a library record carry no secret."""
    value = _secret()
    with caplog.at_level(logging.DEBUG, logger=name):
        logger = logging.getLogger(name)
        logger.debug("headers %r", [(b"Location", f"/x?api_key={value}".encode())])
        try:
            raise ValueError(f"failed with {value}")
        except ValueError:
            logger.exception("request failed")
    assert value not in caplog.text
    assert MASK in caplog.text
    assert any(r.name == name for r in caplog.records)


def test_other_loggers_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    """The SDK never rewrites the records of the application's own loggers."""
    value = _secret()
    with caplog.at_level(logging.INFO, logger="my.app"):
        logging.getLogger("my.app").info("own %s", value)
    assert value in caplog.text


def test_sqlalchemy_echo_logs_no_registered_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """echo=True logs SQL text with a registered secret inlined: it is masked."""
    value = _secret()
    engine = sa.create_engine("sqlite://", echo=True)
    try:
        with (
            caplog.at_level(logging.INFO, logger="sqlalchemy.engine"),
            engine.connect() as conn,
        ):
            conn.execute(sa.text(f"SELECT '{value}' AS password"))
            conn.execute(sa.text("SELECT :p"), {"p": value})
    finally:
        engine.dispose()
    assert "SELECT" in caplog.text
    assert value not in caplog.text


def test_installed_once() -> None:
    """The record factory is installed once and covers every library logger."""
    protect_library_logs()
    factory = logging.getLogRecordFactory()
    protect_library_logs()
    assert logging.getLogRecordFactory() is factory
    assert {"httpx", "httpcore", "botocore", "urllib3", "sqlalchemy.engine"} <= set(
        LIBRARY_LOGGERS
    )
    assert {"psycopg", "pymysql"} <= set(LIBRARY_LOGGERS)
