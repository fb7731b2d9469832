"""Sinks ``configure()`` uses when given none: EVENTBLOCKS_EMITTERS, or the store."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from emitters import ConsoleEmitter, configure, emit_event, flush
from emitters._pipeline import pipeline
from emitters._pipeline.pipeline import default_emitters
from emitters.sql import SQLEventStore


def test_the_default_is_the_store_on_the_home_database(
    monkeypatch: pytest.MonkeyPatch, eventblocks_home: Path
) -> None:
    """With EVENTBLOCKS_EMITTERS unset, the one sink is a store on the home database."""
    monkeypatch.delenv("EVENTBLOCKS_EMITTERS", raising=False)
    [store] = default_emitters()
    assert isinstance(store, SQLEventStore)
    assert store.url == f"sqlite:///{eventblocks_home / 'eventblocks.db'}"


def test_the_default_follows_the_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """EVENTBLOCKS_DATABASE_URL moves the default store, as it moves documents."""
    monkeypatch.delenv("EVENTBLOCKS_EMITTERS", raising=False)
    url = "postgresql+psycopg://someone@db.internal/events"
    monkeypatch.setenv("EVENTBLOCKS_DATABASE_URL", url)
    [store] = default_emitters()
    assert isinstance(store, SQLEventStore)
    assert store.url == url


def test_configure_without_emitters_stores_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """configure() with no arguments sends events to the default store."""
    monkeypatch.delenv("EVENTBLOCKS_EMITTERS", raising=False)
    configure()
    emit_event("job.step", {"id": "job.1"}, payload={"n": 1})
    assert flush(10)
    [event] = SQLEventStore().events(name="job.step")
    assert event.payload == {"n": 1}


@pytest.mark.parametrize(
    ("names", "kinds"),
    [
        ("sql,console", [SQLEventStore, ConsoleEmitter]),
        (" Console , SQL ", [ConsoleEmitter, SQLEventStore]),
        ("console", [ConsoleEmitter]),
        ("none", []),
    ],
)
def test_emitters_named_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, names: str, kinds: list[type]
) -> None:
    """EVENTBLOCKS_EMITTERS lists the sinks, in order; none means no sink."""
    monkeypatch.setenv("EVENTBLOCKS_EMITTERS", names)
    assert [type(e) for e in default_emitters()] == kinds


def test_an_unknown_or_unusable_sink_is_skipped_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A misspelt name, or http without its URL, is skipped and logged, not raised."""
    monkeypatch.setenv("EVENTBLOCKS_EMITTERS", "consle,http,console")
    monkeypatch.delenv("EVENTBLOCKS_HTTP_URL", raising=False)
    with caplog.at_level(logging.WARNING, logger="emitters"):
        sinks = default_emitters()
    assert [type(e) for e in sinks] == [ConsoleEmitter]
    text = caplog.text
    assert "'consle'" in text
    # Every installed sink name is offered (nats too once the metadata has it).
    known = sorted(pipeline.sink_factories())
    assert {"console", "file", "http", "otel", "sql"} <= set(known)
    assert f"known: {', '.join(known)}, or none" in text
    assert "EVENTBLOCKS_HTTP_URL" in text
