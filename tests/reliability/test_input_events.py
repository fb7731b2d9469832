"""Bad input, events: any event survives JSON and every sink, and one odd event
never costs the others of its batch.

Property-based (hypothesis): events with arbitrary text, labels, time zones and
nested JSON payloads round-trip through ``model_dump_json``/``model_validate_json``;
events given to ``emit_event`` reach the memory, file and SQL sinks unchanged; and
the SQL store reads back exactly what it wrote, on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from blocks import Block, event_payload
from emitters import (
    Event,
    MemoryEmitter,
    RelatedResource,
    Resource,
    configure,
    emit_event,
    flow_run,
    flush,
    stats,
)
from emitters.file import FileEmitter
from emitters.sql import SQLEventStore

# Text of every kind but lone surrogates, which UTF-8 cannot encode, and NUL, which
# PostgreSQL cannot hold in a text column (each a case of its own below), kept short
# enough for every indexed column.
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
TEXT = st.text(CHARS, max_size=30)
NONEMPTY = st.text(CHARS, min_size=1, max_size=30).filter(str.strip)
LABELS = st.dictionaries(TEXT, TEXT, max_size=3)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(CHARS, max_size=30)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(CHARS, max_size=10), inner, max_size=4)
    ),
    max_leaves=16,
)
PAYLOADS = st.dictionaries(st.text(CHARS, max_size=12), JSON_VALUES, max_size=5)
ZONES = st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59),
        max_value=timedelta(hours=23, minutes=59),
    ),
)
MOMENTS = st.datetimes(
    min_value=datetime(1971, 1, 2), max_value=datetime(9000, 1, 1), timezones=ZONES
)
RESOURCES = st.builds(Resource, id=NONEMPTY, name=st.none() | TEXT, labels=LABELS)
RELATED = st.builds(
    RelatedResource, id=NONEMPTY, role=NONEMPTY, name=st.none() | TEXT, labels=LABELS
)
# Tests that go through threads and databases report a failing example as found:
# shrinking it would take minutes.
NO_SHRINK = (Phase.explicit, Phase.generate)

EVENTS = st.builds(
    Event,
    id=st.uuids(),
    occurred=MOMENTS,
    event=NONEMPTY,
    resource=RESOURCES,
    related=st.lists(RELATED, max_size=3).map(tuple),
    payload=PAYLOADS,
    follows=st.none() | st.uuids(),
)


@given(EVENTS)
@settings(max_examples=200)
def test_any_event_round_trips_through_json(event: Event) -> None:
    """model_dump_json then model_validate_json gives back an equal event."""
    text = event.model_dump_json()
    text.encode("utf-8")  # valid UTF-8, whatever the input
    back = Event.model_validate_json(text)
    assert back == event
    assert back.occurred.tzinfo is not None
    assert back.occurred.utcoffset() == timedelta(0)
    assert back.payload == event.payload
    cloud = json.loads(json.dumps(event.to_cloudevent()))
    assert cloud["id"] == str(event.id)
    assert cloud["data"]["payload"] == json.loads(json.dumps(event.payload))


def test_event_json_rejects_a_naive_time_naming_the_field() -> None:
    """JSON with a time that has no zone is refused, and the error names occurred."""
    event = emit_event("probe", {"id": "r"})
    naive = json.loads(event.model_dump_json())
    naive["occurred"] = "2024-06-01T12:00:00"
    with pytest.raises(ValueError, match="occurred"):
        Event.model_validate_json(json.dumps(naive))


@pytest.fixture
def sinks(tmp_path: Path) -> tuple[MemoryEmitter, FileEmitter, SQLEventStore]:
    """A memory sink, a file sink and a SQLite store, configured together."""
    memory = MemoryEmitter()
    file = FileEmitter(tmp_path / "events.jsonl")
    store = SQLEventStore(f"sqlite:///{tmp_path / 'events.db'}")
    configure(emitters=[memory, file, store])
    return memory, file, store


@given(
    st.lists(
        st.tuples(NONEMPTY, RESOURCES, st.lists(RELATED, max_size=2), PAYLOADS),
        min_size=1,
        max_size=4,
    ),
    st.none() | NONEMPTY,
)
@settings(max_examples=60, phases=NO_SHRINK)
def test_emitted_events_reach_every_sink_unchanged(
    sinks: tuple[MemoryEmitter, FileEmitter, SQLEventStore],
    calls: list[tuple[str, Resource, list[RelatedResource], dict[str, Any]]],
    run_id: str | None,
) -> None:
    """Whatever emit_event accepts, the memory, file and SQL sinks hold it equal."""
    memory, file, store = sinks
    failed_before = sum(stats()["failed"].values())
    emitted: list[Event] = []
    scope = flow_run("odd", id=run_id) if run_id else contextlib.nullcontext()
    with scope:
        for name, resource, related, payload in calls:
            # Round-trip the payload first: emit_event keeps a tuple a tuple, and
            # JSON cannot tell it from a list.
            payload = json.loads(json.dumps(payload))
            emitted.append(emit_event(name, resource, related=related, payload=payload))
    assert flush(10)
    assert memory.events[-len(emitted) :] == emitted
    # Lines end at "\n" only: str.splitlines() would also split at U+2028 and
    # U+0085, which JSON strings may hold unescaped.
    lines = file.path.read_bytes().split(b"\n")[:-1]
    from_file = [Event.model_validate_json(line) for line in lines[-len(emitted) :]]
    assert from_file == emitted
    stored = {e.id: e for e in store.events(limit=None)}
    assert [stored[e.id] for e in emitted] == emitted
    assert sum(stats()["failed"].values()) == failed_before


@given(st.lists(EVENTS, min_size=1, max_size=8, unique_by=lambda e: e.id))
@settings(max_examples=25, phases=NO_SHRINK)
def test_the_store_reads_back_what_it_wrote_on_every_backend(
    store_url: str, events: list[Event]
) -> None:
    """A batch written to the SQL store comes back equal, on every database."""
    store = SQLEventStore(store_url)
    # Fresh ids: examples share the database, and an id stored already is skipped.
    events = [e.model_copy(update={"id": uuid.uuid4()}) for e in events]
    store.emit_batch(events)
    stored = {e.id: e for e in store.events(limit=None)}
    for event in events:
        assert stored[event.id] == event


# -- one odd event must not cost the others of its batch ---------------------------

UNDECODABLE = os.fsdecode(b"caf\xe9.csv")  # a file name that is not UTF-8


def _path_payload(arguments: Any, _outcome: object) -> dict[str, str]:
    return {"path": arguments.arguments["path"]}


class OddFiles(Block):
    """A block that reports the path it was given."""

    @event_payload(_path_payload)
    def touch(self, path: str) -> str:
        """Pretend to touch ``path``."""
        return path


def _emit_unencodable(how: str) -> None:
    if how == "emit_event":
        emit_event("file.seen", {"id": "folder.inbox"}, payload={"path": UNDECODABLE})
    else:
        OddFiles().touch(UNDECODABLE)


@pytest.mark.parametrize("how", ["emit_event", "payload_hook"])
def test_a_file_name_that_is_not_utf8_does_not_cost_its_batch(
    tmp_path: Path, how: str
) -> None:
    """A lone surrogate (an undecodable file name) loses no other event of a batch."""
    file = FileEmitter(tmp_path / "events.jsonl")
    configure(emitters=[file])
    failed_before = stats()["failed"].get("FileEmitter", 0)
    good = [emit_event("tick", {"id": "clock"}, payload={"i": i}) for i in range(5)]
    with contextlib.suppress(ValueError):  # refusing it at the door is fine too
        _emit_unencodable(how)
    good += [emit_event("tick", {"id": "clock"}, payload={"i": i}) for i in range(5)]
    assert flush(10)
    data = file.path.read_bytes() if file.path.exists() else b""
    written = {Event.model_validate_json(line).id for line in data.split(b"\n")[:-1]}
    assert {e.id for e in good} <= written
    assert stats()["failed"]["FileEmitter"] == failed_before


class Opener(Block):
    """A block whose calls fail on the file name they were given."""

    def open(self, path: str) -> None:
        """Fail with the file name in the message."""
        raise OSError(f"cannot open {path}")


def test_undecodable_text_is_kept_readable_in_events() -> None:
    """Lone surrogates in any text of an event become escapes of the original bytes."""
    sink = MemoryEmitter()
    configure(emitters=[sink])
    given = emit_event(
        f"seen.{UNDECODABLE}",
        {"id": f"folder.{UNDECODABLE}", "labels": {UNDECODABLE: "\ud800"}},
        payload={"path": UNDECODABLE, UNDECODABLE: ["\udfff"]},
    )
    assert given.event == "seen.caf\\xe9.csv"
    assert given.resource.id == "folder.caf\\xe9.csv"
    assert given.resource.labels == {"caf\\xe9.csv": "\\ud800"}
    assert given.payload == {"path": "caf\\xe9.csv", "caf\\xe9.csv": ["\\udfff"]}
    OddFiles().touch(UNDECODABLE)
    with pytest.raises(OSError, match="cannot open"):
        Opener().open(UNDECODABLE)
    assert flush(10)
    touched = [e for e in sink.events if e.event.endswith("touch.succeeded")]
    assert touched[0].payload["path"] == "caf\\xe9.csv"
    failed = [e for e in sink.events if e.event.endswith("open.failed")]
    assert failed[0].payload["error"]["message"] == "cannot open caf\\xe9.csv"
    for event in sink.events:
        event.model_dump_json().encode()  # every event encodes as UTF-8


ODD_EVENTS: dict[str, dict[str, Any]] = {
    "event name of 300 characters": {"event": "e" * 300},
    "resource id of 300 characters": {"resource": {"id": "r" * 300}},
    "resource name of 300 characters": {"resource": {"id": "r", "name": "n" * 300}},
    "flow run id of 100 characters": {"run_id": "f" * 100},
    "NUL in the resource id": {"resource": {"id": "inbox\x00"}},
    "payload of 70 kB": {"payload": {"rows": ["x" * 70] * 1000}},
}


@pytest.mark.parametrize("case", list(ODD_EVENTS))
def test_an_odd_event_does_not_cost_its_batch_in_the_store(
    store_url: str, case: str
) -> None:
    """An event the database cannot take loses no other event of its batch."""
    store = SQLEventStore(store_url)
    configure(emitters=[store])
    spec = dict(ODD_EVENTS[case])
    run_id = spec.pop("run_id", None)
    good = [emit_event("tick", {"id": "clock"}, payload={"i": i}) for i in range(5)]
    with contextlib.suppress(ValueError):  # refusing it at the door is fine too
        scope = flow_run("odd", id=run_id) if run_id else contextlib.nullcontext()
        with scope:
            emit_event(
                spec.get("event", "odd.event"),
                spec.get("resource", {"id": "odd"}),
                payload=spec.get("payload"),
            )
    good += [emit_event("tick", {"id": "clock"}, payload={"i": i}) for i in range(5)]
    assert flush(20)
    stored = {e.id for e in store.events(name="tick", limit=None)}
    assert {e.id for e in good} <= stored


def test_times_at_the_edges_of_the_range_survive_the_store(tmp_path: Path) -> None:
    """Times at the edges of the range survive the store's integer microseconds."""
    store = SQLEventStore(f"sqlite:///{tmp_path / 'edges.db'}")
    edges = [datetime(1971, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)]
    events = [
        Event.model_validate(
            {
                "id": emit_event("x", {"id": "r"}).id,
                "occurred": moment,
                "event": "edge",
                "resource": {"id": "r"},
            }
        )
        for moment in edges
    ]
    store.emit_batch(events)
    assert [e.occurred for e in store.events(limit=None)] == edges
