"""What the infrastructure observers share: their counters, their backoff and
their run loop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from emitters import Event

__all__ = ["Backoff", "ObserverStats", "RunLoop", "StartOver"]


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


class StartOver(Exception):
    """Raised by an observer's step to be run again at once, without counting a
    failure or waiting (a watch whose resource version is gone lists again)."""


@dataclass(frozen=True)
class RunLoop:
    """The loop an observer's ``run`` repeats its step in, until stopped.

    A step that raises is logged and counted in ``stats.errors``, and the next
    one waits (1 s doubling to a minute) until a step succeeds; with ``once``,
    the loop gives up after ``once_failures`` failures in a row.

    Attributes:
        stats: The observer's counters.
        log: The observer's logger.
        label: What the log lines start with (``"ECS observer"``).
        retrying: What the warning of a failed step ends with (``"retrying"``).
        once_failures: Failures in a row that end a loop run with ``once``.
    """

    stats: ObserverStats
    log: logging.Logger
    label: str
    retrying: str
    once_failures: int

    def run(
        self,
        step: Callable[[], bool],
        stop: threading.Event,
        *,
        once: bool,
        status: Callable[[ObserverStats], None] | None,
        status_every: float,
    ) -> None:
        """Run ``step`` until ``stop`` is set, or, with ``once``, until a step
        returns True (it found nothing more to do)."""
        backoff = Backoff()
        last_status = time.monotonic()
        while not stop.is_set():
            try:
                finished = step()
            except StartOver as exc:
                self.log.info("%s: %s", self.label, exc)
                continue
            except Exception as exc:
                self.stats.errors += 1
                self.log.warning("%s: %s; %s", self.label, exc, self.retrying)
                if once and backoff.failures >= self.once_failures:
                    break
                if backoff.wait(stop):
                    break
                continue
            backoff.reset()
            if status is not None and time.monotonic() - last_status >= status_every:
                status(self.stats)
                last_status = time.monotonic()
            if once and finished:
                break
