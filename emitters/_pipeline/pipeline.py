"""The pipeline's public face: ``configure``, ``flush``, ``shutdown``, ``stats``.

The caller's thread appends a small record to a bounded ``deque`` through
:data:`STATE` and returns. The current
:class:`~emitters._pipeline.dispatcher.Dispatcher` drains it in batches, builds the
events, redacts secrets, runs the processors and hands each batch to one worker
thread per sink (:mod:`emitters._pipeline.delivery`), so a slow or hung sink
delays only itself. Every queue is bounded; whatever does not fit is dropped and
counted. ``configure`` replaces the dispatcher; counters carry over.
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from emitters import _settings
from emitters._emitter import Emitter
from emitters._model import Event
from emitters._pipeline.build import Record
from emitters._pipeline.delivery import logger, throttle
from emitters._pipeline.dispatcher import Config, Dispatcher, OnFull
from emitters._processors import Processor

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


EVENTS_OFF_AT_IMPORT = _settings.events_off()


class _HotState:
    """What the caller's thread reads on every call: one flag and two callables.

    ``live`` is a sink's hook for spans made on the caller's thread (see
    :mod:`emitters.otel._live`), read once per recorded call; None when no sink
    wants one.
    """

    __slots__ = ("append", "count", "enabled", "kick", "live")

    def __init__(self) -> None:
        self.enabled = False
        self.live: Any = None
        self.append: Callable[[Record], None] = lambda record: None
        self.count: Callable[[], int] = itertools.count().__next__
        self.kick: Callable[[], None] = lambda: None


STATE = _HotState()


class _Pipeline:
    """The process-wide pipeline: the current dispatcher and the taps."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.taps: list[list[Event]] = []
        self.current: Dispatcher | None = None
        self.config: Config | None = None
        # Counters of configurations replaced so far, so stats() stays cumulative.
        self._retired: dict[str, Any] = _zero_stats()

    def install(self, config: Config, *, stop_old: bool = True) -> None:
        with self._lock:
            old = self.current
            dispatcher = Dispatcher(config, self.taps)
            STATE.enabled = False
            STATE.append = dispatcher.appender()
            STATE.count = dispatcher.emitted.__next__
            STATE.kick = dispatcher.kick
            STATE.live = _live_hook(config.emitters)
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


def _live_hook(emitters: Iterable[Emitter]) -> Any:
    """Return the first sink's hook for live spans (``__eventblocks_live__``)."""
    for emitter in emitters:
        hook = getattr(emitter, "__eventblocks_live__", None)
        if hook is not None:
            return hook
    return None


def _zero_stats() -> dict[str, Any]:
    return {
        "emitted": 0,
        "dropped": 0,
        "dropped_by_emitter": {},
        "delivered": {},
        "failed": {},
        "filtered": 0,
        "processor_errors": 0,
        "build_errors": 0,
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


def _sink_factories() -> dict[str, Callable[[], Emitter]]:
    """The sinks ``EVENTBLOCKS_EMITTERS`` can name, each imported only when named."""

    def sql() -> Emitter:
        from emitters.sql import SQLEventStore

        return SQLEventStore()

    def console() -> Emitter:
        from emitters._console import ConsoleEmitter

        return ConsoleEmitter()

    def file() -> Emitter:
        from emitters.file import from_environment

        return from_environment()

    def http() -> Emitter:
        from emitters.http import from_environment

        return from_environment()

    def otel() -> Emitter:
        from emitters.otel import OpenTelemetryEmitter

        return OpenTelemetryEmitter()

    return {"sql": sql, "console": console, "file": file, "http": http, "otel": otel}


def default_emitters() -> tuple[Emitter, ...]:
    """The sinks used when ``configure()`` is given none.

    ``EVENTBLOCKS_EMITTERS`` names them (a comma list; ``none`` for no sink); when
    it is unset, events go to the SQL event store on the home database. A name
    that is unknown, or a sink that cannot be made (a missing setting or extra),
    is skipped with a warning: telemetry settings never stop the program.
    """
    raw = _settings.emitters_setting()
    if not raw:
        raw = "sql"
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    known = _sink_factories()
    out: list[Emitter] = []
    for name in names:
        if name == "none":
            continue
        factory = known.get(name)
        if factory is None:
            throttle.warn(
                f"env:{name}",
                "EVENTBLOCKS_EMITTERS names %r, which is not a sink (known: %s, "
                "or none); it is ignored",
                name,
                ", ".join(sorted(known)),
            )
            continue
        try:
            out.append(factory())
        except (ImportError, ValueError) as exc:
            throttle.warn(
                f"env-make:{name}",
                "EVENTBLOCKS_EMITTERS names %r, which cannot be used: %s",
                name,
                exc,
            )
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
    main one or a sink's backlog, or that could not be built), ``delivered`` and
    ``failed`` (mappings from each sink's name to a count; failed means its
    ``emit_batch`` raised), ``dropped_by_emitter`` (backlog drops per sink),
    ``filtered`` (dropped by a processor on purpose), ``processor_errors``,
    ``build_errors`` (events that could not be built, a bug worth reporting) and
    ``queued`` (waiting now).
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
