"""Events in the shape of Prefect's event API, checked against its limits.

A resource becomes a label map: ``prefect.resource.id``, ``prefect.resource.name``
and, for a related resource, ``prefect.resource.role``, after the resource's own
labels (which cannot override them). Resource ids get the ``eventblocks.`` prefix
(``eventblocks.block-document.<uuid>``), except a run that came from Prefect (its
related resource has the label ``source=prefect``): ``flow-run.<id>`` becomes
``prefect.flow-run.<id>`` and ``task-run.<id>`` ``prefect.task-run.<id>``, the ids
Prefect's UI shows on that run's page.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from emitters._model import Event, RelatedResource, Resource

__all__ = ["ID_PREFIX", "Limits", "prefect_document"]

ID_PREFIX = "eventblocks."
"""The prefix of every resource id that is not one of Prefect's own runs."""

_PREFECT_RUNS = ("flow-run.", "task-run.")


class Limits(NamedTuple):
    """What a Prefect server accepts in one event (its defaults).

    Attributes:
        related: Related resources per event
            (``PREFECT_SERVER_EVENTS_MAXIMUM_RELATED_RESOURCES``).
        labels: Labels per resource, the ``prefect.resource.*`` ones included
            (``PREFECT_SERVER_EVENTS_MAXIMUM_LABELS_PER_RESOURCE``).
        event_bytes: Bytes of one event as JSON
            (``PREFECT_SERVER_EVENTS_MAXIMUM_SIZE_BYTES``); the server drops a
            larger one without saying so.
        name_chars: Characters of an event name.
    """

    related: int = 100
    labels: int = 500
    event_bytes: int = 1_500_000
    name_chars: int = 1024


# The server adds a "received" timestamp before it measures an event.
_RECEIVED_ALLOWANCE = 64


def _resource_id(resource: Resource) -> str:
    if (
        isinstance(resource, RelatedResource)
        and resource.labels.get("source") == "prefect"
        and resource.id.startswith(_PREFECT_RUNS)
    ):
        return f"prefect.{resource.id}"
    return f"{ID_PREFIX}{resource.id}"


def _labels(resource: Resource, role: str | None) -> dict[str, str]:
    labels = dict(resource.labels)
    labels["prefect.resource.id"] = _resource_id(resource)
    if resource.name:
        labels["prefect.resource.name"] = resource.name
    if role is not None:
        labels["prefect.resource.role"] = role
    return labels


def prefect_document(event: Event, limits: Limits) -> tuple[bytes | None, str]:
    """Return ``event`` as Prefect's JSON, or None and why the server would refuse it.

    The reason names the limit and the event id, never a value.
    """
    if len(event.related) > limits.related:
        return None, (
            f"event {event.id} has {len(event.related)} related resources "
            f"(Prefect takes at most {limits.related})"
        )
    if len(event.event) > limits.name_chars:
        return None, (
            f"event {event.id} has a name of {len(event.event)} characters "
            f"(Prefect takes at most {limits.name_chars})"
        )
    resource = _labels(event.resource, None)
    related = [_labels(item, item.role) for item in event.related]
    for labels in (resource, *related):
        if len(labels) > limits.labels:
            return None, (
                f"event {event.id} has a resource with {len(labels)} labels "
                f"(Prefect takes at most {limits.labels})"
            )
    document: dict[str, Any] = {
        "id": str(event.id),
        "occurred": event.occurred.isoformat(),
        "event": event.event,
        "resource": resource,
        "related": related,
        "payload": event.payload,
        "follows": None if event.follows is None else str(event.follows),
    }
    body = json.dumps(
        document, ensure_ascii=False, separators=(",", ":"), default=str
    ).encode()
    if len(body) + _RECEIVED_ALLOWANCE > limits.event_bytes:
        return None, (
            f"event {event.id} is {len(body):,} bytes as JSON "
            f"(Prefect takes at most {limits.event_bytes:,})"
        )
    return body, ""
