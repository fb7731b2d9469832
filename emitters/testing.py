"""Test helpers: capture the events that code under test emits.

Example:
    >>> from emitters import emit_event
    >>> from emitters.testing import capture_events
    >>> with capture_events() as events:
    ...     _ = emit_event("table.loaded", {"id": "table.orders"}, payload={"rows": 3})
    >>> [(e.event, e.payload) for e in events]  # complete once the scope has exited
    [('table.loaded', {'rows': 3})]
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from emitters._model import Event
from emitters._pipeline.pipeline import add_tap, drain, remove_tap

__all__ = ["capture_events"]


@contextmanager
def capture_events(timeout: float = 10.0) -> Iterator[list[Event]]:
    """Collect every event emitted inside the scope, on any thread, in order.

    Events already queued when the scope starts are delivered first and not
    collected. On exit the pipeline is drained, so the list is complete; the
    configured sinks still receive every event as usual.

    Args:
        timeout: Seconds to wait at most for the pipeline at entry and at exit.

    Raises:
        TimeoutError: The pipeline did not drain within ``timeout`` at exit.
    """
    drain(timeout)
    events: list[Event] = []
    add_tap(events)
    try:
        yield events
    finally:
        drained = drain(timeout)
        remove_tap(events)
        if not drained:
            raise TimeoutError(
                f"the event pipeline did not drain within {timeout}s; "
                "the captured list may be incomplete"
            )
