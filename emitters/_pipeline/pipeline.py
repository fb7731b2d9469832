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
import importlib.metadata
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from emitters import _settings
from emitters._emitter import Emitter, LiveCallHook
from emitters._model import Event
from emitters._pipeline.delivery import logger, throttle
from emitters._pipeline.dispatcher import Config, Dispatcher
from emitters._pipeline.record import Record
from emitters._processors import Processor
from emitters._redact import redact_text

__all__ = [
    "STATE",
    "Config",
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
    """What the caller's thread reads on every call: one flag and a few callables.

    ``live`` is a sink's hook for spans made on the caller's thread (see
    :mod:`emitters.otel._live`), read once per recorded call; None when no sink
    wants one.
    """

    __slots__ = ("append", "enabled", "kick", "live", "weigh")

    def __init__(self) -> None:
        self.enabled = False
        self.live: LiveCallHook | None = None
        self.append: Callable[[Record], None] = lambda record: None
        self.kick: Callable[[], None] = lambda: None
        self.weigh: Callable[[int], None] = lambda nbytes: None


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
        # Replaced configurations whose dispatcher still delivers (a sink of
        # theirs hung past the stop's timeout): their counters still move.
        self._retiring: list[Dispatcher] = []

    def install(self, config: Config, *, stop_old: bool = True) -> None:
        with self._lock:
            old = self.current
            dispatcher = Dispatcher(config, self.taps)
            STATE.enabled = False
            STATE.append = dispatcher.appender()
            STATE.kick = dispatcher.kick
            STATE.weigh = dispatcher.buffer.weigh
            STATE.live = _live_hook(config.emitters)
            self.current, self.config = dispatcher, config
            STATE.enabled = config.enabled
            _exit_through_multiprocessing()
            if old is not None:
                old.stop_counting()
                if stop_old:
                    # Sinks the new configuration keeps stay open.
                    keep = frozenset(id(e) for e in config.emitters)
                    old.stop(min(old.config.exit_timeout, 1.0), keep)
                self._retiring.append(old)
                self._settle()

    def _settle(self) -> None:
        """Fold the counters of replaced dispatchers that have ended into
        ``_retired``: they no longer move."""
        ended = [d for d in self._retiring if not d.thread.is_alive()]
        for old in ended:
            _accumulate(self._retired, old.stats())
            self._retiring.remove(old)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            total = _zero_stats()
            self._settle()
            _accumulate(total, self._retired)
            for old in self._retiring:
                _accumulate(total, old.stats())
            if self.current is not None:
                _accumulate(total, self.current.stats())
            return total


def _live_hook(emitters: Iterable[Emitter]) -> LiveCallHook | None:
    """Return the first sink's hook for calls as they run (``live_calls()``)."""
    for emitter in emitters:
        try:
            hook = emitter.live_calls()
        except Exception as exc:
            throttle.warn(
                f"live:{emitter.name}",
                "%s.live_calls() failed: %s",
                emitter.name,
                redact_text(str(exc)),
            )
            continue
        if hook is not None:
            return hook
    return None


def _zero_stats() -> dict[str, Any]:
    return {
        "emitted": 0,
        "dropped": 0,
        "dropped_failures": 0,
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


SINK_GROUP = "eventblocks.emitters"


def sink_factories() -> dict[str, importlib.metadata.EntryPoint]:
    """The sinks ``EVENTBLOCKS_EMITTERS`` can name: the entry points of their group.

    Each entry point of the ``eventblocks.emitters`` group maps a lower-case name
    to a factory that takes no arguments and returns an :class:`Emitter` (a class
    or a function reading its own settings). eventblocks declares ``sql``,
    ``console``, ``file``, ``http`` and ``otel``; any installed package can add a
    name. Nothing is imported until a name is used.
    """
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for entry in importlib.metadata.entry_points(group=SINK_GROUP):
        found.setdefault(entry.name.strip().lower(), entry)
    return found


def _make_sink(name: str, entry: importlib.metadata.EntryPoint) -> Emitter | None:
    """Make the sink ``name``; None, with a warning, if it cannot be made."""
    try:
        sink = entry.load()()
    except Exception as exc:  # a missing extra or setting, or a broken plug-in
        throttle.warn(
            f"env-make:{name}",
            "EVENTBLOCKS_EMITTERS names %r, which cannot be used: %s",
            name,
            redact_text(str(exc)),
        )
        return None
    if not isinstance(sink, Emitter):
        throttle.warn(
            f"env-make:{name}",
            "EVENTBLOCKS_EMITTERS names %r, whose factory %s returned %s, not an "
            "emitters.Emitter; it is ignored",
            name,
            entry.value,
            type(sink).__name__,
        )
        return None
    return sink


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
    known = sink_factories()
    out: list[Emitter] = []
    for name in names:
        if name == "none":
            continue
        entry = known.get(name)
        if entry is None:
            throttle.warn(
                f"env:{name}",
                "EVENTBLOCKS_EMITTERS names %r, which is not a sink (known: %s, "
                "or none); it is ignored",
                name,
                ", ".join(sorted(known)),
            )
            continue
        sink = _make_sink(name, entry)
        if sink is not None:
            out.append(sink)
    return tuple(out)


def configure(
    emitters: Iterable[Emitter] | None = None,
    processors: Iterable[Processor] = (),
    enabled: bool = True,
    max_buffer_bytes: int | None = None,
    *,
    batch_size: int = 512,
    flush_interval: float = 0.2,
    exit_timeout: float = 9.0,
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
        max_buffer_bytes: The memory that events waiting for the sinks may take,
            estimated (64 MiB by default, or ``EVENTBLOCKS_MAX_BUFFER_BYTES``).
            Beyond it, events are dropped in this order: the ``started`` half of
            successful calls, then whole successful calls, failures last; every
            loss is counted in ``stats()`` and recorded per run.
        batch_size: The most events handed to a sink at once.
        flush_interval: Seconds the dispatcher may wait before delivering.
        exit_timeout: Seconds the exit hook may spend delivering queued events
            and closing the sinks (9 by default: a process with a full burst
            queued still exits within 10 s; each ``close()`` gets at least half
            a second more); a multiprocessing child runs the hook too, before it
            ends.

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
        max_buffer_bytes=(
            _settings.max_buffer_bytes()
            if max_buffer_bytes is None
            else max_buffer_bytes
        ),
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


def drain(timeout: float | None = 5.0, *, unless_stuck: bool = False) -> bool:
    """Wait until every event emitted so far went through dispatch (not the sinks).

    With ``unless_stuck``, return False at once while an earlier wait that timed
    out is still not served (see ``Dispatcher.drain_wait``).
    """
    ensure_configured()
    dispatcher = _PIPELINE.current
    if dispatcher is None:
        return True
    return dispatcher.drain_wait(timeout, unless_stuck=unless_stuck)


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
        dispatcher.begin_exit(deadline)
        ok = dispatcher.flush(timeout)
        STATE.enabled = False
        ok = dispatcher.stop(max(0.0, deadline - time.monotonic())) and ok
        # Keep the counters; replace the stopped dispatcher by a disabled one.
        _PIPELINE.install(
            stop_old=False,
            config=Config(
                emitters=(),
                enabled=False,
                max_buffer_bytes=dispatcher.config.max_buffer_bytes,
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


# The process that ran the exit hook; a second run (atexit after multiprocessing's
# own exit function) does nothing.
_exited_pid: int | None = None


def _at_exit() -> None:
    # Deliver what is queued, then close the sinks, all within exit_timeout.
    global _exited_pid
    if _exited_pid == os.getpid():
        return
    _exited_pid = os.getpid()
    dispatcher = _PIPELINE.current
    if dispatcher is None:
        return
    timeout = dispatcher.config.exit_timeout
    deadline = time.monotonic() + timeout
    STATE.enabled = False
    dispatcher.begin_exit(deadline)
    dispatcher.flush(timeout)
    left = dispatcher.left_behind()
    closed = dispatcher.stop(max(0.0, deadline - time.monotonic()))
    totals = _PIPELINE.stats()
    queued = totals["queued"]
    if not closed or queued or left:
        logger.warning(
            "eventblocks could not deliver every event and close every sink within "
            "%.1fs at exit (%d events still queued; exit_timeout sets the time)%s%s",
            timeout,
            queued,
            "".join(
                f"; {name!r} left {n} events undelivered" for name, n in left.items()
            ),
            "".join(f"; {name!r} did not close" for name in dispatcher.left_open),
        )
    lost = totals["dropped"] + sum(totals["failed"].values())
    if lost:
        logger.warning(
            "eventblocks lost %d of %d events in this process: %d dropped (%d "
            "failures among them), %d not accepted by a sink (%s). Dropped events "
            "mean the buffer was full: raise configure(max_buffer_bytes=...) or "
            "EVENTBLOCKS_MAX_BUFFER_BYTES (now %d bytes)",
            lost,
            totals["emitted"],
            totals["dropped"],
            totals["dropped_failures"],
            sum(totals["failed"].values()),
            ", ".join(f"{k}: {v}" for k, v in totals["failed"].items() if v) or "none",
            dispatcher.config.max_buffer_bytes,
        )


# The process whose multiprocessing finalizers run the exit hook already, and
# whether multiprocessing re-registers it in the children it forks (inherited
# through fork, like the registration itself).
_finalizer_pid: int | None = None
_after_forker_registered = False


def _exit_through_multiprocessing() -> None:
    """Have a multiprocessing child run the exit hook before it ends.

    Such a child (fork, forkserver; ``ProcessPoolExecutor`` workers too) ends with
    ``os._exit()``, which skips ``atexit``; multiprocessing runs its finalizers
    just before, so the hook is registered as one. A child started by fork
    clears the finalizers it inherited, then calls its after-fork hooks: one of
    them registers the exit hook again. In the main process multiprocessing runs
    its finalizers from ``atexit``; the hook runs once all the same.
    """
    global _after_forker_registered
    util = sys.modules.get("multiprocessing.util")
    if util is None or _finalizer_pid == os.getpid():
        return
    _register_finalizer(util)
    if not _after_forker_registered:
        _after_forker_registered = True
        util.register_after_fork(_at_exit, _after_multiprocessing_fork)


def _register_finalizer(util: Any) -> None:
    global _finalizer_pid
    _finalizer_pid = os.getpid()
    util.Finalize(None, _at_exit, exitpriority=100)


def _after_multiprocessing_fork(_hook: object) -> None:
    _register_finalizer(sys.modules["multiprocessing.util"])


def _after_fork_in_child() -> None:
    # The parent's threads do not exist in the child, and its locks may be held by
    # them: start a fresh pipeline with the same configuration and fresh counters,
    # without the parent's queued records.
    global _PIPELINE, _exited_pid
    _exited_pid = None
    config = _PIPELINE.config
    _PIPELINE = _Pipeline()
    if config is not None:
        _PIPELINE.install(config)


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
