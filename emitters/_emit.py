"""``emit_event``: emitting an event from any code."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from emitters._context import current_run_context
from emitters._ids import uuid7_from_ns
from emitters._model import MENDED_PAYLOAD, Event, RelatedResource, Resource
from emitters._pipeline.buffer import EVENT_BYTES
from emitters._pipeline.pipeline import STATE, ensure_configured
from emitters._pipeline.record import KIND_EVENT, next_key
from emitters._text import mend
from emitters._trace import snapshot_otel_context, trace_related

__all__ = ["emit_event"]


def _resource(value: Resource | Mapping[str, Any]) -> Resource:
    if isinstance(value, Resource):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(
            "resource must be a Resource or a mapping with an 'id', "
            f"not {type(value).__name__}"
        )
    try:
        return Resource.model_validate(dict(value))
    except ValidationError as exc:
        raise ValueError(f"invalid resource: {_first_error(exc)}") from None


def _related(value: RelatedResource | Mapping[str, Any], index: int) -> RelatedResource:
    if isinstance(value, RelatedResource):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(
            f"related[{index}] must be a RelatedResource or a mapping with 'id' and "
            f"'role', not {type(value).__name__}"
        )
    try:
        return RelatedResource.model_validate(dict(value))
    except ValidationError as exc:
        raise ValueError(f"invalid related[{index}]: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "value"
    return f"{where}: {err['msg']}"


def _given_id(value: UUID | str | None) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    if not isinstance(value, str):
        raise TypeError(f"id must be a UUID or its text, not {type(value).__name__}")
    try:
        return UUID(value)
    except ValueError:
        raise ValueError(f"id must be an event id (UUID), not {value!r}") from None


def _given_time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"occurred must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("occurred must be timezone-aware (give it a tzinfo)")
    return value.astimezone(UTC)


def emit_event(
    event: str,
    resource: Resource | Mapping[str, Any],
    *,
    related: Iterable[RelatedResource | Mapping[str, Any]] = (),
    payload: Mapping[str, Any] | None = None,
    follows: UUID | str | None = None,
    id: UUID | str | None = None,
    occurred: datetime | None = None,
    context: bool = True,
) -> Event:
    """Emit an event from any code and return it.

    The event is validated here, tagged with the current flow run, task run and
    OpenTelemetry trace (as related resources), and queued for the sinks; this
    call never blocks on a sink. Registered secrets are masked before any sink
    sees it.

    Producers that relay what another system saw (the infrastructure observers)
    give the event its own ``id`` and ``occurred`` time: sinks use the id as the
    idempotency key, so an event relayed twice (a redelivered message, two
    observers of one cluster) is stored once. Such producers pass
    ``context=False``: the observer's own run and trace say nothing about the
    event, whose runs are in ``related``.

    Args:
        event: The dotted event name, such as ``"warehouse.refreshed"``.
        resource: What the event is about: a ``Resource`` or a mapping with ``id``
            and optional ``name`` and ``labels``.
        related: Other resources involved, each with a ``role``.
        payload: JSON-serialisable detail.
        follows: The id of the event this one follows.
        id: The event's id (a UUID, or its text); None makes a new UUIDv7.
            Give one only when it is deterministic for what happened, such as
            :func:`observed_event_id` makes.
        occurred: When it happened, timezone-aware; None is now.
        context: Relate the current flow run, task run and trace (the
            default); False relates only ``related``.

    Raises:
        TypeError: ``resource`` or a related item has the wrong type.
        ValueError: A field is invalid (the message names it) or the payload
            cannot be serialised as JSON.
    """
    if not isinstance(event, str) or not event.strip():
        raise ValueError(f"event must be a non-empty dotted name, not {event!r}")
    res = _resource(resource)
    extra = tuple(_related(item, i) for i, item in enumerate(related))
    if payload is not None and not isinstance(payload, Mapping):
        raise TypeError(
            f"payload must be a mapping (a dict), not {type(payload).__name__}"
        )
    body = dict(payload or {})
    try:
        text = json.dumps(body, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"payload must be JSON-serialisable: {exc}") from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            body = mend(body)  # lone surrogates: see emitters._text
    if follows is not None and not isinstance(follows, UUID):
        try:
            follows = UUID(str(follows))
        except ValueError:
            raise ValueError(
                f"follows must be an event id (UUID), not {follows!r}"
            ) from None
    event_id = _given_id(id)
    when = _given_time(occurred)
    ambient: tuple[RelatedResource, ...] = ()
    if context:
        ambient = current_run_context().related
        trace = trace_related(snapshot_otel_context())
        if trace is not None:
            ambient += (trace,)
        given_roles = {r.role for r in extra}
        ambient = tuple(r for r in ambient if r.role not in given_roles)
    now = time.time_ns()
    try:
        built = Event.model_validate(
            context={MENDED_PAYLOAD: True},
            obj={
                "id": event_id if event_id is not None else uuid7_from_ns(now),
                "occurred": when
                if when is not None
                else datetime.fromtimestamp(now // 1000 / 1e6, tz=UTC),
                "event": event,
                "resource": res,
                "related": extra + ambient,
                "payload": body,
                "follows": follows,
            },
        )
    except ValidationError as exc:
        raise ValueError(f"invalid event: {_first_error(exc)}") from None
    ensure_configured()
    if STATE.enabled:
        STATE.append((KIND_EVENT, built))
        STATE.weigh(EVENT_BYTES)
        if not next_key() & 1023:
            STATE.kick()
    return built
