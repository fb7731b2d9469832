"""The sink plug-in point: ``Emitter``, and the in-memory sink ``MemoryEmitter``."""

from __future__ import annotations

import abc
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from emitters._model import Event

__all__ = ["Emitter", "MemoryEmitter", "PartialDelivery"]


class PartialDelivery(Exception):
    """Raised by a sink that delivered only part of a batch.

    The pipeline counts ``delivered`` events of the batch as delivered and the rest
    as failed, instead of counting the whole batch as failed.

    Args:
        delivered: How many events of the batch were delivered.
        reason: What happened to the others (no secret: it is logged).
    """

    def __init__(self, delivered: int, reason: str) -> None:
        super().__init__(reason)
        self.delivered = delivered


class Emitter(abc.ABC):
    """Base class of every sink.

    A sink implements :meth:`emit_batch`, and :meth:`flush` and :meth:`close` when it
    buffers or holds resources. The pipeline calls it from its own thread, one batch
    at a time, and isolates it: whatever it raises is caught, counted in ``stats()``
    and logged at most once a minute; a sink that hangs delays only itself.
    Emitters are context managers that close on exit.

    Args:
        name: The name it is counted under in ``stats()``; its class name by default.
    """

    def __init__(self, *, name: str | None = None) -> None:
        self._emitter_name = name

    @property
    def name(self) -> str:
        """The name this sink is counted under in ``stats()``."""
        return getattr(self, "_emitter_name", None) or type(self).__name__

    @abc.abstractmethod
    def emit_batch(self, events: Sequence[Event]) -> None:
        """Deliver a batch of events, in order.

        Raise to report a failure: the whole batch is counted as failed, unless
        the exception is a :class:`PartialDelivery` that says how many were
        delivered.
        """

    def flush(self, timeout: float | None = None) -> bool:
        """Make delivered events durable; return False if ``timeout`` ran out."""
        return True

    def close(self) -> None:  # noqa: B027 - optional, like flush
        """Release what the sink holds. Called once, by ``shutdown()`` or ``with``."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


class MemoryEmitter(Emitter):
    """Keeps every event it receives in :attr:`events`, in order.

    Args:
        max_events: Keep only the newest this many events; None keeps all.
        name: The name it is counted under in ``stats()``.
    """

    def __init__(self, *, max_events: int | None = None, name: str | None = None):
        super().__init__(name=name)
        if max_events is not None and max_events < 1:
            raise ValueError(f"max_events must be at least 1, not {max_events!r}")
        self._max = max_events
        self._lock = threading.Lock()
        self.events: list[Event] = []
        """The events received so far, oldest first."""

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Append the batch to :attr:`events`."""
        with self._lock:
            self.events.extend(events)
            if self._max is not None and len(self.events) > self._max:
                del self.events[: len(self.events) - self._max]

    def clear(self) -> None:
        """Forget every event received so far."""
        with self._lock:
            self.events.clear()
