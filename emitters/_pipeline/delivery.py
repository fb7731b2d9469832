"""Delivering batches to one sink from its own thread, and throttled warnings.

Each sink gets a :class:`SinkWorker`: a thread with a bounded backlog of batches, so
a slow or hung sink delays only itself. Whatever a sink raises is caught, counted
and logged at most once a minute per sink.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence

from emitters._emitter import Emitter, PartialDelivery
from emitters._model import Event
from emitters._pipeline.batch import EventBatch
from emitters._redact import redact_text

__all__ = ["SinkWorker", "ThrottledLog", "logger", "throttle"]

logger = logging.getLogger("emitters")

_LOG_EVERY_S = 60.0


class ThrottledLog:
    """Logs a warning about one sink at most once a minute."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def warn(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is None or now - last >= _LOG_EVERY_S:
            self._last[key] = now
            logger.warning(message, *args)


throttle = ThrottledLog()


class FlushRequest(threading.Event):
    """A flush queued behind a sink's batches: set when done, with the sink's answer.

    Attributes:
        deadline: The ``time.monotonic()`` by which the flush should end, or None.
        ok: What the sink's ``flush`` returned (False if it raised).
    """

    def __init__(self, deadline: float | None) -> None:
        super().__init__()
        self.deadline = deadline
        self.ok = False


class SinkWorker:
    """Delivers batches to one sink from its own thread, with a bounded backlog."""

    def __init__(self, emitter: Emitter, name: str, max_pending: int) -> None:
        self.emitter = emitter
        self.name = name
        self.max_pending = max_pending
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._items: deque[tuple[Sequence[Event] | None, FlushRequest | None]] = deque()
        self._pending = 0
        self._last_progress = time.monotonic()
        self.join_limit: int = emitter.join_batches_up_to
        self._cond = threading.Condition()
        self._closing = False
        # Set by the thread as it ends: closed, with nothing left to deliver.
        self._finished = False
        self.thread = threading.Thread(
            target=self._run, name=f"eventblocks-sink-{name}", daemon=True
        )
        self.thread.start()

    def submit(self, batch: Sequence[Event]) -> None:
        with self._cond:
            if self._finished:
                # Closed and gone: the batch can never reach the sink.
                self.dropped += len(batch)
                return
            if not self._pending:
                self._last_progress = time.monotonic()
            self._items.append((batch, None))
            self._pending += len(batch)
            # The dispatcher waits for room before it builds a batch, so only a
            # sink it stopped waiting for (a stalled one) goes past this.
            while self._pending > 2 * self.max_pending:
                old, marker = self._items.popleft()
                if old is None:  # a flush marker: keep it, it costs no memory
                    self._items.appendleft((old, marker))
                    break
                self._pending -= len(old)
                self.dropped += len(old)
                throttle.warn(
                    f"full:{self.name}",
                    "emitter %r is not keeping up; %d events dropped so far",
                    self.name,
                    self.dropped,
                )
            self._cond.notify_all()

    def has_room(self) -> bool:
        """Whether the backlog has room for another batch (a worker that was
        closed and ended always has: it drops what it is given, counted)."""
        return self._pending < self.max_pending or self._finished

    def wait_for_room(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for room in the backlog."""
        with self._cond:
            if self._pending >= self.max_pending and not self._finished:
                self._cond.wait(timeout)
            return self._pending < self.max_pending or self._finished

    def stalled_for(self) -> float:
        """Seconds since the sink last finished a batch, while it has some to do."""
        if not self._pending:
            return 0.0
        return time.monotonic() - self._last_progress

    def request_flush(self, deadline: float | None = None) -> FlushRequest:
        """Queue a flush of the sink after the batches before it; see FlushRequest."""
        done = FlushRequest(deadline)
        with self._cond:
            self._items.append((None, done))
            self._cond.notify_all()
        return done

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closing:
                    self._cond.wait()
                if not self._items:
                    self._finished = True
                    self._pending = 0
                    self._cond.notify_all()
                    return
                batch, marker = self._items.popleft()
                if batch is not None:
                    self._pending -= len(batch)
                    limit = self.join_limit
                    if limit and len(batch) < limit:
                        batch = self._join_waiting(batch, limit)
            if batch is not None:
                self._deliver(batch)
                with self._cond:
                    self._last_progress = time.monotonic()
                    self._cond.notify_all()  # the dispatcher may wait for room
            else:
                assert isinstance(marker, FlushRequest)
                marker.ok = self._flush(marker.deadline)
                marker.set()

    def _join_waiting(self, batch: Sequence[Event], limit: int) -> Sequence[Event]:
        """Join the batches waiting right behind ``batch``, up to ``limit`` events.

        A flush request stops the join, so it still follows every batch queued
        before it. Called with the condition held.
        """
        items = self._items
        if not items or items[0][0] is None:
            return batch
        joined = [batch]
        size = len(batch)
        while items:
            more = items[0][0]
            if more is None or size + len(more) > limit:
                break
            items.popleft()
            self._pending -= len(more)
            joined.append(more)
            size += len(more)
        return EventBatch.join(joined) if len(joined) > 1 else batch

    def _deliver(self, batch: Sequence[Event]) -> None:
        try:
            self.emitter.emit_batch(batch)
        except BaseException as exc:  # even SystemExit: the worker must live
            delivered = 0
            if isinstance(exc, PartialDelivery):
                delivered = min(max(0, exc.delivered), len(batch))
                self.delivered += delivered
            self.failed += len(batch) - delivered
            throttle.warn(
                f"fail:{self.name}",
                "emitter %r failed to deliver %d events: %s: %s",
                self.name,
                len(batch) - delivered,
                type(exc).__name__,
                redact_text(str(exc)),
            )
        else:
            self.delivered += len(batch)

    def _flush(self, deadline: float | None) -> bool:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return bool(self.emitter.flush(timeout))
        except BaseException as exc:
            throttle.warn(
                f"flush:{self.name}",
                "emitter %r failed to flush: %s: %s",
                self.name,
                type(exc).__name__,
                redact_text(str(exc)),
            )
            return False

    @property
    def pending(self) -> int:
        """Events waiting in the backlog now."""
        return self._pending

    def close_sink(self) -> threading.Thread:
        """Close the sink on a thread of its own and return that thread.

        A sink still busy (waiting out a retry, a hung socket) is closed all the
        same, so that it can abandon what it waits for; a ``close()`` that blocks
        holds only that thread, never the exit.
        """

        def run() -> None:
            try:
                self.emitter.close()
            except Exception as exc:
                throttle.warn(
                    f"close:{self.name}",
                    "emitter %r failed to close: %s: %s",
                    self.name,
                    type(exc).__name__,
                    redact_text(str(exc)),
                )

        thread = threading.Thread(
            target=run, name=f"eventblocks-close-{self.name}", daemon=True
        )
        thread.start()
        return thread
