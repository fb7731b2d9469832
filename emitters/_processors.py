"""Processors: plain callables that see each event before the sinks do.

A processor takes an ``Event`` and returns the event to pass on (the same one or a
changed copy), or ``None`` to drop it; raising :class:`DropEvent` drops it too.
Dropping is a signal, not an error: dropped events are counted as ``filtered``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable

from emitters._model import Event

__all__ = ["DropEvent", "Processor", "event_filter", "sampler"]

Processor = Callable[[Event], Event | None]


class DropEvent(Exception):
    """Raise inside a processor to drop the current event."""


_U64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def sampler(rate: float) -> Processor:
    """Return a processor that keeps about ``rate`` (0.0 to 1.0) of all calls.

    The decision is made per call, from the id of its ``started`` event, so a
    ``started`` event and its outcome are kept or dropped together.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"sampling rate must be between 0.0 and 1.0, not {rate!r}")
    threshold = int(rate * (1 << 64))

    def sample(event: Event) -> Event | None:
        key = event.follows if event.follows is not None else event.id
        # A multiplicative hash spreads the time-ordered ids evenly.
        return event if ((key.int * _GOLDEN) & _U64) < threshold else None

    sample.__qualname__ = f"sampler({rate!r})"
    return sample


def event_filter(
    include: Iterable[str] | str | None = None,
    exclude: Iterable[str] | str | None = None,
) -> Processor:
    """Return a processor that keeps events by name, with glob patterns.

    Args:
        include: Keep only events whose name matches one of these patterns, such as
            ``"block.s3-bucket.*"``; None keeps every name.
        exclude: Drop events whose name matches one of these patterns, such as
            ``"*.started"``.
    """

    def compile_(patterns: Iterable[str] | str | None) -> re.Pattern[str] | None:
        if patterns is None:
            return None
        if isinstance(patterns, str):
            patterns = [patterns]
        patterns = list(patterns)
        if not patterns:
            return None
        return re.compile("|".join(fnmatch.translate(p) for p in patterns))

    inc, exc = compile_(include), compile_(exclude)

    def keep(event: Event) -> Event | None:
        if inc is not None and not inc.match(event.event):
            return None
        if exc is not None and exc.match(event.event):
            return None
        return event

    return keep
