"""emit_event: accepted arguments, validation errors, context and redaction."""

from __future__ import annotations

import uuid
from typing import Any

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
    register_secret,
    task_run,
)
from emitters.testing import capture_events

MASK = "**********"


def _secret() -> str:
    # Unique per test: the secret registry is process-wide.
    return f"s3cr3t-{uuid.uuid4().hex}"


# -- accepted arguments ---------------------------------------------------------


def test_resource_may_be_a_resource_instance() -> None:
    """A Resource instance is used as the event's resource."""
    resource = Resource(id="warehouse.main", name="main", labels={"env": "prod"})
    event = emit_event("warehouse.refreshed", resource)
    assert event.resource == resource
    assert event.event == "warehouse.refreshed"


def test_resource_may_be_a_mapping() -> None:
    """A mapping with id, name and labels becomes an equal Resource."""
    event = emit_event(
        "warehouse.refreshed",
        {"id": "warehouse.main", "name": "main", "labels": {"env": "prod"}},
    )
    assert isinstance(event.resource, Resource)
    assert event.resource == Resource(
        id="warehouse.main", name="main", labels={"env": "prod"}
    )


def test_minimal_mapping_resource_has_defaults() -> None:
    """A mapping with only an id gives no name, no labels, empty payload."""
    event = emit_event("x", {"id": "r"})
    assert event.resource.name is None
    assert event.resource.labels == {}
    assert event.payload == {}
    assert event.follows is None
    assert event.related == ()


def test_related_accepts_models_and_mappings_in_order() -> None:
    """Related items may be RelatedResource or mappings; their order is kept."""
    event = emit_event(
        "x",
        {"id": "r"},
        related=[
            RelatedResource(id="table.orders", role="table"),
            {"id": "user.7", "role": "actor", "name": "ann", "labels": {"a": "b"}},
        ],
    )
    assert [(r.id, r.role) for r in event.related] == [
        ("table.orders", "table"),
        ("user.7", "actor"),
    ]
    assert event.related[1].name == "ann"
    assert event.related[1].labels == {"a": "b"}


def test_follows_accepts_a_uuid_or_its_string() -> None:
    """follows may be a UUID or its string form; both are stored as the UUID."""
    first = emit_event("job.started", {"id": "job"})
    by_uuid = emit_event("job.succeeded", {"id": "job"}, follows=first.id)
    by_text = emit_event("job.succeeded", {"id": "job"}, follows=str(first.id))
    assert by_uuid.follows == first.id
    assert by_text.follows == first.id
    assert isinstance(by_text.follows, uuid.UUID)


def test_payload_is_copied() -> None:
    """Changing the payload mapping after emit_event does not change the event."""
    payload: dict[str, Any] = {"rows": 1}
    event = emit_event("x", {"id": "r"}, payload=payload)
    payload["rows"] = 2
    assert event.payload == {"rows": 1}


def test_occurred_is_aware_utc_now() -> None:
    """The returned event's occurred is timezone-aware UTC."""
    event = emit_event("x", {"id": "r"})
    assert event.occurred.tzinfo is not None
    assert event.occurred.utcoffset() is not None
    assert event.occurred.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


# -- validation errors ----------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   ", None, 5])
def test_bad_event_name_raises(name: Any) -> None:
    """An empty or non-string event name raises ValueError naming event."""
    with pytest.raises(ValueError, match="event"):
        emit_event(name, {"id": "r"})


@pytest.mark.parametrize(
    "resource", [{}, {"name": "no id"}, {"id": ""}, {"id": None}, {"id": "x", "y": 1}]
)
def test_resource_without_a_valid_id_raises_value_error(resource: Any) -> None:
    """A resource mapping without a valid id raises ValueError naming the field."""
    with pytest.raises(ValueError, match="resource") as info:
        emit_event("x", resource)
    message = str(info.value)
    assert "id" in message or "y" in message


def test_resource_labels_must_be_strings() -> None:
    """Non-string resource labels raise ValueError naming labels."""
    with pytest.raises(ValueError, match="labels"):
        emit_event("x", {"id": "r", "labels": {"n": 1}})


@pytest.mark.parametrize("resource", [42, "warehouse.main", ["id", "x"], None])
def test_resource_of_the_wrong_type_raises_type_error(resource: Any) -> None:
    """A resource that is neither a Resource nor a mapping raises TypeError."""
    with pytest.raises(TypeError, match="resource"):
        emit_event("x", resource)


def test_related_without_a_role_raises_value_error() -> None:
    """A related mapping without a role raises ValueError naming related[i].role."""
    with pytest.raises(ValueError, match=r"related\[1\]") as info:
        emit_event(
            "x",
            {"id": "r"},
            related=[{"id": "a", "role": "ok"}, {"id": "b"}],
        )
    assert "role" in str(info.value)


def test_related_of_the_wrong_type_raises_type_error() -> None:
    """A related item that is not a mapping raises TypeError naming related[i]."""
    with pytest.raises(TypeError, match=r"related\[0\]"):
        emit_event("x", {"id": "r"}, related=["flow-run.1"])


@pytest.mark.parametrize(
    "payload",
    [
        {"obj": object()},
        {"nan": float("nan")},
        {"inf": float("inf")},
        {"set": {1, 2}},
        {"nested": {"bytes": b"raw"}},
    ],
)
def test_non_json_payload_raises_value_error(payload: dict[str, Any]) -> None:
    """A payload JSON cannot carry raises ValueError naming payload."""
    with pytest.raises(ValueError, match="payload"):
        emit_event("x", {"id": "r"}, payload=payload)


@pytest.mark.parametrize("payload", [["a", "b"], "text", 5])
def test_payload_that_is_not_a_mapping_raises_naming_the_field(payload: Any) -> None:
    """A payload that is not a mapping raises TypeError/ValueError naming payload."""
    with pytest.raises((TypeError, ValueError), match="payload"):
        emit_event("x", {"id": "r"}, payload=payload)


@pytest.mark.parametrize("follows", ["not-a-uuid", "", 12345, object()])
def test_bad_follows_raises_value_error(follows: Any) -> None:
    """A follows that is not an event id raises ValueError naming follows."""
    with pytest.raises(ValueError, match="follows"):
        emit_event("x", {"id": "r"}, follows=follows)


def test_invalid_call_emits_nothing() -> None:
    """An emit_event call that raises puts nothing into the pipeline."""
    with capture_events() as events:
        with pytest.raises(ValueError, match="follows"):
            emit_event("x", {"id": "r"}, follows="bad")
        with pytest.raises(TypeError, match="resource"):
            emit_event("x", 42)  # type: ignore[arg-type]
    assert events == []


# -- delivery -------------------------------------------------------------------


def test_returned_event_equals_the_delivered_one() -> None:
    """The Event emit_event returns is equal to what sinks and captures receive."""
    memory = MemoryEmitter()
    configure(emitters=[memory])
    with capture_events() as captured, flow_run("f"):
        returned = emit_event(
            "warehouse.refreshed",
            {"id": "warehouse.main", "labels": {"env": "prod"}},
            related=[{"id": "table.orders", "role": "table"}],
            payload={"rows": 3, "nested": {"a": [1, 2.5, None, True]}},
        )
    assert flush()
    assert captured == [returned]
    assert memory.events == [returned]
    assert memory.events[0].model_dump_json() == returned.model_dump_json()
    assert isinstance(memory.events[0], Event)


def test_related_includes_the_current_runs() -> None:
    """Events emitted in a flow and task run list both runs after given ones."""
    with (
        flow_run("nightly", labels={"team": "data"}) as flow,
        task_run("load") as task,
    ):
        event = emit_event(
            "x", {"id": "r"}, related=[{"id": "table.orders", "role": "table"}]
        )
    assert event.related[0].id == "table.orders"
    (flow_rel,) = event.related_by_role("flow-run")
    (task_rel,) = event.related_by_role("task-run")
    assert flow_rel.id == f"flow-run.{flow.id}"
    assert flow_rel.name == "nightly"
    assert flow_rel.labels == {"team": "data", "source": "eventblocks"}
    assert task_rel.id == f"task-run.{task.id}"
    assert task_rel.name == "load"


def test_no_run_related_outside_a_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside any scope, with no run in the environment, no run is related."""
    for name in (
        "EVENTBLOCKS_FLOW_RUN_ID",
        "EVENTBLOCKS_FLOW_RUN_NAME",
        "PREFECT__FLOW_RUN_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    event = emit_event("x", {"id": "r"})
    assert event.related_by_role("flow-run") == []
    assert event.related_by_role("task-run") == []


# -- redaction ------------------------------------------------------------------


def test_registered_secret_is_masked_in_delivered_events() -> None:
    """A registered secret in payload, labels or names never reaches a sink."""
    secret = _secret()
    register_secret(secret)
    memory = MemoryEmitter()
    configure(emitters=[memory])
    with capture_events() as captured:
        emit_event(
            "db.connected",
            {
                "id": "db.main",
                "name": f"main-{secret}",
                "labels": {"token": secret, "dsn": f"pg://u:{secret}@host/db"},
            },
            related=[
                {
                    "id": "vault.1",
                    "role": "source",
                    "name": secret,
                    "labels": {"key": secret},
                }
            ],
            payload={
                "dsn": f"postgres://user:{secret}@host/db",
                "nested": {"list": ["ok", secret], "deep": {"x": secret}},
                "plain": "nothing to hide",
            },
        )
    assert flush()
    for delivered in (captured[0], memory.events[0]):
        assert secret not in delivered.model_dump_json()
        assert delivered.payload["dsn"] == f"postgres://user:{MASK}@host/db"
        assert delivered.payload["nested"] == {
            "list": ["ok", MASK],
            "deep": {"x": MASK},
        }
        assert delivered.payload["plain"] == "nothing to hide"
        assert delivered.resource.id == "db.main"
        assert delivered.resource.name == f"main-{MASK}"
        assert delivered.resource.labels == {
            "token": MASK,
            "dsn": f"pg://u:{MASK}@host/db",
        }
        (source,) = delivered.related_by_role("source")
        assert source.name == MASK
        assert source.labels == {"key": MASK}


def test_secret_in_a_payload_key_is_masked() -> None:
    """A registered secret used as a payload key is masked too."""
    secret = _secret()
    register_secret(secret)
    with capture_events() as captured:
        emit_event("x", {"id": "r"}, payload={secret: 1})
    assert secret not in captured[0].model_dump_json()
    assert captured[0].payload == {MASK: 1}


def test_secret_in_a_run_name_is_masked() -> None:
    """A registered secret in a flow run's name or labels is masked in events."""
    secret = _secret()
    register_secret(secret)
    with capture_events() as captured, flow_run(f"run-{secret}", labels={"k": secret}):
        emit_event("x", {"id": "r"})
    assert secret not in captured[0].model_dump_json()


def test_longer_secret_is_masked_whole() -> None:
    """A secret containing another registered secret is replaced as a whole."""
    short = _secret()
    long = f"{short}-extended"
    register_secret(short, long)
    with capture_events() as captured:
        emit_event("x", {"id": "r"}, payload={"a": long, "b": short})
    assert captured[0].payload == {"a": MASK, "b": MASK}


def test_bytes_secret_is_registered_and_empty_values_ignored() -> None:
    """register_secret accepts bytes and ignores empty values."""
    secret = _secret()
    register_secret(secret.encode(), "", None)
    with capture_events() as captured:
        emit_event("x", {"id": "r"}, payload={"v": secret, "e": ""})
    assert captured[0].payload == {"v": MASK, "e": ""}


def test_unregistered_values_are_untouched() -> None:
    """Without a matching secret, the delivered payload equals the given one."""
    register_secret(_secret())
    payload = {"a": "hello", "n": 3, "l": [1, "x"]}
    with capture_events() as captured:
        returned = emit_event("x", {"id": "r", "labels": {"k": "v"}}, payload=payload)
    assert captured == [returned]
