"""The records waiting for the dispatcher, bounded by bytes, and what sheds them.

The caller's thread appends a record to a plain ``deque`` (the cheapest thing it
can do) and, every 1,024 records, asks :meth:`RecordBuffer.over_budget`. The
estimate is the number of queued records times what one costs (a call's two
tuples, their key and timestamps, its entries in the call table: about 180 bytes
a record, measured with ``tracemalloc``), plus what is known to weigh more: long
error messages and events built by ``emit_event``. Nothing is ever built or
encoded here.

When the estimate passes the budget, :meth:`RecordBuffer.shed` makes room, in
this order, until the estimate is back under three quarters of it:

1. the ``started`` halves of calls that succeeded (their outcome still says
   what was called, when, for how long; it costs half the sinks' work);
2. whole successful calls and ``emit_event`` events, oldest first;
3. whatever is left, oldest first: calls still running, then failures.

Every record shed is counted in a :class:`LossLedger` per run and per minute,
failures apart, so that the loss can be recorded where users look.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat

from emitters._model import RelatedResource
from emitters._pipeline.record import (
    CALL_KEY,
    CALLS,
    KIND_CALL,
    KIND_EVENT,
    KIND_OUTCOME,
    Record,
)
from emitters._settings import DEFAULT_MAX_BUFFER_BYTES

__all__ = [
    "DEFAULT_MAX_BUFFER_BYTES",
    "RECORD_BYTES",
    "Loss",
    "LossLedger",
    "RecordBuffer",
]

# What one queued record costs, on average over a call's two records (measured
# with tracemalloc on CPython 3.11: two 5-slot tuples with their key and
# timestamps, and the call's entries in the call table; 160 bytes outside a
# run, 187 in one; references to shared objects cost nothing extra).
RECORD_BYTES = 180
# Beyond the budget, shed down to this share of it.
_SHED_TO = 0.75


@dataclass
class Loss:
    """Records lost for one run in one minute.

    Attributes:
        run: The run's related resources (flow run, task run), or () for none.
        minute: The wall-clock minute of the loss, in seconds since the epoch.
        lost: How many events were lost.
        failures: How many of them were ``failed`` outcomes.
    """

    run: tuple[RelatedResource, ...]
    minute: int
    lost: int = 0
    failures: int = 0


@dataclass
class LossLedger:
    """Counts of lost events per run and per minute, until they are reported."""

    lost: int = 0
    failures: int = 0
    _open: dict[tuple[str, int], Loss] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, records: Iterable[Record]) -> None:
        """Count ``records`` as lost."""
        minute = int(time.time()) // 60 * 60
        with self._lock:
            for record in records:
                failed, run = _describe_loss(record)
                key = (run[0].id if run else "", minute)
                loss = self._open.get(key)
                if loss is None:
                    loss = self._open[key] = Loss(run, minute)
                loss.lost += 1
                self.lost += 1
                if failed:
                    loss.failures += 1
                    self.failures += 1

    def pending(self) -> bool:
        """Whether losses wait to be reported."""
        return bool(self._open)

    def take(self) -> list[Loss]:
        """Return the losses counted since the last call, and forget them."""
        with self._lock:
            taken = list(self._open.values())
            self._open.clear()
        return taken


def _describe_loss(record: Record) -> tuple[bool, tuple[RelatedResource, ...]]:
    """Whether a record is a failure, and the run it belongs to."""
    if record[0] == KIND_CALL:
        call = record
        failed = False
    elif record[0] == KIND_OUTCOME:
        call = record[1]
        failed = record[4] is not None
    else:  # an emit_event event: its run is among its related resources
        event = record[1]
        run = tuple(r for r in event.related if r.role in ("flow-run", "task-run"))
        return event.event.endswith(".failed"), run
    context = CALLS.runs.get(call[CALL_KEY])
    return failed, (context.related if context is not None else ())


class RecordBuffer:
    """The queue between the callers and the dispatcher, with its byte budget.

    Args:
        max_bytes: The budget for everything queued, estimated as described in
            this module's docstring.
    """

    def __init__(self, max_bytes: int) -> None:
        self.queue: deque[Record] = deque()
        self.max_bytes = max_bytes
        # Bytes beyond RECORD_BYTES a record: long messages, built events, and
        # calls kept alive by an outcome whose started record was shed. Updated
        # without a lock by callers: an estimate, clamped at zero.
        self.extra_bytes = 0
        self.ledger = LossLedger()
        # Taken by the dispatcher to pop and by shed() to rebuild the queue, so
        # that neither sees the other's half-done work.
        self.lock = threading.Lock()
        # The batch the dispatcher is building, and the calls whose outcome was
        # shed while their started record was in it: the dispatcher forgets
        # those once it is done with the batch (see done_with_batch).
        self._in_flight: list[Record] = []
        self._deferred: list[int] = []

    def weigh(self, nbytes: int) -> None:
        """Add ``nbytes`` to the estimate (a record that weighs more than most)."""
        self.extra_bytes += nbytes

    def estimate(self) -> int:
        """The estimated bytes held by queued records."""
        return len(self.queue) * RECORD_BYTES + max(0, self.extra_bytes)

    def over_budget(self) -> bool:
        """Whether the estimate is past the budget."""
        return len(self.queue) * RECORD_BYTES + self.extra_bytes > self.max_bytes

    def pop_batch(self, size: int) -> list[Record]:
        """Take up to ``size`` records from the front, oldest first."""
        with self.lock:
            queue = self.queue
            # Popped in C, without a step of the interpreter a record.
            out: list[Record] = list(
                map(deque.popleft, repeat(queue, min(size, len(queue))))
            )
            self._in_flight = out
        self._release(out)
        return out

    def done_with_batch(self) -> None:
        """The dispatcher built (or let go of) the last batch it popped."""
        with self.lock:
            self._in_flight = []
            deferred, self._deferred = self._deferred, []
        CALLS.release_all(deferred)

    def _release(self, records: list[Record]) -> None:
        """Take what ``records`` weighed beyond RECORD_BYTES off the estimate."""
        # An error's message, or an event built by emit_event(), weighs more
        # than RECORD_BYTES (see weigh()); with nothing weighed, nothing to free.
        if self.extra_bytes <= 0:
            return
        freed = 0
        for record in records:
            kind = record[0]
            if kind == KIND_OUTCOME:
                error = record[4]
                if error is not None:
                    freed += len(error[1])
            elif kind == KIND_EVENT:
                freed += EVENT_BYTES
        if freed:
            self.extra_bytes = max(0, self.extra_bytes - freed)

    def shed(self) -> int:
        """Drop records by the order of this module's docstring; return how many."""
        with self.lock:
            queue = self.queue
            # Take what is queued now; callers go on appending behind it.
            taken = [queue.popleft() for _ in range(len(queue))]
            target = int(self.max_bytes * _SHED_TO)
            kept, lost, orphans = _shed(taken, target, max(0, self.extra_bytes))
            queue.extendleft(reversed(kept))
            # An outcome shed is the end of its call in the pipeline; a call
            # whose started record is being built now is forgotten after that.
            building = {r[CALL_KEY] for r in self._in_flight if r[0] == KIND_CALL}
            ended: list[int] = []
            for record in lost:
                if record[0] == KIND_OUTCOME:
                    key = record[1][CALL_KEY]
                    (self._deferred if key in building else ended).append(key)
            # Under the lock: once it is released, the dispatcher may build the
            # outcome of a started record shed here and forget the call's run.
            self.ledger.note(lost)
        self._release(lost)
        CALLS.release_all(ended)
        self.extra_bytes += orphans * ORPHAN_BYTES
        return len(lost)

    def release_orphans(self, n: int) -> None:
        """``n`` outcomes of calls whose started record was shed were consumed."""
        if n:
            self.extra_bytes = max(0, self.extra_bytes - n * ORPHAN_BYTES)


# A built event waiting in the queue (emit_event builds its event on the spot).
EVENT_BYTES = 1280
# A call whose started record was shed stays in memory through its outcome.
ORPHAN_BYTES = RECORD_BYTES


def _orphans(records: list[Record]) -> int:
    """Outcomes in ``records`` whose call is kept alive by them alone: its started
    record was shed (never built) and is not among ``records``."""
    started = {r[CALL_KEY] for r in records if r[0] == KIND_CALL}
    built = CALLS.started
    return sum(
        1
        for r in records
        if r[0] == KIND_OUTCOME
        and r[1][CALL_KEY] not in started
        and r[1][CALL_KEY] not in built
    )


def _shed(
    records: list[Record], target: int, extra: int
) -> tuple[list[Record], list[Record], int]:
    """Choose what to drop from ``records`` by the three-step order.

    Returns the records kept (in order), those lost, and the change in the
    number of calls kept alive only by their outcome.
    """
    before = _orphans(records)
    succeeded = {
        r[1][CALL_KEY] for r in records if r[0] == KIND_OUTCOME and r[4] is None
    }
    lost: list[Record] = []
    kept: list[Record] = []
    # 1. The started halves of successful calls whose outcome is queued.
    for r in records:
        if r[0] == KIND_CALL and r[CALL_KEY] in succeeded:
            lost.append(r)
        else:
            kept.append(r)
    extra += len(lost) * ORPHAN_BYTES
    excess = len(kept) - max(0, target - extra) // RECORD_BYTES
    if excess > 0:
        # 2. Whole successful calls and emit_event events, oldest first.
        rest: list[Record] = []
        for r in kept:
            if excess > 0 and (
                r[0] == KIND_EVENT or (r[0] == KIND_OUTCOME and r[4] is None)
            ):
                lost.append(r)
                # An outcome whose started record is gone also frees its call.
                orphaned = r[0] == KIND_OUTCOME and r[1][CALL_KEY] not in CALLS.started
                excess -= 2 if orphaned else 1
            else:
                rest.append(r)
        kept = rest
    if excess > 0:
        # 3. Whatever is left, oldest first: running calls before failures.
        order: list[Record] = [r for r in kept if r[0] == KIND_CALL]
        order += [r for r in kept if r[0] != KIND_CALL]
        doomed = {id(r) for r in order[:excess]}
        lost.extend(r for r in kept if id(r) in doomed)
        kept = [r for r in kept if id(r) not in doomed]
    return kept, lost, _orphans(kept) - before
