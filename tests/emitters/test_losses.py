"""Losses reach the store: a run's summary counts the events it lost."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from pathlib import Path

from blocks import Block
from emitters import Event, configure, flow_run, flush, stats
from emitters.sql import SQLEventStore


class GatedStore(SQLEventStore):
    """An event store whose first batch waits until released."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.entered = threading.Event()
        self.release = threading.Event()

    def emit_batch(self, events: Sequence[Event]) -> None:
        self.entered.set()
        self.release.wait(30)
        super().emit_batch(events)


class Meter(Block):
    """A block with one cheap method and one that fails."""

    def read(self, i: int) -> int:
        if i < 0:
            raise ValueError("negative reading")
        return i


def test_a_run_that_lost_events_says_so_in_the_store(tmp_path: Path) -> None:
    """Events shed under pressure are counted on the run's summary; the failed
    call is stored; stored + lost = emitted."""
    store = GatedStore(f"sqlite:///{tmp_path / 'events.db'}")
    store.events()  # tables ready
    configure(emitters=[store], max_buffer_bytes=128 * 1024)
    meter = Meter()
    before = stats()
    with flow_run("pressure", id="run-pressure"):
        meter.read(0)
        assert store.entered.wait(10)
        for i in range(1, 20_000):
            meter.read(i)
        with contextlib.suppress(ValueError):
            meter.read(-1)
        for i in range(20_000):
            meter.read(i)
    store.release.set()
    assert flush(30) is False  # events were lost
    after = stats()
    dropped = after["dropped"] - before["dropped"]
    assert dropped > 0
    run = store.run("run-pressure")
    assert run is not None
    assert run.events_lost == dropped
    assert run.failures == 1
    stored = store.events(flow_run="run-pressure", limit=100_000)
    calls = [e for e in stored if e.event.startswith("block.meter.read.")]
    # Every event of the run's 40,001 calls is stored or recorded as lost.
    assert len(calls) + run.events_lost == 2 * 40_001
    assert [e.event for e in calls if e.event.endswith(".failed")] == [
        "block.meter.read.failed"
    ]
