"""EventBridge's "ECS Task State Change" messages, read as eventblocks events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from emitters import Resource

__all__ = ["ECS_DETAIL_TYPE", "EcsChange", "NotAnEcsEvent", "parse_message"]

ECS_DETAIL_TYPE = "ECS Task State Change"


class NotAnEcsEvent(ValueError):
    """A message is not an EventBridge "ECS Task State Change" event."""


@dataclass(frozen=True)
class EcsChange:
    """One task state change, ready to become an event once its tags are known."""

    source_id: str
    name: str
    task_arn: str
    cluster_arn: str
    occurred: datetime
    resource: Resource
    payload: dict[str, Any]


def _time(value: Any, what: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise NotAnEcsEvent(f"{what} is missing")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise NotAnEcsEvent(f"{what} is not a time: {value!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _containers(detail: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for c in detail.get("containers") or []:
        if not isinstance(c, dict):
            continue
        item = {k: c[k] for k in ("name", "lastStatus", "exitCode", "reason") if k in c}
        out.append(item)
    return out


def parse_message(body: str) -> EcsChange:
    """Read an SQS message body holding an EventBridge ECS task state change.

    Raises:
        NotAnEcsEvent: The body is not JSON, not an ECS task state change, or lacks
            the task's ARN, status or time.
    """
    try:
        message = json.loads(body)
    except (TypeError, ValueError):
        raise NotAnEcsEvent("the message body is not JSON") from None
    if not isinstance(message, dict):
        raise NotAnEcsEvent("the message body is not a JSON object")
    if message.get("source") != "aws.ecs" or message.get("detail-type") != (
        ECS_DETAIL_TYPE
    ):
        raise NotAnEcsEvent(
            f"source {message.get('source')!r} and detail-type "
            f"{message.get('detail-type')!r} are not aws.ecs {ECS_DETAIL_TYPE!r}"
        )
    detail = message.get("detail")
    if not isinstance(detail, dict):
        raise NotAnEcsEvent("the event has no detail object")
    task_arn = detail.get("taskArn")
    status = detail.get("lastStatus")
    if not isinstance(task_arn, str) or not task_arn:
        raise NotAnEcsEvent("detail.taskArn is missing")
    if not isinstance(status, str) or not status:
        raise NotAnEcsEvent("detail.lastStatus is missing")
    occurred = _time(detail.get("updatedAt") or message.get("time"), "the time")
    source_id = message.get("id")
    if not isinstance(source_id, str) or not source_id:
        source_id = f"{task_arn}/{detail.get('version')}/{status}"
    cluster_arn = str(detail.get("clusterArn") or "")
    labels = {
        "cluster": cluster_arn,
        "task-definition": str(detail.get("taskDefinitionArn") or ""),
        "launch-type": str(detail.get("launchType") or ""),
        "group": str(detail.get("group") or ""),
        "status": status.lower(),
    }
    payload: dict[str, Any] = {
        "lastStatus": status,
        "desiredStatus": detail.get("desiredStatus"),
        "containers": _containers(detail),
        "source_event_id": message.get("id"),
    }
    for key in ("stoppedReason", "stopCode", "stoppingAt", "stoppedAt", "startedAt"):
        if detail.get(key) is not None:
            payload[key] = detail[key]
    return EcsChange(
        source_id=source_id,
        name=f"infra.ecs.task.{status.lower()}",
        task_arn=task_arn,
        cluster_arn=cluster_arn,
        occurred=occurred,
        resource=Resource(
            id=f"ecs-task.{task_arn.rsplit('/', 1)[-1]}",
            name=task_arn,
            labels={k: v for k, v in labels.items() if v},
        ),
        payload={k: v for k, v in payload.items() if v is not None},
    )
