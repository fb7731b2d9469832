"""The event model: ``Event``, ``Resource`` and ``RelatedResource``.

Events built by the SDK itself are assembled by the dispatcher from trusted parts
without validation, through the slot setters below (see
:meth:`emitters._pipeline.build.EventBuilder.build`); everything that comes from outside
(JSON, a user's call to ``emit_event``) goes through pydantic validation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from emitters._text import mend_json, mend_text

__all__ = [
    "MAX_NAME",
    "MAX_ROLE",
    "MENDED_PAYLOAD",
    "Event",
    "RelatedResource",
    "Resource",
]

MAX_NAME = 255
"""The longest event name, resource id or resource name, in characters."""
MAX_ROLE = 64
"""The longest role of a related resource."""
MENDED_PAYLOAD = "eventblocks_mended_payload"
"""A validation context key: the payload's text is known to encode as UTF-8."""


def _no_nul(value: str | None, what: str) -> str | None:
    # Event stores keep these in indexed text columns, and PostgreSQL's text
    # cannot hold NUL.
    if value is not None and "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters (\\x00)")
    return value


class Resource(BaseModel):
    """What an event is about: an ``id`` such as ``block-document.<uuid>``, an
    optional human ``name`` and string ``labels``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=MAX_NAME)
    name: str | None = Field(default=None, max_length=MAX_NAME)
    labels: dict[str, str] = Field(default_factory=dict)

    # Lone surrogates (undecodable file names) are escaped so every sink can
    # encode the text; see emitters._text.
    @field_validator("id", "name", mode="before")
    @classmethod
    def _mend_text(cls, value: Any) -> Any:
        return mend_text(value) if isinstance(value, str) else value

    @field_validator("labels", mode="before")
    @classmethod
    def _mend_labels(cls, value: Any, info: ValidationInfo) -> Any:
        # JSON cannot carry a lone surrogate: pydantic's parser refuses one.
        return value if info.mode == "json" else mend_json(value)

    @field_validator("id", "name")
    @classmethod
    def _check_nul(cls, value: str | None) -> str | None:
        return _no_nul(value, "text")

    def __hash__(self) -> int:
        return hash(
            (type(self), self.id, self.name, tuple(sorted(self.labels.items())))
        )


class RelatedResource(Resource):
    """Another resource involved in an event, with the ``role`` it played, such as
    ``flow-run``, ``block-type``, ``nested-block`` or ``caller``."""

    role: str = Field(min_length=1, max_length=MAX_ROLE)

    @field_validator("role", mode="before")
    @classmethod
    def _mend_role(cls, value: Any) -> Any:
        return mend_text(value) if isinstance(value, str) else value

    @field_validator("role")
    @classmethod
    def _check_role_nul(cls, value: str) -> str | None:
        return _no_nul(value, "a role")

    def __hash__(self) -> int:
        return hash((super().__hash__(), self.role))


class Event(BaseModel):
    """One immutable event.

    Attributes:
        id: A UUIDv7, time ordered; every sink uses it as the idempotency key.
        occurred: When it happened, timezone-aware UTC.
        event: The dotted name, such as ``block.s3-bucket.read_path.failed``.
        resource: What the event is about.
        related: The other resources involved, each with a role.
        payload: JSON-serialisable detail, never a secret.
        follows: The id of the event this one follows (an outcome follows its
            ``started`` event), or None.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UUID
    occurred: datetime
    event: str = Field(min_length=1, max_length=MAX_NAME)
    resource: Resource
    related: tuple[RelatedResource, ...] = ()
    payload: dict[str, Any] = Field(default_factory=dict)
    follows: UUID | None = None

    @field_validator("event", mode="before")
    @classmethod
    def _mend_name(cls, value: Any) -> Any:
        return mend_text(value) if isinstance(value, str) else value

    @field_validator("payload", mode="before")
    @classmethod
    def _mend_payload(cls, value: Any, info: ValidationInfo) -> Any:
        if info.mode == "json" or (info.context or {}).get(MENDED_PAYLOAD):
            return value
        return mend_json(value)

    @field_validator("event")
    @classmethod
    def _check_nul(cls, value: str) -> str | None:
        return _no_nul(value, "an event name")

    @field_validator("occurred")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("occurred must be timezone-aware")
        return value.astimezone(UTC)

    def __hash__(self) -> int:
        return hash(self.id)

    def related_by_role(self, role: str) -> list[RelatedResource]:
        """Return the related resources that played ``role``, in order."""
        return [r for r in self.related if r.role == role]

    def to_cloudevent(self) -> dict[str, Any]:
        """Return this event as a CloudEvents 1.0 structured-mode JSON object.

        ``type`` is the event name, ``source`` the resource id and ``subject`` its
        name; the resource, related resources, payload and ``follows`` travel in
        ``data``.
        """
        ce: dict[str, Any] = {
            "specversion": "1.0",
            "id": str(self.id),
            "source": self.resource.id,
            "type": self.event,
            "time": self.occurred.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": self.model_dump(
                mode="json", include={"resource", "related", "payload", "follows"}
            ),
        }
        if self.resource.name is not None:
            ce["subject"] = self.resource.name
        return ce

    def to_otel_attributes(self) -> dict[str, str | float | int | bool]:
        """Return flat attributes for an OpenTelemetry span or log record.

        Keys are ``event.*`` for the event itself, ``resource.*`` for its resource
        and ``<role>.id`` / ``<role>.name`` for each related resource (the first one
        of each role); scalar payload entries become ``payload.<key>``.
        """
        attrs: dict[str, str | float | int | bool] = {
            "event.id": str(self.id),
            "event.name": self.event,
            "resource.id": self.resource.id,
        }
        if self.resource.name is not None:
            attrs["resource.name"] = self.resource.name
        if self.follows is not None:
            attrs["event.follows"] = str(self.follows)
        for rel in self.related:
            key = rel.role.replace("-", "_")
            if f"{key}.id" in attrs:
                continue
            attrs[f"{key}.id"] = rel.id
            if rel.name is not None:
                attrs[f"{key}.name"] = rel.name
        for key, value in self.payload.items():
            if isinstance(value, str | int | float | bool):
                attrs[f"payload.{key}"] = value
        return attrs


# How the dispatcher fills an Event without validation: the slots pydantic's
# own constructor fills, set directly.
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__
# Shared by every assembled event: pydantic only reads it, and copies it when
# it copies a model.
_ALL_FIELDS = set(Event.model_fields)
_EVENT_SLOTS = (_set_dict, _set_fields, _set_extra, _set_private)
"""The setters of an Event's ``__dict__``, fields-set, extra and private slots."""
