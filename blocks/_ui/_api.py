"""The JSON API under ``/api/``: runs, a run's timeline, blocks, a block's runs, an
event. Every handler only reads.

Handlers are plain functions (Starlette runs them on its thread pool, so a slow
query never holds the event loop). A malformed parameter answers 400, an unknown
run or event 404, a database that cannot be read 503; each with
``{"error": "..."}`` and never a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response

from blocks._documents.store import DocumentStore
from blocks._ui import _params as params
from blocks._ui._documents import saved_documents
from blocks._ui._json import (
    calls_json_text,
    dumps,
    event_json,
    infra_json,
    iso,
    iso_micros,
    json_response,
    run_json,
    run_ref_json,
)
from emitters import Event
from emitters._sdk import INFRA_PREFIX, first_failure, infra_failure, redact_text
from emitters.sql import (
    BlockRunSummary,
    CallRecord,
    RunLookupError,
    RunSummary,
    SQLEventStore,
    TimelineRow,
)

__all__ = ["Api"]

_log = logging.getLogger("blocks.ui")

RUNS_LIMIT = 50
RUNS_MOST = 500
# At most this many infrastructure events of one run are shown.
INFRA_SHOWN = 1000

Handler = Callable[[Request], Response]


class Api:
    """The API's handlers over one event store (and, optionally, documents)."""

    def __init__(
        self, store: SQLEventStore, documents: DocumentStore | None = None
    ) -> None:
        self.store = store
        self.documents = documents

    def handler(self, answer: Callable[[Request], Any]) -> Handler:
        """Wrap ``answer`` (request -> JSON-ready data): errors become JSON."""

        def handle(request: Request) -> Response:
            try:
                data = answer(request)
                if isinstance(data, Response):
                    return data
                return json_response(data)
            except RunLookupError as exc:
                return json_response(
                    {
                        "error": str(exc),
                        "candidates": [run_ref_json(r) for r in exc.candidates],
                    },
                    404,
                )
            except _NotFound as exc:
                return json_response({"error": str(exc)}, 404)
            except ValueError as exc:
                return json_response({"error": str(exc)}, 400)
            except SQLAlchemyError as exc:
                cause = type(getattr(exc, "orig", None) or exc).__name__
                message = f"Cannot read events from {self.store.display_url} ({cause})."
                _log.warning("%s %s: %s", request.method, request.url.path, message)
                return json_response({"error": redact_text(message)}, 503)

        return handle

    # -- runs ------------------------------------------------------------------

    def runs(self, request: Request) -> dict[str, Any]:
        """``GET /api/runs``: the latest runs, filtered."""
        query = request.query_params
        runs = self.store.runs(
            name=params.text(query, "name"),
            failed=params.boolean(query, "failed"),
            since=params.moment(query, "since"),
            until=params.moment(query, "until"),
            source=params.text(query, "source"),
            limit=params.limit(query, "limit", RUNS_LIMIT, RUNS_MOST),
        )
        return {"runs": [run_json(r) for r in runs], "total_shown": len(runs)}

    def run(self, request: Request) -> dict[str, Any]:
        """``GET /api/runs/{ref}``: one run's summary."""
        found = self.store.find_run(request.path_params["ref"])
        return {"run": run_json(found, self._first_failure_event(found))}

    def _first_failure_event(self, run: RunSummary) -> str | None:
        """The id of the run's first failure as the timeline names it: the failed
        call's ``started`` event, or the infrastructure event."""
        failure = run.first_failure
        if failure is None:
            return None
        at = failure.occurred
        for event in self.store.events(
            flow_run=run.id, since=at, until=at + timedelta(microseconds=1), limit=50
        ):
            if event.event.startswith(INFRA_PREFIX):
                if infra_failure(event.event, _payload_text(event)) is not None:
                    return str(event.id)
            elif event.event.endswith(".failed"):
                return str(event.follows or event.id)
        return None

    def timeline(self, request: Request) -> Response:
        """``GET /api/runs/{ref}/timeline``: calls, task bands, infrastructure."""
        store = self.store
        found = store.find_run(request.path_params["ref"])
        # Plain tuples, no record or datetime per call (see calls_json_text).
        calls = store.timeline_rows(found.id)
        infra: list[Event] = []
        if found.infrastructure_events:  # the summary says whether to look
            infra = store.events(
                flow_run=found.id, name=f"{INFRA_PREFIX}*", limit=INFRA_SHOWN
            )
        # Only the first failed call can be the first failure.
        failed = next((c for c in calls if c[5] == "failed"), None)
        first = first_failure(
            [] if failed is None else [CallRecord.from_row(failed)], infra
        )
        # The calls' text is written directly; the rest is small and goes through
        # the encoder.
        body = (
            f'{{"run":{dumps(run_json(found, first))},'
            f'"calls":{calls_json_text(calls)},'
            f'"tasks":{dumps(_tasks(calls))},'
            f'"infrastructure":{dumps([infra_json(e) for e in infra])},'
            f'"first_failure":{dumps(first)}}}'
        )
        return Response(body.encode(), media_type="application/json")

    # -- events ----------------------------------------------------------------

    def event(self, request: Request) -> dict[str, Any]:
        """``GET /api/events/{event_id}``: a stored event, and its outcome when it
        is a call's ``started`` event."""
        event_id = request.path_params["event_id"]
        try:
            found = self.store.event(event_id)
        except ValueError:
            raise params.BadParameter(
                f"event_id: expected an event's UUID, got {event_id!r}"
            ) from None
        if found is None:
            raise _NotFound(f"No event with id {event_id!r} is stored.")
        outcome = None
        if found.event.endswith(".started"):
            outcome = self.store.outcome_of(found)
        return {
            "event": event_json(found),
            "outcome": None if outcome is None else event_json(outcome),
        }

    # -- blocks ----------------------------------------------------------------

    def blocks(self, request: Request) -> dict[str, Any]:
        """``GET /api/blocks``: blocks seen in events, and saved documents."""
        seen = {b.block: b for b in self.store.blocks()}
        out: dict[str, dict[str, Any]] = {}
        for b in seen.values():
            out[b.block] = {
                "block": b.block,
                "type": b.block_type,
                "saved": b.name is not None,
                "runs": b.runs,
                "calls": b.calls,
                "failures": b.failures,
                "last_used": iso(b.last_used),
            }
        if self.documents is not None:
            for doc in saved_documents(self.documents):
                address = f"{doc.block_type}/{doc.name}"
                out.setdefault(
                    address,
                    {
                        "block": address,
                        "type": doc.block_type,
                        "saved": True,
                        "runs": 0,
                        "calls": 0,
                        "failures": 0,
                        "last_used": None,
                    },
                )
        return {"blocks": [out[key] for key in sorted(out)]}

    def block_runs(self, request: Request) -> dict[str, Any]:
        """``GET /api/blocks/{slug}/{name}/runs`` (or ``/api/blocks/{slug}/runs``):
        the runs that used a block, when it started failing, its last error."""
        slug = request.path_params["slug"]
        name = request.path_params.get("name")
        block = f"{slug}/{name}" if name is not None else slug
        runs = self.store.runs_for_block(block)
        streak = _failing_streak(runs)
        failing_since = None
        if streak:
            failing_since = self._first_failure_at(block, streak[0]) or iso(
                streak[0].first_used
            )
        last = self.store.events(block=block, failed=True, limit=1, order="desc")
        last_error = None
        if last:
            error = last[0].payload.get("error")
            error = error if isinstance(error, dict) else {}
            flow_runs = last[0].related_by_role("flow-run")
            last_error = {
                "type": error.get("type"),
                "message": error.get("message"),
                "occurred": iso(last[0].occurred),
                "flow_run_id": flow_runs[0].id.removeprefix("flow-run.")
                if flow_runs
                else None,
            }
        ordered = sorted(
            runs, key=lambda r: (r.last_used, r.flow_run_id or ""), reverse=True
        )
        return {
            "block": block,
            "runs": [_block_run_json(r) for r in ordered],
            "failing_since": failing_since,
            "failed_runs_since": len(streak),
            "last_error": last_error,
        }

    def _first_failure_at(self, block: str, run: BlockRunSummary) -> str | None:
        """When ``run``'s first failure of ``block`` occurred."""
        failed = self.store.events(
            block=block,
            flow_run=run.flow_run_id,
            failed=True,
            since=run.first_used,
            limit=1,
        )
        return iso(failed[0].occurred) if failed else None


class _NotFound(LookupError):
    """What the request names is not stored (404)."""


def _payload_text(event: Event) -> str:
    return json.dumps(event.payload)


def _tasks(calls: list[TimelineRow]) -> list[dict[str, Any]]:
    """The task runs of a timeline, each from its first call's start to its last
    call's end."""
    bands: dict[str, list[Any]] = {}
    for call in calls:
        task_run_id = call[9]
        if task_run_id is None:
            continue
        start = end = call[0]
        if call[4] is not None:
            end = start + ms_to_micros(call[4])
        band = bands.get(task_run_id)
        if band is None:
            bands[task_run_id] = [call[10], start, end]
        else:
            if start < band[1]:
                band[1] = start
            if end > band[2]:
                band[2] = end
    return [
        {
            "id": task_id,
            "name": name,
            "started": iso_micros(start),
            "ended": iso_micros(end),
        }
        for task_id, (name, start, end) in bands.items()
    ]


_ONE_US = timedelta(microseconds=1)


def ms_to_micros(ms: float) -> int:
    """``timedelta(milliseconds=ms)`` in whole microseconds, rounded as it rounds.

    Away from a half microsecond the nearest integer is that; near one, the
    timedelta decides (its rounding of a tie differs from ``round``'s).
    """
    micros = ms * 1000.0
    nearest = round(micros)
    if abs(abs(micros - nearest) - 0.5) < 1e-3:
        return timedelta(milliseconds=ms) // _ONE_US
    return nearest


def _failing_streak(runs: list[BlockRunSummary]) -> list[BlockRunSummary]:
    """The runs with failures since the last run without one, oldest first.

    Calls outside any flow run are no run of their own and do not count.
    """
    streak: list[BlockRunSummary] = []
    for run in sorted(runs, key=lambda r: (r.first_used, r.flow_run_id or "")):
        if run.flow_run_id is None:
            continue
        if run.failures:
            streak.append(run)
        else:
            streak.clear()
    return streak


def _block_run_json(run: BlockRunSummary) -> dict[str, Any]:
    return {
        "flow_run_id": run.flow_run_id,
        "flow_run_name": run.flow_run_name,
        "first_used": iso(run.first_used),
        "last_used": iso(run.last_used),
        "calls": run.calls,
        "failures": run.failures,
        "last_error_type": run.last_error_type,
    }
