"""``ConsoleEmitter``: one readable line per event, on stderr by default."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from emitters._emitter import Emitter
from emitters._model import Event

__all__ = ["ConsoleEmitter", "format_event_line"]


def format_event_line(event: Event) -> str:
    """Return one line for a person: time, name, resource, run, duration, error."""
    parts = [
        event.occurred.strftime("%H:%M:%S.%f")[:-3],
        event.event,
        event.resource.id
        if event.resource.name is None
        else f"{event.resource.name} ({event.resource.id})",
    ]
    for rel in event.related:
        if rel.role in ("flow-run", "task-run"):
            parts.append(f"{rel.role}={rel.name or rel.id}")
    duration = event.payload.get("duration_ms")
    if isinstance(duration, int | float):
        parts.append(f"{duration:.3f}ms")
    error = event.payload.get("error")
    if isinstance(error, dict):
        message = " ".join(str(error.get("message", "")).split())
        parts.append(f"{error.get('type')}: {message}".rstrip(": "))
    return "  ".join(parts)


class ConsoleEmitter(Emitter):
    """Writes one line per event to ``stream`` (the current ``sys.stderr`` if None).

    Args:
        stream: A text stream; by default whatever ``sys.stderr`` is at write time.
        name: The name it is counted under in ``stats()``.
    """

    def __init__(self, stream: TextIO | None = None, *, name: str | None = None):
        super().__init__(name=name)
        self._stream = stream
        self._lock = threading.Lock()

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Write a line for each event."""
        text = "".join(format_event_line(e) + "\n" for e in events)
        stream = self._stream or sys.stderr
        with self._lock:
            stream.write(text)

    def flush(self, timeout: float | None = None) -> bool:
        """Flush the stream."""
        (self._stream or sys.stderr).flush()
        return True
