"""What observers of other systems share: deterministic event ids, the runs a
piece of infrastructure names in its own tags or labels, and when one of its
events is a run's failure (and its first)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Protocol
from uuid import UUID

from emitters._model import MAX_NAME, Event, RelatedResource
from emitters._run import MAX_RUN_ID, Run, run_text_problem

__all__ = [
    "FLOW_RUN_ID_LABELS",
    "INFRA_PREFIX",
    "OBSERVED_NAMESPACE",
    "TimelineCall",
    "first_failure",
    "infra_failure",
    "observed_event_id",
    "related_runs",
]

OBSERVED_NAMESPACE = UUID("5f0b6c2e-3c1d-5e7a-9b8e-0e7e6b10c5a1")
"""The UUID namespace of the ids :func:`observed_event_id` makes."""

# (label with the run id, label with its name, the ``source`` label), first wins.
FLOW_RUN_ID_LABELS = (
    ("eventblocks.io/flow-run-id", "eventblocks.io/flow-run-name", "eventblocks"),
    ("prefect.io/flow-run-id", "prefect.io/flow-run-name", "prefect"),
)
"""Where infrastructure names its flow run: eventblocks' labels, then Prefect's."""
_TASK_RUN_ID = "eventblocks.io/task-run-id"


def observed_event_id(source: str, *parts: object) -> UUID:
    """Return the id of an event relayed from another system, the same every time.

    The id is a UUIDv5 of ``source`` (the system, such as ``"aws.ecs"``) and the
    parts that identify the change (the source event's own id, or a pod's uid,
    phase, restart count and reason): every observer that sees the change, and a
    restarted one, gives it the same id, so a store keeps it once.

    Example:
        >>> from emitters import observed_event_id
        >>> observed_event_id("aws.ecs", "a1b2") == observed_event_id("aws.ecs", "a1b2")
        True

    Raises:
        ValueError: ``source`` is empty.
    """
    if not isinstance(source, str) or not source:
        raise ValueError(f"source must be a non-empty string, not {source!r}")
    key = "\x1f".join([source, *("" if p is None else str(p) for p in parts)])
    return uuid.uuid5(OBSERVED_NAMESPACE, key)


def related_runs(labels: Mapping[str, str]) -> tuple[RelatedResource, ...]:
    """Return the flow run and task run that tags or labels name, as related
    resources exactly like a block call's (``flow-run.<id>``, role ``flow-run``).

    The flow run comes from ``eventblocks.io/flow-run-id`` (and
    ``eventblocks.io/flow-run-name``), else Prefect's ``prefect.io/flow-run-id``
    (and ``prefect.io/flow-run-name``); its ``source`` label says which. The task
    run comes from ``eventblocks.io/task-run-id``. A value that cannot be a run id
    (too long, a NUL character) is ignored.

    Example:
        >>> from emitters import related_runs
        >>> related_runs({"prefect.io/flow-run-id": "7c1f"})[0].id
        'flow-run.7c1f'
    """
    found: list[RelatedResource] = []
    for id_label, name_label, source in FLOW_RUN_ID_LABELS:
        run_id = labels.get(id_label)
        if (
            isinstance(run_id, str)
            and run_id
            and not run_text_problem(run_id, MAX_RUN_ID)
        ):
            name = labels.get(name_label)
            if (
                not isinstance(name, str)
                or not name
                or run_text_problem(name, MAX_NAME)
            ):
                name = run_id
            found.append(Run(run_id, name, source=source).related)
            break
    task_id = labels.get(_TASK_RUN_ID)
    if (
        isinstance(task_id, str)
        and task_id
        and not run_text_problem(task_id, MAX_RUN_ID)
    ):
        found.append(
            Run(task_id, task_id, kind="task-run", source="eventblocks").related
        )
    return tuple(found)


# Events of the infrastructure a run ran on (blocks' observers: ECS tasks, pods).
INFRA_PREFIX = "infra."
_INFRA_FAILED_STATES = frozenset({"failed", "evicted", "oom-killed"})


def infra_failure(name: str, payload_json: str | None) -> str | None:
    """What went wrong, if an infrastructure event is a failure of its run.

    A pod that failed, was evicted or was killed for memory is one; so is an ECS
    task that stopped because it failed to start, or with a container that
    exited with a code other than 0. The answer names the state or the exit.
    """
    state = name.rpartition(".")[2]
    if state in _INFRA_FAILED_STATES:
        return state
    if name != "infra.ecs.task.stopped":
        return None
    try:
        payload = json.loads(payload_json or "{}")
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    if payload.get("stopCode") == "TaskFailedToStart":
        return "TaskFailedToStart"
    for container in payload.get("containers") or []:
        if isinstance(container, dict):
            code = container.get("exitCode")
            if isinstance(code, int) and code != 0:
                return f"exit code {code}"
    return None


class TimelineCall(Protocol):
    """What :func:`first_failure` reads of a call in a run's timeline (an
    ``emitters.sql.CallRecord``)."""

    @property
    def event_id(self) -> str: ...
    @property
    def started(self) -> datetime: ...
    @property
    def outcome(self) -> str: ...


def first_failure(calls: Iterable[TimelineCall], infra: Iterable[Event]) -> str | None:
    """The event id of a run's first failure, or None when nothing failed.

    It is the first failed call's (``calls`` in the order they started), unless an
    infrastructure failure (:func:`infra_failure`: an evicted pod, a task that
    failed to start) occurred before that call started: then it is that
    infrastructure event's id. The run view of ``runs show`` and of the web page
    both mark this one.
    """
    failed = next((c for c in calls if c.outcome == "failed"), None)
    for event in sorted(infra, key=lambda e: e.occurred):
        if infra_failure(event.event, json.dumps(event.payload)) is None:
            continue
        if failed is None or event.occurred < failed.started:
            return str(event.id)
        break
    return None if failed is None else failed.event_id
