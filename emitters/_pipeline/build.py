"""Turning queued records into drafts of events, on the dispatcher's thread.

The caller's thread records only references and a monotonic timestamp; here those
become ids, wall-clock times, names, related resources and payloads. Parts that
repeat (names, a block's resources, a run's related resource) are cached.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from emitters._context import RunContext, environment_run_context
from emitters._ids import _COUNTER_LIMIT, IdSequence
from emitters._ids import _VERSION_AND_VARIANT as _VV
from emitters._model import RelatedResource, Resource
from emitters._pipeline.batch import Described, Item, event_maker
from emitters._pipeline.record import (
    CALL_CALLER,
    CALL_KEY,
    CALL_METHOD,
    CALL_T0,
    CALLS,
    KIND_CALL,
    KIND_OUTCOME,
    UNKNOWN,
    Call,
    Record,
)
from emitters._redact import redact_event, redact_payload, redact_related
from emitters._registry import has_secrets
from emitters._registry import version as secrets_version
from emitters._text import mend_text
from emitters._trace import trace_related

__all__ = [
    "EventBuilder",
    "SourceInfo",
    "SupportsEventSource",
    "jsonable",
]

# The records' layout is defined in emitters._pipeline.record, the drafts' in
# emitters._pipeline.batch.
_RESYNC_NS = 10_000_000_000  # re-read the wall clock every 10 s
_DESCRIBED_MAX = 4096
_COUNTER_ONE = 1 << 64  # one more in an id's counter (see IdSequence.from_ms)
# What an outcome built right after its started record knows of it instead of
# its entry in CALLS.started (see EventBuilder.build).
_PAIRED: tuple[Any, Any] = (None, None)


def jsonable(value: Any) -> Any:
    """Return ``value`` with anything JSON cannot carry turned into its ``str``.

    Lone surrogates in text (undecodable file names) are escaped, as
    emitters._text describes.
    """
    if isinstance(value, str):
        return mend_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {mend_text(str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return mend_text(str(value))


class SourceInfo(NamedTuple):
    """How an object that emits call events describes itself.

    Attributes:
        prefix: The start of its event names, such as ``block.s3-bucket``.
        resource: The resource its events are about.
        related: Related resources on every one of its events.
    """

    prefix: str
    resource: Resource
    related: tuple[RelatedResource, ...]


class SupportsEventSource(Protocol):
    """An object whose method calls are recorded (a block)."""

    def __eventblocks_source__(self) -> SourceInfo: ...


class EventBuilder:
    """Builds events from records; used by one dispatcher thread only."""

    def __init__(self) -> None:
        self._names: dict[tuple[str, str], tuple[str, str, str]] = {}
        self._env_run = RunContext()
        self._described: dict[
            tuple[int, int, str, int], tuple[SourceInfo, RunContext, Described]
        ] = {}
        # The dispatcher is the only thread that builds: it needs no lock.
        self._ids = IdSequence()
        self._offset_ns = 0
        self._synced_at = -_RESYNC_NS
        self._orphans = 0

    def take_orphans(self) -> int:
        """Outcomes built since the last call whose started record was dropped."""
        n, self._orphans = self._orphans, 0
        return n

    # -- time --------------------------------------------------------------------

    def _offset(self) -> int:
        """Return wall-clock minus monotonic nanoseconds, re-read every 10 s."""
        now = time.perf_counter_ns()
        if now - self._synced_at > _RESYNC_NS:
            self._offset_ns = time.time_ns() - time.perf_counter_ns()
            self._synced_at = now
        return self._offset_ns

    # -- parts -------------------------------------------------------------------

    def _names_for(self, prefix: str, method: str) -> tuple[str, str, str]:
        key = (prefix, method)
        names = self._names.get(key)
        if names is None:
            base = f"{prefix}.{method}"
            names = (f"{base}.started", f"{base}.succeeded", f"{base}.failed")
            self._names[key] = names
        return names

    def _ensure_id(self, call: Call) -> int:
        """Return the id of the call's ``started`` event, as an integer, making it
        if need be (for a nested call whose caller's started record was shed)."""
        key = call[CALL_KEY]
        known = CALLS.started.get(key)
        if known is not None:
            known_id: int = known[0]
            return known_id
        # A caller whose outcome already left the pipeline (the call was made by
        # work it left behind) is named by the id its events carried.
        finished = CALLS.finished_id(key)
        if finished is not None and finished is not UNKNOWN:
            finished_id: int = finished
            return finished_id
        wall = call[CALL_T0] + self._offset()
        started_id = self._ids.from_ms(wall // 1_000_000).int
        if finished is None:
            CALLS.remember_finished(key, started_id)
        else:
            CALLS.started[key] = (started_id, None)
        return started_id

    def _describe(self, call: Call) -> Described:
        """Return the call's resource, related resources and event names.

        Calls of one block method in one run with no caller and no span share
        their parts, so those are cached by identity (the cache keeps the key
        objects alive, so an id cannot be reused while its entry exists).
        """
        key = call[CALL_KEY]
        info: SourceInfo = CALLS.sources[key].__eventblocks_source__()
        run: RunContext | None = CALLS.runs.get(key)
        if run is None:
            run = self._env_run
        otel = CALLS.contexts.get(key)
        caller = call[CALL_CALLER]
        method: str = call[CALL_METHOD]
        if not otel and caller is None:
            cache_key = (id(info), id(run), method, secrets_version())
            hit = self._described.get(cache_key)
            if hit is not None and hit[0] is info and hit[1] is run:
                return hit[2]
        # Run names and labels come from user code: mask them like payloads.
        related = info.related + redact_related(run.related)
        if otel:
            trace = trace_related(otel)
            if trace is not None:
                related += (trace,)
        if caller is not None:
            caller_id = self._ensure_id(caller)
            related += (
                RelatedResource(id=f"event.{UUID(int=caller_id)}", role="caller"),
            )
        described = (info.resource, related, *self._names_for(info.prefix, method))
        if not otel and caller is None:
            if len(self._described) >= _DESCRIBED_MAX:
                self._described.clear()
            self._described[cache_key] = (info, run, described)
        return described

    @staticmethod
    def release(records: list[Record]) -> None:
        """Forget the calls whose outcome is among ``records`` (see CALLS)."""
        CALLS.release_all(
            [record[1][CALL_KEY] for record in records if record[0] == KIND_OUTCOME]
        )

    # -- records -----------------------------------------------------------------

    def build(self, records: list[Record], events: bool = False) -> list[Item]:
        """Return the drafts of the events for ``records``, in order, with secrets
        redacted (see :mod:`emitters._pipeline.batch`); with ``events``, the
        events themselves (no sink reads drafts: making them would cost an
        object per event for nothing).

        This is the dispatcher's inner loop, so the common path is written out
        with local names (a function call costs as much as a field): ids and
        payloads are made from parts cached per call, and nothing is validated.
        Events built by ``emit_event()`` pass through as they are.
        """
        self._env_run = environment_run_context()
        offset = self._offset()
        ids = self._ids
        bits = ids.bits
        last_ms, counter = ids.last_ms, ids.counter
        # The id's bits but the random ones: its millisecond, version, counter
        # and variant (see IdSequence.from_ms).
        fixed = (last_ms << 80) | _VV | (counter << 64)
        describe = self._describe
        started_ids = CALLS.started
        sources, runs_get, contexts = CALLS.sources, CALLS.runs.get, CALLS.contexts
        # The parts of the calls of this batch, by the identities of the block,
        # the run and the method's name: every object named is held (by CALLS
        # and the batch) until the batch is built, so no id is reused meanwhile.
        # A source is asked to describe itself once per batch: a block that is
        # saved or loaded under another identity first waits for its queued
        # calls to be built (unless the dispatcher is stuck), so a batch's
        # calls of one block share one identity.
        batch_parts: dict[tuple[int, int, str], Described] = {}
        # The last started call whose id is not yet in CALLS.started: when its
        # outcome comes next (a call that made no other on the way), the outcome
        # takes the id and the parts from here and the call never enters the
        # table. Anything else that comes first publishes it there.
        # (Typed Any: the loop's locals hold a record's fields.)
        pending: Any = None
        pending_id = 0
        pending_described: Any = None
        # The parts of the last call described here, and what they were for.
        last_source: Any = None
        last_run: RunContext | None = None
        last_method = ""
        last_described: Any = None
        released: list[int] = []
        released_ids: list[int | None] = []
        masking = has_secrets()
        make = event_maker() if events else None
        out: list[Item] = []
        append = out.append
        known: Any
        for record in records:
            kind = record[0]
            if kind == KIND_OUTCOME and record[1] is pending:
                call = record[1]
                is_started = False
                wall = record[2] + offset
                key = call[1]
                known = _PAIRED
                follows = pending_id
                described = pending_described
                pending = None
            else:
                if pending is not None:
                    started_ids[pending[1]] = (pending_id, pending_described)
                    pending = None
                if kind == KIND_CALL:  # a call's started record
                    call = record
                    is_started = True
                    wall = call[CALL_T0] + offset
                elif kind == KIND_OUTCOME:
                    call = record[1]
                    is_started = False
                    wall = record[2] + offset
                else:
                    append(redact_event(record[1], resources=True))
                    continue
                key = call[1]
                known = started_ids.get(key)
                described = None if known is None else known[1]
                if described is None:
                    if call[3] is None and key not in contexts:  # no caller, no span
                        source, run, method = sources[key], runs_get(key), call[2]
                        if (
                            source is last_source
                            and run is last_run
                            and method == last_method
                        ):
                            described = last_described
                        else:
                            parts_key = (id(source), id(run), method)
                            described = batch_parts.get(parts_key)
                            if described is None:
                                described = describe(call)
                                batch_parts[parts_key] = described
                            last_source, last_run = source, run
                            last_method, last_described = method, described
                    else:
                        described = describe(call)
            # A UUIDv7 for this event, as an integer (see IdSequence.from_ms).
            ms = wall // 1_000_000
            if ms > last_ms:
                last_ms = ms
                counter = bits(11)
                fixed = (ms << 80) | _VV | (counter << 64)
            else:
                counter += 1
                if counter < _COUNTER_LIMIT:
                    fixed += _COUNTER_ONE
                else:
                    last_ms += 1
                    counter = bits(11)
                    fixed = (last_ms << 80) | _VV | (counter << 64)
            event_id = fixed | bits(62)
            if is_started:
                if known is not None:  # made earlier, by a call nested in this one
                    event_id = known[0]
                pending, pending_id, pending_described = call, event_id, described
                if make is None:
                    append((event_id, wall, described[2], described, None, None))
                else:
                    append(make((event_id, wall, described[2], described, None, None)))
                continue
            _, _, end_ns, extra, error = record
            if known is None:  # its started record was shed
                follows = self._ensure_id(call)
                self._orphans += 1
            elif known is not _PAIRED:
                follows = known[0]
            released.append(key)
            released_ids.append(follows)
            payload: dict[str, Any] = {"duration_ms": (end_ns - call[CALL_T0]) / 1e6}
            if error is None:
                name = described[3]
            else:
                name = described[4]
                payload["error"] = {"type": error[0], "message": error[1]}
            if extra:
                for key, value in extra.items():
                    payload.setdefault(mend_text(str(key)), jsonable(value))
            if masking and (error is not None or extra):
                payload = redact_payload(payload)
            if make is None:
                append((event_id, wall, name, described, payload, follows))
            else:
                append(make((event_id, wall, name, described, payload, follows)))
        if pending is not None:  # its outcome is still to come
            started_ids[pending[1]] = (pending_id, pending_described)
        # Only now, so that a batch built again record by record after a
        # failure still finds every call.
        CALLS.release_built(released, released_ids)
        ids.last_ms, ids.counter = last_ms, counter
        return out
