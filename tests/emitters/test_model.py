"""The event model: validation, immutability, JSON, adapters and UUIDv7 ids."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest

from emitters import (
    Event,
    MemoryEmitter,
    RelatedResource,
    Resource,
    configure,
    emit_event,
    flow_run,
    flush,
    task_run,
)
from emitters._ids import IdSequence, new_uuid7, uuid7_from_ns
from emitters._pipeline.build import SourceInfo
from emitters._pipeline.calls import call_wrapper
from emitters.testing import capture_events


def _event_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": new_uuid7(),
        "occurred": datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC),
        "event": "warehouse.refreshed",
        "resource": {"id": "warehouse.main", "name": "main", "labels": {"env": "p"}},
        "related": [
            {"id": "flow-run.42", "role": "flow-run", "name": "nightly"},
            {"id": "block-type.warehouse", "role": "block-type"},
        ],
        "payload": {"rows": 3, "ratio": 0.25, "tags": ["a", "b"], "nested": {"x": 1}},
        "follows": uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057"),
    }
    data.update(overrides)
    return data


def _error_fields(exc: pydantic.ValidationError) -> set[str]:
    return {str(err["loc"][0]) for err in exc.errors() if err["loc"]}


def _assert_round_trip(event: Event) -> None:
    text = event.model_dump_json()
    again = Event.model_validate_json(text)
    assert again == event
    assert again.model_dump_json() == text
    assert again.model_dump() == event.model_dump()


class _Source:
    """A minimal object whose method calls the pipeline records."""

    def __init__(self) -> None:
        self._info = SourceInfo(
            prefix="thing.widget",
            resource=Resource(id="thing.widget", name="w", labels={"k": "v"}),
            related=(RelatedResource(id="thing-type.widget", role="thing-type"),),
        )

    def __eventblocks_source__(self) -> SourceInfo:
        return self._info


def _call_recorded(fail: bool) -> None:
    def work(self: _Source) -> int:
        if fail:
            raise KeyError("missing")
        return 1

    wrapper = call_wrapper(work)
    source = _Source()
    if fail:
        with pytest.raises(KeyError):
            wrapper(lambda: work(source), source, (), {})
    else:
        wrapper(lambda: work(source), source, (), {})


# -- validation ---------------------------------------------------------------


def test_valid_event_builds_from_plain_data() -> None:
    """A complete mapping validates into an Event with nested model instances."""
    event = Event.model_validate(_event_data())
    assert isinstance(event.resource, Resource)
    assert all(isinstance(r, RelatedResource) for r in event.related)
    assert isinstance(event.related, tuple)
    assert event.related_by_role("flow-run")[0].name == "nightly"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "not-a-uuid"),
        ("occurred", "yesterday"),
        ("event", ""),
        ("event", 5),
        ("resource", {"name": "no id"}),
        ("related", [{"id": "x"}]),
        ("payload", ["not", "a", "dict"]),
        ("follows", "nope"),
    ],
)
def test_event_validation_error_names_the_field(field: str, value: Any) -> None:
    """An invalid field makes Event validation fail with an error located at it."""
    with pytest.raises(pydantic.ValidationError) as info:
        Event.model_validate(_event_data(**{field: value}))
    assert field in _error_fields(info.value)
    assert field in str(info.value)


def test_event_rejects_unknown_fields() -> None:
    """An Event refuses extra fields instead of silently dropping them."""
    with pytest.raises(pydantic.ValidationError) as info:
        Event.model_validate(_event_data(colour="red"))
    assert "colour" in _error_fields(info.value)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "id"),
        ({"id": ""}, "id"),
        ({"id": "x", "labels": {"a": 1}}, "labels"),
        ({"id": "x", "name": 3}, "name"),
        ({"id": "x", "extra": 1}, "extra"),
    ],
)
def test_resource_validation_error_names_the_field(
    data: dict[str, Any], field: str
) -> None:
    """An invalid Resource fails with an error located at the offending field."""
    with pytest.raises(pydantic.ValidationError) as info:
        Resource.model_validate(data)
    assert field in _error_fields(info.value)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"id": "x"}, "role"),
        ({"id": "x", "role": ""}, "role"),
        ({"role": "caller"}, "id"),
        ({"id": "x", "role": "r", "labels": ["a"]}, "labels"),
    ],
)
def test_related_resource_validation_error_names_the_field(
    data: dict[str, Any], field: str
) -> None:
    """An invalid RelatedResource fails with an error located at the field."""
    with pytest.raises(pydantic.ValidationError) as info:
        RelatedResource.model_validate(data)
    assert field in _error_fields(info.value)


def test_models_are_frozen() -> None:
    """Event, Resource and RelatedResource refuse attribute assignment."""
    event = Event.model_validate(_event_data())
    with pytest.raises(pydantic.ValidationError):
        event.event = "changed"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        event.resource.id = "changed"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        event.related[0].role = "changed"  # type: ignore[misc]
    assert event.event == "warehouse.refreshed"


def test_resources_are_hashable_by_value() -> None:
    """Equal resources hash equally, so they can live in sets."""
    a = Resource(id="x", name="n", labels={"a": "1", "b": "2"})
    b = Resource(id="x", name="n", labels={"b": "2", "a": "1"})
    assert a == b
    assert hash(a) == hash(b)
    r1 = RelatedResource(id="x", role="caller")
    r2 = RelatedResource(id="x", role="caller")
    assert len({r1, r2}) == 1


# -- occurred -------------------------------------------------------------------


def test_naive_occurred_is_rejected() -> None:
    """A naive datetime for occurred fails validation, naming occurred."""
    with pytest.raises(pydantic.ValidationError) as info:
        Event.model_validate(_event_data(occurred=datetime(2024, 5, 1, 12, 0)))
    assert "occurred" in _error_fields(info.value)
    assert "timezone" in str(info.value)


def test_naive_occurred_string_is_rejected() -> None:
    """An ISO string without an offset is rejected as naive."""
    with pytest.raises(pydantic.ValidationError) as info:
        Event.model_validate(_event_data(occurred="2024-05-01T12:00:00"))
    assert "occurred" in _error_fields(info.value)


def test_aware_occurred_is_converted_to_utc() -> None:
    """An aware datetime in another zone is stored as the same instant in UTC."""
    local = datetime(2024, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    event = Event.model_validate(_event_data(occurred=local))
    assert event.occurred == local
    assert event.occurred.utcoffset() == timedelta(0)
    assert event.occurred.hour == 12


# -- JSON -----------------------------------------------------------------------


def test_validated_event_round_trips_through_json() -> None:
    """A validated Event survives dump/validate JSON equal and byte-identical."""
    _assert_round_trip(Event.model_validate(_event_data()))


def test_event_without_optional_parts_round_trips() -> None:
    """An Event with no related, no payload, no follows and no names round-trips."""
    event = Event(
        id=new_uuid7(),
        occurred=datetime.now(UTC),
        event="x.y",
        resource=Resource(id="r"),
    )
    assert event.follows is None
    _assert_round_trip(event)


def test_pipeline_built_event_equals_its_validated_twin() -> None:
    """A dispatcher-built event equals, copies and hashes like a validated one."""
    with capture_events() as captured:
        _call_recorded(fail=True)
    for built in captured:
        validated = Event.model_validate(built.model_dump())
        assert built == validated
        assert built.model_dump_json() == validated.model_dump_json()
        assert built.model_copy() == validated
        assert built.model_fields_set == validated.model_fields_set
        assert hash(built) == hash(validated)


def test_emitted_events_round_trip_through_json() -> None:
    """Events delivered by the pipeline from emit_event round-trip exactly."""
    memory = MemoryEmitter()
    configure(emitters=[memory])
    with (
        capture_events() as captured,
        flow_run("nightly", labels={"team": "data"}),
        task_run("load"),
    ):
        first = emit_event(
            "warehouse.refreshed",
            {"id": "warehouse.main", "name": "main", "labels": {"env": "prod"}},
            related=[{"id": "table.orders", "role": "table"}],
            payload={"rows": 3, "ratio": 0.1, "when": "now", "nested": {"a": [1]}},
        )
        emit_event("warehouse.checked", Resource(id="w"), follows=first.id)
    assert flush()
    assert len(captured) == 2
    assert memory.events == captured
    for event in captured:
        _assert_round_trip(event)


def test_pipeline_built_call_events_round_trip_through_json() -> None:
    """Call events the dispatcher assembles without validation round-trip."""
    with capture_events() as captured, flow_run("etl"):
        _call_recorded(fail=False)
        _call_recorded(fail=True)
    names = [e.event for e in captured]
    assert names == [
        "thing.widget.work.started",
        "thing.widget.work.succeeded",
        "thing.widget.work.started",
        "thing.widget.work.failed",
    ]
    assert captured[3].payload["error"]["type"] == "KeyError"
    for event in captured:
        assert event.occurred.utcoffset() == timedelta(0)
        _assert_round_trip(event)


# -- adapters -------------------------------------------------------------------


def test_to_cloudevent_has_the_required_attributes() -> None:
    """to_cloudevent gives CloudEvents 1.0 attributes and the body in data."""
    event = Event.model_validate(_event_data())
    ce = event.to_cloudevent()
    assert ce["specversion"] == "1.0"
    assert ce["id"] == str(event.id)
    assert ce["source"] == "warehouse.main"
    assert ce["type"] == "warehouse.refreshed"
    assert ce["subject"] == "main"
    assert ce["time"].endswith("Z")
    assert "+00:00" not in ce["time"]
    parsed = datetime.fromisoformat(ce["time"].replace("Z", "+00:00"))
    assert parsed == event.occurred
    data = ce["data"]
    assert set(data) == {"resource", "related", "payload", "follows"}
    assert data["resource"] == {
        "id": "warehouse.main",
        "name": "main",
        "labels": {"env": "p"},
    }
    assert [r["role"] for r in data["related"]] == ["flow-run", "block-type"]
    assert data["payload"] == event.payload
    assert data["follows"] == str(event.follows)
    assert json.loads(json.dumps(ce)) == ce


def test_to_cloudevent_time_ends_in_z_for_events_from_json() -> None:
    """An event read back from JSON still gives a time ending in Z."""
    event = Event.model_validate(
        _event_data(occurred=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), follows=None)
    )
    again = Event.model_validate_json(event.model_dump_json())
    ce = again.to_cloudevent()
    assert ce["time"].endswith("Z")
    assert ce["data"]["follows"] is None
    assert "subject" in ce


def test_to_otel_attributes_are_flat_scalars() -> None:
    """to_otel_attributes returns only scalar values, keyed by event/resource/role."""
    event = Event.model_validate(_event_data())
    attrs = event.to_otel_attributes()
    for key, value in attrs.items():
        assert isinstance(key, str)
        assert isinstance(value, str | int | float | bool), key
    assert attrs["event.id"] == str(event.id)
    assert attrs["event.name"] == "warehouse.refreshed"
    assert attrs["event.follows"] == str(event.follows)
    assert attrs["resource.id"] == "warehouse.main"
    assert attrs["resource.name"] == "main"
    assert attrs["flow_run.id"] == "flow-run.42"
    assert attrs["flow_run.name"] == "nightly"
    assert attrs["block_type.id"] == "block-type.warehouse"
    assert attrs["payload.rows"] == 3
    assert attrs["payload.ratio"] == 0.25
    assert "payload.tags" not in attrs
    assert "payload.nested" not in attrs


# -- ids ------------------------------------------------------------------------


def _is_uuid7(value: uuid.UUID) -> bool:
    return value.version == 7 and value.variant == uuid.RFC_4122


def test_new_ids_are_uuid7_with_current_timestamp() -> None:
    """new_uuid7 makes RFC 9562 version 7 ids whose timestamp is the wall clock."""
    before_ms = time.time_ns() // 1_000_000
    value = new_uuid7()
    after_ms = time.time_ns() // 1_000_000
    assert _is_uuid7(value)
    # A burst of ids may push the shared sequence a few milliseconds ahead.
    assert before_ms <= value.int >> 80 <= after_ms + 50
    assert uuid.UUID(str(value)) == value


def test_id_sequence_encodes_the_millisecond() -> None:
    """IdSequence.from_ms puts the given millisecond in the top 48 bits."""
    seq = IdSequence()
    value = seq.from_ms(1_700_000_000_123)
    assert _is_uuid7(value)
    assert value.int >> 80 == 1_700_000_000_123


def test_ids_made_later_sort_after_earlier_ones() -> None:
    """Ids made one after another sort in creation order, as UUIDs and as text."""
    ids = []
    for i in range(200):
        ids.append(new_uuid7())
        if i % 50 == 0:
            time.sleep(0.002)
    assert ids == sorted(ids)
    assert [str(i) for i in ids] == sorted(str(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_uuid7_from_ns_is_ordered_within_one_millisecond() -> None:
    """Many ids for the same nanosecond are unique, ordered and version 7."""
    ns = time.time_ns()
    ids = [uuid7_from_ns(ns) for _ in range(5000)]
    assert all(_is_uuid7(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert ids[0].int >> 80 >= ns // 1_000_000
    later = uuid7_from_ns(time.time_ns())
    assert later > ids[-1]


def test_id_sequence_orders_ids_within_and_across_milliseconds() -> None:
    """IdSequence keeps ids increasing in a millisecond, past counter overflow."""
    seq = IdSequence()
    ms = 1_700_000_000_000
    ids = [seq.from_ms(ms) for _ in range(10_000)]
    ids += [seq.from_ms(ms + 1) for _ in range(100)]
    ids += [seq.from_ms(ms + 100) for _ in range(100)]
    assert all(_is_uuid7(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert ids[0].int >> 80 == ms
    assert ids[-1].int >> 80 >= ms + 100


def test_id_sequence_never_goes_back_in_time() -> None:
    """An earlier millisecond after a later one still yields a larger id."""
    seq = IdSequence()
    later = seq.from_ms(2_000)
    earlier = seq.from_ms(1_000)
    assert earlier > later


def test_emitted_event_ids_are_time_ordered_uuid7() -> None:
    """Events emitted in sequence get UUIDv7 ids in emission order."""
    with capture_events() as captured:
        returned = [emit_event("tick", {"id": "clock"}) for _ in range(300)]
    assert [e.id for e in captured] == [e.id for e in returned]
    ids = [e.id for e in captured]
    assert all(_is_uuid7(i) for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == 300
    occurred = [e.occurred for e in captured]
    assert occurred == sorted(occurred)
