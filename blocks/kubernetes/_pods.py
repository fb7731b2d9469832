"""Pod objects, as the API server sends them, read as infrastructure events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from emitters import Resource

__all__ = ["PodChange", "pod_change"]


@dataclass(frozen=True)
class PodChange:
    """What a pod's state says: the event's name, key, time and content."""

    name: str
    key: tuple[str, ...]
    uid: str
    labels: dict[str, str]
    occurred: datetime
    resource: Resource
    payload: dict[str, Any]


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _container(status: dict[str, Any]) -> dict[str, Any]:
    state = status.get("state") or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    kind = next(iter(state), "unknown")
    detail = state.get(kind) or {}
    item: dict[str, Any] = {
        "name": status.get("name"),
        "state": kind,
        "ready": status.get("ready"),
        "restartCount": status.get("restartCount", 0),
    }
    for key in ("exitCode", "reason", "message", "signal"):
        if detail.get(key) is not None:
            item[key] = detail[key]
    if last:
        item["lastTerminated"] = {
            k: last[k]
            for k in ("exitCode", "reason", "finishedAt")
            if last.get(k) is not None
        }
    return item


def _times(pod: dict[str, Any]) -> list[datetime]:
    status = pod.get("status") or {}
    found = [
        _parse_time((pod.get("metadata") or {}).get("creationTimestamp")),
        _parse_time(status.get("startTime")),
    ]
    for cond in status.get("conditions") or []:
        found.append(_parse_time((cond or {}).get("lastTransitionTime")))
    for cs in _statuses(status):
        for state in ((cs.get("state") or {}), (cs.get("lastState") or {})):
            for detail in state.values():
                if isinstance(detail, dict):
                    found.append(_parse_time(detail.get("startedAt")))
                    found.append(_parse_time(detail.get("finishedAt")))
    return [t for t in found if t is not None]


def _statuses(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        cs
        for key in ("initContainerStatuses", "containerStatuses")
        for cs in status.get(key) or []
        if isinstance(cs, dict)
    ]


def pod_change(pod: dict[str, Any]) -> PodChange | None:
    """Read a pod object (JSON, as the API sends it); None if it has no uid."""
    meta = pod.get("metadata") or {}
    uid = meta.get("uid")
    if not isinstance(uid, str) or not uid:
        return None
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Unknown")
    containers = [_container(cs) for cs in _statuses(status)]
    restarts = sum(int(c.get("restartCount") or 0) for c in containers)
    oom = [
        c["name"]
        for c in containers
        if c.get("reason") == "OOMKilled"
        or (c.get("lastTerminated") or {}).get("reason") == "OOMKilled"
    ]
    reason = str(status.get("reason") or "")
    if reason == "Evicted":
        kind = "evicted"
    elif oom:
        kind = "oom-killed"
        reason = reason or "OOMKilled"
    else:
        kind = phase.lower()
    namespace = str(meta.get("namespace") or "")
    node = str((pod.get("spec") or {}).get("nodeName") or "")
    labels = {"namespace": namespace, "node": node, "phase": phase.lower()}
    for c in containers:
        if "exitCode" in c:
            labels[f"container.{c['name']}.exit-code"] = str(c["exitCode"])
        last_reason = c.get("reason") or (c.get("lastTerminated") or {}).get("reason")
        if last_reason:
            labels[f"container.{c['name']}.reason"] = str(last_reason)
    times = _times(pod)
    payload: dict[str, Any] = {
        "phase": phase,
        "reason": status.get("reason"),
        "message": status.get("message"),
        "restarts": restarts,
        "containers": containers,
        "conditions": [
            {
                k: cond[k]
                for k in ("type", "status", "reason", "message", "lastTransitionTime")
                if cond.get(k) is not None
            }
            for cond in status.get("conditions") or []
            if isinstance(cond, dict)
        ],
        "resourceVersion": meta.get("resourceVersion"),
    }
    return PodChange(
        name=f"infra.kubernetes.pod.{kind}",
        key=(uid, kind, str(restarts), reason),
        uid=uid,
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        occurred=max(times) if times else datetime.now(UTC),
        resource=Resource(
            id=f"kubernetes-pod.{uid}",
            name=f"{namespace}/{meta.get('name', '')}",
            labels={k: v for k, v in labels.items() if v},
        ),
        payload={k: v for k, v in payload.items() if v is not None},
    )
