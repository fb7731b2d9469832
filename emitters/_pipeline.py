"""The bounded, non-blocking pipeline between the code that emits and the sinks.

The caller's thread appends a small record to a bounded ``deque`` and returns. One
dispatcher thread drains the queue in batches, builds the events (see
:mod:`emitters._build`), redacts secrets, runs the processors and hands each batch to
one worker thread per sink, so a slow or hung sink delays only itself. Every queue is
bounded; whatever does not fit is dropped and counted.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from emitters._build import EventBuilder, Record
from emitters._emitter import Emitter
from emitters._model import Event
from emitters._processors import DropEvent, Processor
from emitters._redact import redact_text

__all__ = [
    "STATE",
    "Config",
    "OnFull",
    "add_tap",
    "configure",
    "drain",
    "flush",
    "remove_tap",
    "shutdown",
    "stats",
]

logger = logging.getLogger("emitters")

OnFull = Literal["drop_oldest", "drop_newest"]
_LOG_EVERY_S = 60.0


def _events_off_by_environment() -> bool:
    return os.environ.get("EVENTBLOCKS_EVENTS", "").strip().lower() in (
        "off",
        "0",
        "false",
        "no",
    )


EVENTS_OFF_AT_IMPORT = _events_off_by_environment()


class _HotState:
    """What the caller's thread reads on every call: one flag and two callables."""

    __slots__ = ("append", "count", "enabled", "kick")

    def __init__(self) -> None:
        self.enabled = False
        self.append: Callable[[Record], None] = lambda record: None
        self.count: Callable[[], int] = itertools.count().__next__
        self.kick: Callable[[], None] = lambda: None


STATE = _HotState()


def _count_value(counter: itertools.count[int]) -> int:
    # itertools.count has no public getter; its repr is "count(N)".
    return int(repr(counter)[6:-1])


class _Throttled:
    """Logs a warning about one sink at most once a minute."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def warn(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is None or now - last >= _LOG_EVERY_S:
            self._last[key] = now
            logger.warning(message, *args)


_throttle = _Throttled()


@dataclass
class Config:
    """One complete pipeline configuration (see :func:`configure`)."""

    emitters: tuple[Emitter, ...] = ()
    processors: tuple[Processor, ...] = ()
    enabled: bool = True
    queue_size: int = 10_000
    on_full: OnFull = "drop_oldest"
    batch_size: int = 512
    flush_interval: float = 0.2
    exit_timeout: float = 5.0
    names: tuple[str, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        for emitter in self.emitters:
            if not callable(getattr(emitter, "emit_batch", None)):
                raise TypeError(
                    f"emitters must have an emit_batch(events) method; "
                    f"{emitter!r} does not"
                )
        for proc in self.processors:
            if not callable(proc):
                raise TypeError(f"processors must be callables; {proc!r} is not")
        if self.on_full not in ("drop_oldest", "drop_newest"):
            raise ValueError(
                f"on_full must be 'drop_oldest' or 'drop_newest', not {self.on_full!r}"
            )
        for name in ("queue_size", "batch_size"):
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


class _Worker:
    """Delivers batches to one sink from its own thread, with a bounded backlog."""

    def __init__(self, emitter: Emitter, name: str, max_pending: int) -> None:
        self.emitter = emitter
        self.name = name
        self.max_pending = max_pending
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._items: deque[tuple[Sequence[Event] | None, threading.Event | None]] = (
            deque()
        )
        self._pending = 0
        self._cond = threading.Condition()
        self._closing = False
        self.thread = threading.Thread(
            target=self._run, name=f"eventblocks-sink-{name}", daemon=True
        )
        self.thread.start()

    def submit(self, batch: Sequence[Event]) -> None:
        with self._cond:
            self._items.append((batch, None))
            self._pending += len(batch)
            while self._pending > self.max_pending:
                old, marker = self._items.popleft()
                if old is None:  # a flush marker: keep it, it costs no memory
                    self._items.appendleft((old, marker))
                    break
                self._pending -= len(old)
                self.dropped += len(old)
                _throttle.warn(
                    f"full:{self.name}",
                    "emitter %r is not keeping up; %d events dropped so far",
                    self.name,
                    self.dropped,
                )
            self._cond.notify()

    def request_flush(self) -> threading.Event:
        done = threading.Event()
        with self._cond:
            self._items.append((None, done))
            self._cond.notify()
        return done

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closing:
                    self._cond.wait()
                if not self._items:
                    return
                batch, marker = self._items.popleft()
                if batch is not None:
                    self._pending -= len(batch)
            if batch is not None:
                self._deliver(batch)
            else:
                self._flush()
                assert marker is not None
                marker.set()

    def _deliver(self, batch: Sequence[Event]) -> None:
        try:
            self.emitter.emit_batch(batch)
        except Exception as exc:
            self.failed += len(batch)
            _throttle.warn(
                f"fail:{self.name}",
                "emitter %r failed to deliver %d events: %s: %s",
                self.name,
                len(batch),
                type(exc).__name__,
                redact_text(str(exc)),
            )
        else:
            self.delivered += len(batch)

    def _flush(self) -> None:
        try:
            self.emitter.flush(None)
        except Exception as exc:
            _throttle.warn(
                f"flush:{self.name}",
                "emitter %r failed to flush: %s: %s",
                self.name,
                type(exc).__name__,
                redact_text(str(exc)),
            )

    def shutdown(self, timeout: float, *, close_sink: bool = True) -> bool:
        """Deliver the backlog, stop the thread and close the sink, within timeout.

        Args:
            timeout: Seconds to wait at most for the backlog.
            close_sink: False leaves the sink open, for a new configuration that
                keeps it.
        """
        self.close()
        self.thread.join(timeout)
        if self.thread.is_alive():
            return False
        if not close_sink:
            return True
        try:
            self.emitter.close()
        except Exception as exc:
            _throttle.warn(
                f"close:{self.name}",
                "emitter %r failed to close: %s: %s",
                self.name,
                type(exc).__name__,
                redact_text(str(exc)),
            )
        return True


class _Dispatcher:
    """Owns one configuration: its queue, its dispatcher thread and its workers."""

    def __init__(self, config: Config, taps: list[list[Event]]) -> None:
        self.config = config
        self.taps = taps
        maxlen = config.queue_size
        self.queue: deque[Record] = deque(maxlen=maxlen)
        self.high_water = max(1, maxlen // 2)
        self.emitted = itertools.count()
        self.newest_dropped = itertools.count()
        self.consumed = 0
        self.filtered = 0
        self.processor_errors = 0
        self.builder = EventBuilder()
        self.workers = [
            _Worker(e, name, maxlen)
            for e, name in zip(config.emitters, config.names, strict=True)
        ]
        self._wake = threading.Event()
        self._pop_lock = threading.Lock()
        self._cond = threading.Condition()
        self._requested = 0
        self._served = 0
        self._stopping = False
        self.thread = threading.Thread(
            target=self._run, name="eventblocks-dispatcher", daemon=True
        )
        self.thread.start()

    # -- the caller's side -------------------------------------------------------

    def appender(self) -> Callable[[Record], None]:
        if self.config.on_full == "drop_oldest":
            return self.queue.append
        queue, maxlen, dropped = self.queue, self.config.queue_size, self.newest_dropped

        def append_unless_full(record: Record) -> None:
            if len(queue) >= maxlen:
                next(dropped)
            else:
                queue.append(record)

        return append_unless_full

    def kick(self) -> None:
        # Called every 1024 records: wake the dispatcher once the queue is half
        # full, so that a burst is handled in few, large batches and the caller is
        # interrupted as rarely as possible. The timer wakes it otherwise.
        if len(self.queue) >= self.high_water and not self._wake.is_set():
            self._wake.set()

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
        queue, size = self.queue, self.config.batch_size
        pop = queue.popleft
        while queue:
            records: list[Record] = []
            # stats() takes this lock so that records in hand are not counted as
            # dropped while they are neither queued nor consumed.
            with self._pop_lock:
                try:
                    for _ in range(size):
                        records.append(pop())
                except IndexError:
                    pass
                self.consumed += len(records)
            if not self.workers and not self.taps:
                continue
            try:
                events = self.builder.build(records)
            except Exception:  # a bug of ours must not kill the thread
                logger.exception("eventblocks could not build %d events", len(records))
                continue
            if self.config.processors:
                events = self._process(events)
            if not events:
                continue
            for tap in self.taps:
                tap.extend(events)
            for worker in self.workers:
                worker.submit(events)

    def _process(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            current: Event | None = event
            for proc in self.config.processors:
                assert current is not None
                try:
                    current = proc(current)
                except DropEvent:
                    current = None
                except Exception as exc:
                    # A broken processor might be the one that removes sensitive
                    # data: drop the event rather than pass it on unprocessed.
                    self.processor_errors += 1
                    _throttle.warn(
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

    def drain_wait(self, timeout: float | None) -> bool:
        """Wait until every record queued before this call went through dispatch."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._requested += 1
            target = self._requested
        self._wake.set()
        with self._cond:
            while self._served < target:
                if not self.thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 0.5)
        return True

    def flush(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.drain_wait(timeout):
            return False
        markers = [w.request_flush() for w in self.workers]
        ok = True
        for marker in markers:
            remaining = (
                None if deadline is None else max(0.0, deadline - time.monotonic())
            )
            ok = marker.wait(remaining) and ok
        return ok

    def stop(self, timeout: float, keep: frozenset[int] = frozenset()) -> bool:
        """Stop the threads and close the sinks, except those whose id is in keep."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
        self._wake.set()
        self.thread.join(max(0.0, deadline - time.monotonic()))
        ok = not self.thread.is_alive()
        for worker in self.workers:
            ok = (
                worker.shutdown(
                    max(0.0, deadline - time.monotonic()),
                    close_sink=id(worker.emitter) not in keep,
                )
                and ok
            )
        return ok

    def stats(self) -> dict[str, Any]:
        with self._pop_lock:
            emitted = _count_value(self.emitted)
            consumed = self.consumed
            queued = len(self.queue)
        newest = _count_value(self.newest_dropped)
        if self.config.on_full == "drop_oldest":
            queue_dropped = max(0, emitted - consumed - queued)
        else:
            queue_dropped = newest
        backlog = {w.name: w.dropped for w in self.workers}
        return {
            "emitted": emitted,
            "dropped": queue_dropped + sum(backlog.values()),
            "dropped_by_emitter": backlog,
            "delivered": {w.name: w.delivered for w in self.workers},
            "failed": {w.name: w.failed for w in self.workers},
            "filtered": self.filtered,
            "processor_errors": self.processor_errors,
            "queued": queued,
        }


class _Pipeline:
    """The process-wide pipeline: the current dispatcher and the taps."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.taps: list[list[Event]] = []
        self.current: _Dispatcher | None = None
        self.config: Config | None = None
        # Counters of configurations replaced so far, so stats() stays cumulative.
        self._retired: dict[str, Any] = _zero_stats()

    def install(self, config: Config, *, stop_old: bool = True) -> None:
        with self._lock:
            old = self.current
            dispatcher = _Dispatcher(config, self.taps)
            STATE.enabled = False
            STATE.append = dispatcher.appender()
            STATE.count = dispatcher.emitted.__next__
            STATE.kick = dispatcher.kick
            self.current, self.config = dispatcher, config
            STATE.enabled = config.enabled
            if old is not None:
                if stop_old:
                    # Sinks the new configuration keeps stay open.
                    keep = frozenset(id(e) for e in config.emitters)
                    old.stop(min(old.config.exit_timeout, 1.0), keep)
                _accumulate(self._retired, old.stats())

    def stats(self) -> dict[str, Any]:
        with self._lock:
            total = _zero_stats()
            _accumulate(total, self._retired)
            if self.current is not None:
                _accumulate(total, self.current.stats())
            return total


def _zero_stats() -> dict[str, Any]:
    return {
        "emitted": 0,
        "dropped": 0,
        "dropped_by_emitter": {},
        "delivered": {},
        "failed": {},
        "filtered": 0,
        "processor_errors": 0,
        "queued": 0,
    }


def _accumulate(total: dict[str, Any], part: Mapping[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, dict):
            into = total.setdefault(key, {})
            for name, n in value.items():
                into[name] = into.get(name, 0) + n
        elif key == "queued":
            total[key] = value  # a level, not a counter
        else:
            total[key] = total.get(key, 0) + value


_PIPELINE = _Pipeline()


def default_emitters() -> tuple[Emitter, ...]:
    """The sinks used when ``configure()`` is given none: ``EVENTBLOCKS_EMITTERS``."""
    from emitters._console import ConsoleEmitter

    names = [
        n.strip().lower()
        for n in os.environ.get("EVENTBLOCKS_EMITTERS", "").split(",")
        if n.strip()
    ]
    known: dict[str, Callable[[], Emitter]] = {"console": ConsoleEmitter}
    out: list[Emitter] = []
    for name in names:
        factory = known.get(name)
        if factory is None:
            _throttle.warn(
                f"env:{name}",
                "EVENTBLOCKS_EMITTERS names %r, which is not available in this "
                "version (available: %s); it is ignored",
                name,
                ", ".join(sorted(known)),
            )
            continue
        out.append(factory())
    return tuple(out)


def configure(
    emitters: Iterable[Emitter] | None = None,
    processors: Iterable[Processor] = (),
    enabled: bool = True,
    queue_size: int = 10_000,
    on_full: OnFull = "drop_oldest",
    *,
    batch_size: int = 512,
    flush_interval: float = 0.2,
    exit_timeout: float = 5.0,
) -> None:
    """Replace the whole pipeline configuration; ``configure()`` restores defaults.

    Events queued under the previous configuration are delivered to its sinks
    (for at most a second) and sinks not kept are closed.

    Args:
        emitters: The sinks. None means the defaults (``EVENTBLOCKS_EMITTERS``).
        processors: Callables run in order on each event after redaction; return
            None or raise ``DropEvent`` to drop it.
        enabled: False turns every block call into a plain call after one flag
            check. ``EVENTBLOCKS_EVENTS=off`` at import wins over True.
        queue_size: The most events waiting for the dispatcher, and for each sink.
        on_full: What a full queue drops: ``"drop_oldest"`` or ``"drop_newest"``.
        batch_size: The most events handed to a sink at once.
        flush_interval: Seconds the dispatcher may wait before delivering.
        exit_timeout: Seconds the exit hook may spend delivering queued events.

    Raises:
        TypeError: An emitter has no ``emit_batch`` or a processor is not callable.
        ValueError: An option is out of range, or two emitters share a name.
    """
    resolved = default_emitters() if emitters is None else tuple(emitters)
    config = Config(
        emitters=resolved,
        processors=tuple(processors),
        # The operator's kill switch wins over the code's configuration.
        enabled=bool(enabled) and not EVENTS_OFF_AT_IMPORT,
        queue_size=queue_size,
        on_full=on_full,
        batch_size=batch_size,
        flush_interval=flush_interval,
        exit_timeout=exit_timeout,
    )
    _PIPELINE.install(config)


def ensure_configured() -> None:
    """Install the default configuration if nothing was configured yet."""
    if _PIPELINE.current is None:
        with _PIPELINE._lock:
            if _PIPELINE.current is None:
                configure()


def flush(timeout: float | None = 5.0) -> bool:
    """Deliver every event emitted so far and flush each sink.

    Args:
        timeout: Seconds to wait at most; None waits as long as it takes.

    Returns:
        True if everything was delivered and flushed in time.
    """
    ensure_configured()
    dispatcher = _PIPELINE.current
    return dispatcher.flush(timeout) if dispatcher is not None else True


def drain(timeout: float | None = 5.0) -> bool:
    """Wait until every event emitted so far went through dispatch (not the sinks)."""
    ensure_configured()
    dispatcher = _PIPELINE.current
    return dispatcher.drain_wait(timeout) if dispatcher is not None else True


def shutdown(timeout: float = 5.0) -> bool:
    """Flush, then stop the pipeline and close every sink, within ``timeout``.

    Block calls made afterwards are not recorded until ``configure()`` is called.

    Returns:
        True if everything was delivered and every sink closed in time.
    """
    with _PIPELINE._lock:
        dispatcher = _PIPELINE.current
        if dispatcher is None:
            return True
        deadline = time.monotonic() + timeout
        ok = dispatcher.flush(timeout)
        STATE.enabled = False
        ok = dispatcher.stop(max(0.0, deadline - time.monotonic())) and ok
        # Keep the counters; replace the stopped dispatcher by a disabled one.
        _PIPELINE.install(
            stop_old=False,
            config=Config(
                emitters=(),
                enabled=False,
                queue_size=dispatcher.config.queue_size,
                exit_timeout=dispatcher.config.exit_timeout,
            ),
        )
        return ok


def stats() -> dict[str, Any]:
    """Return the pipeline's counters since the process started.

    Keys: ``emitted`` (int), ``dropped`` (int: events lost to a full queue, the
    main one or a sink's backlog), ``delivered`` and ``failed`` (mappings from each
    sink's name to a count; failed means its ``emit_batch`` raised),
    ``dropped_by_emitter`` (backlog drops per sink), ``filtered`` (dropped by a
    processor on purpose), ``processor_errors`` and ``queued`` (waiting now).
    """
    ensure_configured()
    return _PIPELINE.stats()


def add_tap(tap: list[Event]) -> None:
    """Have the dispatcher append every processed event to ``tap`` from now on."""
    ensure_configured()
    with _PIPELINE._lock:
        _PIPELINE.taps.append(tap)


def remove_tap(tap: list[Event]) -> None:
    """Stop appending to ``tap``."""
    with _PIPELINE._lock:
        for i, existing in enumerate(_PIPELINE.taps):
            if existing is tap:
                del _PIPELINE.taps[i]
                return


def _at_exit() -> None:
    # Deliver what is queued, then close the sinks, all within exit_timeout.
    dispatcher = _PIPELINE.current
    if dispatcher is None:
        return
    timeout = dispatcher.config.exit_timeout
    deadline = time.monotonic() + timeout
    STATE.enabled = False
    delivered = dispatcher.flush(timeout)
    closed = dispatcher.stop(max(0.0, deadline - time.monotonic()))
    if not (delivered and closed):
        logger.warning(
            "eventblocks could not deliver every event and close every sink within "
            "%.1fs at exit",
            timeout,
        )


def _after_fork_in_child() -> None:
    # The parent's threads do not exist in the child, and its locks may be held by
    # them: start a fresh pipeline with the same configuration and fresh counters,
    # without the parent's queued records.
    global _PIPELINE
    config = _PIPELINE.config
    _PIPELINE = _Pipeline()
    if config is not None:
        _PIPELINE.install(config)


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
