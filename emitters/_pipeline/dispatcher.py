"""The dispatcher: one configuration's queue, its thread and its sink workers.

The caller's thread appends records to the bounded queue; the dispatcher thread
drains it in batches, drafts the events (see :mod:`emitters._pipeline.build`), runs
the processors (on built events) and hands each batch to every sink's
:class:`~emitters._pipeline.delivery.SinkWorker` and to the taps of
``capture_events``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from emitters._emitter import Emitter
from emitters._ids import new_uuid7
from emitters._model import Event, Resource
from emitters._pipeline.batch import EventBatch, Item, materialize, reads_drafts
from emitters._pipeline.buffer import (
    DEFAULT_MAX_BUFFER_BYTES,
    RECORD_BYTES,
    Loss,
    RecordBuffer,
)
from emitters._pipeline.build import EventBuilder
from emitters._pipeline.delivery import SinkWorker, throttle
from emitters._pipeline.record import Record, keys_issued, next_key
from emitters._processors import DropEvent, Processor
from emitters._redact import redact_text

__all__ = ["CLOSE_GRACE_S", "LOST_EVENT", "Config", "Dispatcher"]

# The event other sinks receive when events were lost (see emitters._pipeline.buffer).
LOST_EVENT = "pipeline.events-lost"
_PIPELINE_RESOURCE = Resource(id="eventblocks.pipeline", name="eventblocks pipeline")
# The dispatcher wakes on its timer, or early once the buffer holds this share of
# its budget: a burst is handled in large batches, interrupting the caller rarely.
_WAKE_SHARE = 16
# A full sink that delivered nothing for this long no longer holds up the others.
_STALLED_S = 1.0

# Gives up the interpreter lock (time.sleep(0) releases it and asks the system
# to run another thread).
_yield = partial(time.sleep, 0)

CLOSE_GRACE_S = 0.5
"""Seconds every sink's ``close()`` gets at least, even once the timeout ran out."""


@dataclass
class Config:
    """One complete pipeline configuration (see :func:`configure`)."""

    emitters: tuple[Emitter, ...] = ()
    processors: tuple[Processor, ...] = ()
    enabled: bool = True
    max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES
    batch_size: int = 512
    flush_interval: float = 0.2
    exit_timeout: float = 9.0
    names: tuple[str, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        for emitter in self.emitters:
            if not isinstance(emitter, Emitter):
                raise TypeError(
                    f"emitters must be instances of emitters.Emitter (a subclass "
                    f"with an emit_batch(events) method); {emitter!r} is not"
                )
        for proc in self.processors:
            if not callable(proc):
                raise TypeError(f"processors must be callables; {proc!r} is not")
        for name in ("max_buffer_bytes", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(self.flush_interval, int | float) or self.flush_interval <= 0:
            raise ValueError(
                f"flush_interval must be a positive number, not {self.flush_interval!r}"
            )
        if not isinstance(self.exit_timeout, int | float) or self.exit_timeout < 0:
            raise ValueError(
                f"exit_timeout must be a non-negative number, not {self.exit_timeout!r}"
            )
        names = [_emitter_name(e) for e in self.emitters]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(
                    f"two emitters are named {name!r}; give one a different name= "
                    "so that stats() can tell them apart"
                )
        self.names = tuple(names)


def _emitter_name(emitter: object) -> str:
    name = getattr(emitter, "name", None)
    return name if isinstance(name, str) and name else type(emitter).__name__


class Dispatcher:
    """Owns one configuration: its queue, its dispatcher thread and its workers."""

    def __init__(self, config: Config, taps: list[list[Event]]) -> None:
        self.config = config
        self.taps = taps
        self.buffer = RecordBuffer(config.max_buffer_bytes)
        self._wake_bytes = config.max_buffer_bytes // _WAKE_SHARE
        self._yield_bytes = config.max_buffer_bytes // 2
        # Records are counted by the process-wide key counter (see record.py):
        # this dispatcher's share is what it gave out while installed.
        self._emitted_from = keys_issued()
        self._emitted_until: int | None = None
        self.consumed = 0
        self.build_errors = 0
        self.filtered = 0
        self.processor_errors = 0
        self.builder = EventBuilder()
        # A sink holds a few batches of built events at most: the rest wait as
        # records, which cost a tenth as much (see emitters._pipeline.buffer).
        self.workers = [
            SinkWorker(e, name, max(4 * config.batch_size, 2 * e.join_batches_up_to))
            for e, name in zip(config.emitters, config.names, strict=True)
        ]
        # Sinks that write straight from drafts of events, and the others.
        self._draft_readers = any(reads_drafts(e) for e in config.emitters)
        self._event_readers = not all(reads_drafts(e) for e in config.emitters)
        self._wake = threading.Event()
        self._cond = threading.Condition()
        self._requested = 0
        self._served = 0
        self._timed_out = 0  # the last drain request that timed out
        self._stopping = False
        # Set by the exit hook: deliver what can be delivered, wait for no one.
        self.exiting = False
        # Losses (dropped or failed) counted at the end of the last flush.
        self._losses_at_flush = 0
        self.left_open: list[str] = []
        self.thread = threading.Thread(
            target=self._run, name="eventblocks-dispatcher", daemon=True
        )
        self.thread.start()

    # -- the caller's side -------------------------------------------------------

    def appender(self) -> Callable[[Record], None]:
        return self.buffer.queue.append

    def kick(self) -> None:
        # Called every 1024 records: wake the dispatcher once a few batches
        # wait, so that a burst is handled in large batches and the caller is
        # interrupted as rarely as possible (the timer wakes it otherwise); give
        # the other threads a turn past half the budget; shed past the budget.
        buffer = self.buffer
        queued = len(buffer.queue) * RECORD_BYTES
        if queued >= self._wake_bytes and not self._wake.is_set():
            self._wake.set()
        if queued > self._yield_bytes and self.workers:
            # The caller produces faster than the sinks take: it gives up the
            # interpreter lock once, so that the dispatcher and the sinks run
            # before the buffer has to shed. It waits for no lock, no sink and
            # no I/O, only for its next turn.
            _yield()
        if buffer.over_budget():
            buffer.shed()
            ledger = buffer.ledger
            throttle.warn(
                "shed",
                "eventblocks dropped %d events so far (%d failures among them): "
                "the buffer of queued events is full (max_buffer_bytes=%d); the "
                "losses are recorded per run. Raise configure(max_buffer_bytes=...) "
                "or EVENTBLOCKS_MAX_BUFFER_BYTES, or make the sinks faster",
                ledger.lost,
                ledger.failures,
                buffer.max_bytes,
            )

    # -- the dispatcher thread ---------------------------------------------------

    def _run(self) -> None:
        interval = self.config.flush_interval
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            with self._cond:
                noted = self._requested
                stopping = self._stopping
            self._drain()
            with self._cond:
                self._served = max(self._served, noted)
                self._cond.notify_all()
            if stopping:
                return

    def _drain(self) -> None:
        buffer, size = self.buffer, self.config.batch_size
        queue = buffer.queue
        while queue or buffer.ledger.pending():
            self._wait_for_room()
            records = buffer.pop_batch(size)
            self.consumed += len(records)
            if not self.workers and not self.taps:
                buffer.ledger.take()
                self.builder.release(records)
                buffer.done_with_batch()
                continue
            # Drafts for the sinks that write from them, events for the others.
            events_only = not self._draft_readers and (
                self._event_readers or bool(self.taps)
            )
            try:
                items = self.builder.build(records, events_only)
            except BaseException:  # nothing may kill the thread (SystemExit included)
                items = self._build_one_by_one(records, events_only)
            buffer.done_with_batch()
            buffer.release_orphans(self.builder.take_orphans())
            if self.config.processors:
                items = self._process(materialize(items))
            items.extend(self._loss_events(buffer.ledger.take()))
            if not items:
                continue
            # One immutable batch for everyone: a sink cannot alter what the
            # others receive. Events are built here only for those that read
            # them; drafts are kept only for those that write from them (kept
            # longer, they would cost the collector more than they save).
            if events_only or self.config.processors:
                batch = EventBatch.of_events(items)
            else:
                batch = EventBatch(items)
                if self._event_readers or self.taps:
                    batch.events()
            for tap in self.taps:
                tap.extend(batch)
            for worker in self.workers:
                worker.submit(batch)

    def _wait_for_room(self) -> None:
        """Wait until every sink can take a batch, so that events are built only
        when a sink is about to take them, and wait as records, not as events.

        When some sinks can take more and the full ones made no progress for a
        while, the full ones are not waited for: their share is dropped and
        counted for them, and a hung sink delays the others only that long.
        """
        while True:
            full = [w for w in self.workers if not w.has_room()]
            if not full:
                return
            # At exit the time is short: a sink that stopped moving holds up
            # the others for a quarter of it at most.
            patience = _STALLED_S
            if self.exiting:
                patience = min(patience, self.config.exit_timeout / 4)
            if len(full) < len(self.workers) and all(
                w.stalled_for() > patience for w in full
            ):
                return  # the others go on; the stalled ones drop their share
            full[0].wait_for_room(0.05)

    def _loss_events(self, losses: list[Loss]) -> list[Event]:
        """One ``pipeline.events-lost`` event per run and minute of ``losses``."""
        out: list[Event] = []
        for loss in losses:
            minute = datetime.fromtimestamp(loss.minute, UTC)
            try:
                event = Event(
                    id=new_uuid7(),
                    occurred=datetime.now(UTC),
                    event=LOST_EVENT,
                    resource=_PIPELINE_RESOURCE,
                    related=loss.run,
                    payload={
                        "lost": loss.lost,
                        "failures": loss.failures,
                        "minute": minute.isoformat().replace("+00:00", "Z"),
                        "setting": "max_buffer_bytes",
                    },
                )
            except Exception as exc:  # pragma: no cover - the parts are our own
                throttle.warn("loss-event", "could not record a loss: %s", exc)
                continue
            next_key()  # the pipeline emits it: counted like the others
            out.append(event)
        return out

    def _process(self, events: list[Event]) -> list[Item]:
        out: list[Item] = []
        for event in events:
            current: Event | None = event
            for proc in self.config.processors:
                assert current is not None
                try:
                    current = proc(current)
                except DropEvent:
                    current = None
                except BaseException as exc:  # a processor calling sys.exit too
                    # A broken processor might be the one that removes sensitive
                    # data: drop the event rather than pass it on unprocessed.
                    self.processor_errors += 1
                    throttle.warn(
                        f"proc:{proc!r}",
                        "processor %r failed and its event was dropped: %s: %s",
                        proc,
                        type(exc).__name__,
                        redact_text(str(exc)),
                    )
                    current = None
                    break
                if current is None:
                    self.filtered += 1
                    break
            if current is not None:
                out.append(current)
        return out

    # -- control -----------------------------------------------------------------

    def drain_wait(self, timeout: float | None, *, unless_stuck: bool = False) -> bool:
        """Wait until every record queued before this call went through dispatch.

        With ``unless_stuck``, return False at once while the dispatcher has not
        yet served a wait that timed out before (a processor or a build that
        hangs): the caller pays the timeout once, not on every call.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if unless_stuck and self._served < self._timed_out:
                return False
            self._requested += 1
            target = self._requested
        self._wake.set()
        with self._cond:
            while self._served < target:
                if not self.thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self._timed_out = max(self._timed_out, target)
                    return False
                self._cond.wait(remaining if remaining is not None else 0.5)
        return True

    def flush(self, timeout: float | None) -> bool:
        try:
            delivered = self._flush(timeout)
        finally:
            # A loss is reported by one flush: the next says only what is new.
            losses, self._losses_at_flush = self._losses_at_flush, self.losses()
        return delivered and losses == self._losses_at_flush

    def _flush(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.drain_wait(timeout):
            return False
        markers = [w.request_flush(deadline) for w in self.workers]
        ok = True
        for marker in markers:
            remaining = (
                None if deadline is None else max(0.0, deadline - time.monotonic())
            )
            # True only if the sink got there in time and said its flush worked.
            ok = marker.wait(remaining) and marker.ok and ok
        return ok

    def begin_exit(self, deadline: float) -> None:
        """The process is exiting: wait for no stalled sink, and tell each sink that
        the end is near (``Emitter.prepare_exit``)."""
        self.exiting = True
        for worker in self.workers:
            try:
                worker.emitter.prepare_exit(deadline)
            except Exception as exc:
                throttle.warn(
                    f"exit:{worker.name}",
                    "emitter %r failed to prepare for the exit: %s",
                    worker.name,
                    type(exc).__name__,
                )

    def stop(self, timeout: float, keep: frozenset[int] = frozenset()) -> bool:
        """Stop the threads and close the sinks, except those whose id is in keep.

        Every sink's ``close()`` runs on a thread of its own, all at once, and
        is waited for until the timeout (and at least ``CLOSE_GRACE_S``): one
        that blocks is left behind, named in :attr:`left_open`.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
        self._wake.set()
        self.thread.join(max(0.0, deadline - time.monotonic()))
        ok = not self.thread.is_alive()
        for worker in self.workers:
            worker.close()
        for worker in self.workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
            ok = ok and not worker.thread.is_alive()
        closing = [
            (worker, worker.close_sink())
            for worker in self.workers
            if id(worker.emitter) not in keep
        ]
        close_by = max(deadline, time.monotonic() + CLOSE_GRACE_S)
        for worker, thread in closing:
            thread.join(max(0.0, close_by - time.monotonic()))
            if thread.is_alive():
                self.left_open.append(worker.name)
                ok = False
        return ok

    def left_behind(self) -> dict[str, int]:
        """Events each sink still had in its backlog (for the exit's warning)."""
        return {w.name: w.pending for w in self.workers if w.pending}

    def _build_one_by_one(self, records: list[Record], events_only: bool) -> list[Item]:
        """Build each record alone, so that one that cannot be built costs only
        itself; those are counted as dropped (and in ``build_errors``)."""
        events: list[Item] = []
        for record in records:
            try:
                events.extend(self.builder.build([record], events_only))
            except BaseException as exc:
                self.builder.release([record])
                self.build_errors += 1
                # No traceback: its text could hold a secret the filter cannot see.
                throttle.warn(
                    "build",
                    "eventblocks could not build an event (%d so far), dropped: %s: %s",
                    self.build_errors,
                    type(exc).__name__,
                    redact_text(str(exc)),
                )
        return events

    def stop_counting(self) -> None:
        """Another dispatcher is installed: records counted from now on are its."""
        if self._emitted_until is None:
            self._emitted_until = keys_issued()

    def losses(self) -> int:
        """Events dropped or failed so far, in this dispatcher."""
        return (
            self.buffer.ledger.lost
            + self.build_errors
            + sum(w.dropped + w.failed for w in self.workers)
        )

    def stats(self) -> dict[str, Any]:
        until = self._emitted_until
        emitted = (keys_issued() if until is None else until) - self._emitted_from
        queued = len(self.buffer.queue)
        backlog = {w.name: w.dropped for w in self.workers}
        return {
            "emitted": emitted,
            "dropped": self.buffer.ledger.lost
            + sum(backlog.values())
            + self.build_errors,
            "dropped_failures": self.buffer.ledger.failures,
            "dropped_by_emitter": backlog,
            "delivered": {w.name: w.delivered for w in self.workers},
            "failed": {w.name: w.failed for w in self.workers},
            "filtered": self.filtered,
            "processor_errors": self.processor_errors,
            "build_errors": self.build_errors,
            "queued": queued,
        }
