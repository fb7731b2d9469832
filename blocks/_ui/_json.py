"""What the API's answers look like: store records as JSON-ready values.

Times are ISO 8601 in UTC with a ``Z``; durations are milliseconds. Every text is
passed as it is stored (``<script>`` stays ``<script>`` inside a JSON string):
the page inserts text as text, never as HTML.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.responses import Response

from emitters import Event
from emitters._sdk import infra_failure
from emitters.sql import CallRecord, RunSummary, TimelineRow

__all__ = [
    "call_json",
    "calls_json_text",
    "event_json",
    "infra_json",
    "iso",
    "iso_micros",
    "json_response",
    "run_json",
    "run_ref_json",
]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
dumps = _dumps
"""Compact JSON text, non-ASCII characters as they are."""
# A JSON string literal of a str, with the escapes JSON needs (C-accelerated).
_quoted = json.encoder.encode_basestring


def json_response(data: Any, status_code: int = 200) -> Response:
    """A JSON response (UTF-8, compact)."""
    return Response(
        _dumps(data).encode(), status_code=status_code, media_type="application/json"
    )


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` (the store's times are UTC)."""
    if moment is None:
        return None
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def run_json(run: RunSummary, first_failure_event: str | None = None) -> dict[str, Any]:
    """A run summary; ``first_failure_event`` is its first failure's event id."""
    failure = run.first_failure
    return {
        "id": run.id,
        "short_id": run.short_id,
        "name": run.name,
        "source": run.source,
        "labels": run.labels,
        "started": iso(run.started),
        "last_event": iso(run.last_event),
        "duration_ms": run.duration.total_seconds() * 1000,
        "calls": run.calls,
        "failures": run.failures,
        "events_lost": run.events_lost,
        "infrastructure_events": run.infrastructure_events,
        "first_failure": None
        if failure is None
        else {
            "block": failure.block,
            "method": failure.method,
            "error_type": failure.error_type,
            "occurred": iso(failure.occurred),
            "event_id": first_failure_event,
        },
    }


def run_ref_json(run: RunSummary) -> dict[str, Any]:
    """A run as a candidate of an ambiguous or unknown reference."""
    return {
        "id": run.id,
        "short_id": run.short_id,
        "name": run.name,
        "started": iso(run.started),
    }


def call_json(call: CallRecord) -> dict[str, Any]:
    """One call of a run's timeline."""
    return {
        "event_id": call.event_id,
        "outcome_event_id": call.outcome_event_id,
        "block": call.block,
        "method": call.method,
        "started": iso(call.started),
        "duration_ms": call.duration_ms,
        "outcome": call.outcome,
        "error_type": call.error_type,
        "error_message": call.error_message,
        "caller": call.caller,
        "task_run_id": call.task_run_id,
        "task_run_name": call.task_run_name,
    }


def _text(value: str | None) -> str:
    return "null" if value is None else str(_quoted(value))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)


def _second_text(second: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of the second ``second`` seconds after the epoch."""
    return (_EPOCH + second * _ONE_SECOND).replace(tzinfo=None).isoformat()


def iso_micros(micros: int) -> str:
    """:func:`iso` of the moment ``micros`` microseconds after the Unix epoch."""
    second, fraction = divmod(micros, 1_000_000)
    prefix = _second_text(second)
    return f"{prefix}.{fraction:06d}Z" if fraction else f"{prefix}Z"


def calls_json_text(calls: list[TimelineRow]) -> str:
    """The JSON text of ``[call_json(CallRecord.from_row(c)) for c in calls]``,
    written directly from the store's tuples.

    A run of 10,000 calls is answered within 200 ms: building a record, a datetime
    and a dict per call and encoding it costs more than writing its text (ids,
    times and the outcome are known to need no escaping; every other text is
    escaped as JSON requires). What repeats from call to call is written once:
    each second of a start time, a block with its method, a task run, an outcome
    without error.
    """
    seconds: dict[int, str] = {}
    names: dict[tuple[str, str], str] = {}
    tasks: dict[tuple[str | None, str | None], str] = {}
    parts = []
    for (
        started_us,
        event_id,
        block,
        method,
        duration_ms,
        outcome,
        error_type,
        error_message,
        caller,
        task_run_id,
        task_run_name,
        outcome_event_id,
    ) in calls:
        second, fraction = divmod(started_us, 1_000_000)
        started = seconds.get(second)
        if started is None:
            started = seconds[second] = _second_text(second)
        if fraction:
            started = f"{started}.{fraction:06d}"
        name = names.get((block, method))
        if name is None:
            name = names[block, method] = (
                f'"block":{_quoted(block)},"method":{_quoted(method)}'
            )
        task = tasks.get((task_run_id, task_run_name))
        if task is None:
            task = tasks[task_run_id, task_run_name] = (
                f'"task_run_id":{_text(task_run_id)},'
                f'"task_run_name":{_text(task_run_name)}'
            )
        if error_type is None and error_message is None:
            ending = _NO_ERROR[outcome]
        else:
            ending = (
                f'"outcome":"{outcome}","error_type":{_text(error_type)},'
                f'"error_message":{_text(error_message)}'
            )
        duration = "null" if duration_ms is None else repr(float(duration_ms))
        outcome_id = "null" if outcome_event_id is None else f'"{outcome_event_id}"'
        parts.append(
            f'{{"event_id":"{event_id}","outcome_event_id":{outcome_id},{name},'
            f'"started":"{started}Z","duration_ms":{duration},{ending},'
            f'"caller":{"null" if caller is None else _quoted(caller)},{task}}}'
        )
    return "[" + ",".join(parts) + "]"


_NO_ERROR = {
    outcome: f'"outcome":"{outcome}","error_type":null,"error_message":null'
    for outcome in ("succeeded", "failed", "running")
}


def infra_json(event: Event) -> dict[str, Any]:
    """An infrastructure event of a run: what happened to which resource."""
    payload = event.payload
    state = event.event.rpartition(".")[2]
    failure = infra_failure(event.event, json.dumps(payload))
    reason = payload.get("reason") or payload.get("stoppedReason")
    summary = f"{event.resource.name or event.resource.id}: {state}"
    if failure and failure != state:
        summary += f" ({failure})"
    elif isinstance(reason, str) and reason and reason.lower() != state:
        summary += f" ({reason})"
    return {
        "event_id": str(event.id),
        "occurred": iso(event.occurred),
        "event": event.event,
        "resource": event.resource.id,
        "resource_name": event.resource.name,
        "failure": failure is not None,
        "summary": summary,
    }


def event_json(event: Event) -> dict[str, Any]:
    """A stored event as its JSON form (what ``Event.model_dump_json`` writes)."""
    data: dict[str, Any] = json.loads(event.model_dump_json())
    return data
