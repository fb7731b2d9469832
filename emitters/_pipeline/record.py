"""The queued records: their one definition, and named accessors for readers.

The caller's thread queues the cheapest thing that carries a call: two tuples,
one when it starts and one when it ends. Building a class instance per call
would cost more than the rest of the hot path, so the layout is positional,
defined here once, and every reader outside the pipeline's own builder goes
through the accessors below.

The tuples hold only ints, strings, ``None`` and each other, never the block,
the run context or the OpenTelemetry context: CPython's cyclic garbage collector
stops tracking such a tuple the first time it sees it, so a queue of a million
waiting records costs its collections nothing, and does not make them run more
often (a tracked record per call made full collections walk every waiting
record, and everything else in the program, again and again). The objects a call
refers to wait in the :data:`CALLS` table instead, under the call's key, from
the call's start until its outcome record leaves the pipeline (built, shed or
discarded).

A queued record is one of:

- a **call** (its ``started`` record): the tuple
  ``(KIND_CALL, key, method, caller, start_ns)``, made by :func:`new_call`,
  where ``key`` is unique in the process and ``caller`` the call record of the
  block call this one was made from, or None.
- an **outcome**: ``(KIND_OUTCOME, call, end_ns, extra_payload | None,
  (error_type, message) | None)``, made by :func:`new_outcome`.
- an **event** built by ``emit_event()``: ``(KIND_EVENT, event)``.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from itertools import repeat
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emitters._context import RunContext

__all__ = [
    "CALLS",
    "CALL_CALLER",
    "CALL_KEY",
    "CALL_METHOD",
    "CALL_T0",
    "FINISHED_KEPT",
    "KIND_CALL",
    "KIND_EVENT",
    "KIND_OUTCOME",
    "UNKNOWN",
    "Call",
    "CallTable",
    "Record",
    "call_method",
    "call_otel_context",
    "call_run",
    "call_source",
    "keys_issued",
    "new_call",
    "new_outcome",
    "next_key",
]

KIND_CALL = 0
KIND_OUTCOME = 1
KIND_EVENT = 2
_, CALL_KEY, CALL_METHOD, CALL_CALLER, CALL_T0 = range(5)

Call = tuple[Any, ...]
Record = tuple[Any, ...]

# Runs an iterator to its end, keeping nothing.
_consume: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend


class CallTable:
    """What the calls in the pipeline refer to, by call key (one per process).

    Attributes:
        sources: The object whose method was called, from the call's start
            until its outcome leaves the pipeline.
        runs: The run context snapshotted at the call's start, when there was one.
        contexts: The OpenTelemetry context at the call's start, when it was
            not empty.
        started: Filled by the dispatcher: the ``started`` event's id of a call,
            as an integer (and its described parts), from the moment it is
            known until the outcome is built, so the outcome can follow it
            (a call whose outcome is built right after its started record
            never enters it).
        finished: The ``started`` event ids of the calls released last, as
            integers so that the garbage collector never walks them (None for a
            call whose ``started`` event was never built), in two generations
            of :data:`FINISHED_KEPT` keys each, plus the rest of the release
            that filled one: work a call left behind (a task, a thread given
            its context) may make calls that name it after its outcome left
            the pipeline.
    """

    __slots__ = ("contexts", "finished", "older", "runs", "sources", "started")

    def __init__(self) -> None:
        self.sources: dict[int, Any] = {}
        self.runs: dict[int, RunContext] = {}
        self.contexts: dict[int, Mapping[str, Any]] = {}
        self.started: dict[int, tuple[Any, Any]] = {}
        self.finished: dict[int, Any] = {}
        self.older: dict[int, Any] = {}

    def release_all(self, keys: list[int]) -> None:
        """Forget the calls ``keys``, in order: their outcomes left the
        pipeline. Each keeps only its ``started`` id, in :attr:`finished`."""
        started_pop = self.started.pop
        ids = [None if (s := started_pop(key, None)) is None else s[0] for key in keys]
        self.release_built(keys, ids)

    def release_built(self, keys: list[int], started_ids: list[int | None]) -> None:
        """Forget the calls ``keys``, in order, whose ``started`` ids are
        ``started_ids`` (None for one never built): the dispatcher knows them
        from the outcomes it just built."""
        none = repeat(None)
        for table in (self.sources, self.runs, self.contexts, self.started):
            if table:  # most programs never fill some of them
                _consume(map(table.pop, keys, none))
        finished = self.finished
        finished.update(zip(keys, started_ids, strict=True))
        if len(finished) >= FINISHED_KEPT:
            self.older = finished
            self.finished = {}

    def finished_id(self, key: int) -> Any:
        """Return the ``started`` id of a released call, as an integer:
        :data:`UNKNOWN` when the call was not released lately, None when its
        ``started`` event was never built."""
        finished = self.finished
        if key in finished:
            return finished[key]
        return self.older.get(key, UNKNOWN)

    def remember_finished(self, key: int, started_id: int) -> None:
        """Keep the id made up for a released call that was never given one."""
        self.finished[key] = started_id


FINISHED_KEPT = 32_768
"""How many released calls one generation of :attr:`CallTable.finished` keeps."""

UNKNOWN: Any = object()
"""What :meth:`CallTable.finished_id` returns for a call not released lately."""


CALLS = CallTable()

# Keys of calls and the pipeline's count of emitted records, in one counter:
# the hot path asks it once per record anyway.
_keys = itertools.count()
next_key = _keys.__next__


def keys_issued() -> int:
    """How many keys :func:`next_key` has given out so far."""
    # itertools.count has no public getter; its repr is "count(N)".
    return int(repr(_keys)[6:-1])


def new_call(
    source: Any,
    method: str,
    run: RunContext | None,
    otel: Mapping[str, Any] | None,
    caller: Call | None,
    start_ns: int,
) -> Call:
    """Register a call that starts now, and return its ``started`` record.

    The sync wrapper does the same inline, since a function call is a
    measurable part of its cost; a test pins that both agree.
    """
    key = next_key()
    CALLS.sources[key] = source
    if run is not None:
        CALLS.runs[key] = run
    if otel:
        CALLS.contexts[key] = otel
    return (KIND_CALL, key, method, caller, start_ns)


def new_outcome(
    call: Call,
    end_ns: int,
    extra: dict[str, Any] | None,
    error: tuple[str, str] | None,
) -> tuple[Any, ...]:
    """Return the outcome record of ``call``."""
    return (KIND_OUTCOME, call, end_ns, extra, error)


def call_source(call: Call) -> Any:
    """The object whose method was called (it has ``__eventblocks_source__``).

    Known while the call's outcome is in the pipeline.
    """
    return CALLS.sources.get(call[CALL_KEY])


def call_method(call: Call) -> str:
    """The name of the method called."""
    method: str = call[CALL_METHOD]
    return method


def call_run(call: Call) -> RunContext | None:
    """The run context snapshotted when the call started, or None."""
    return CALLS.runs.get(call[CALL_KEY])


def call_otel_context(call: Call) -> Mapping[str, Any] | None:
    """The OpenTelemetry context active when the call started, or None."""
    return CALLS.contexts.get(call[CALL_KEY])
