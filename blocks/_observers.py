"""What the infrastructure observers share: their counters and their backoff."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from emitters import Event

__all__ = ["Backoff", "ObserverStats"]


@dataclass
class ObserverStats:
    """What an observer did since it started.

    Attributes:
        seen: Infrastructure changes received (messages or watch events).
        stored: Events delivered to the sinks (a flush confirmed them).
        related: Of those, events related to a flow run.
        errors: Failed polls, watches or deliveries.
        set_aside: Messages that could not be read as a known event.
    """

    seen: int = 0
    stored: int = 0
    related: int = 0
    errors: int = 0
    set_aside: int = 0

    def delivered(self, events: list[Event]) -> None:
        """Count ``events`` as stored."""
        self.stored += len(events)
        self.related += sum(1 for e in events if e.related_by_role("flow-run"))

    def line(self) -> str:
        """Return the counters as one status line."""
        return (
            f"seen {self.seen}, stored {self.stored}, related to runs {self.related}, "
            f"errors {self.errors}, set aside {self.set_aside}"
        )


class Backoff:
    """Exponential waits after consecutive failures, reset by a success."""

    def __init__(self, first: float = 1.0, limit: float = 60.0) -> None:
        self.first = first
        self.limit = limit
        self.failures = 0

    def reset(self) -> None:
        """Forget the failures: the next wait starts from ``first`` again."""
        self.failures = 0

    def wait(self, stop: threading.Event) -> bool:
        """Wait the next delay (or until ``stop`` is set); return True if stopped."""
        delay = min(self.limit, self.first * 2**self.failures)
        self.failures += 1
        return stop.wait(delay)
