"""Small faults: a stuck processor and save(), reserved method names, a home
folder whose name looks like a URL, an async generator left early, a runaway
recursion."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from blocks import Block, BlockDefinitionError
from emitters import Event, MemoryEmitter, configure, flush


@pytest.mark.parametrize("name", ["save", "load", "delete"])
def test_a_block_method_named_like_a_document_method_is_refused(name: str) -> None:
    """Defining save/load/delete on a block fails at class definition, by name."""
    with pytest.raises(BlockDefinitionError, match=rf"\.{name} cannot be defined"):
        type(
            f"Shadow{name.title()}",
            (Block,),
            {"__module__": __name__, name: lambda self: None},
        )


class Counter(Block):
    """A block with one recorded method."""

    n: int = 0

    def bump(self) -> int:
        return self.n + 1


def test_a_home_with_url_characters_is_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EVENTBLOCKS_HOME with ?, # and %XX holds the database, nowhere else."""
    home = tmp_path / "odd?name=1#frag%41"
    monkeypatch.setenv("EVENTBLOCKS_HOME", str(home))
    Counter(n=3).save("c")
    assert Counter.load("c").n == 3
    assert (home / "eventblocks.db").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [home.name]


def test_a_stuck_processor_delays_save_once_at_most() -> None:
    """While a processor hangs, the first save waits 2 s at most, later ones not."""
    release = threading.Event()

    def stuck(event: Event) -> Event:
        release.wait(30)
        return event

    sink = MemoryEmitter()
    configure(emitters=[sink], processors=[stuck])
    try:
        counter = Counter()
        counter.bump()
        started = time.monotonic()
        for name in ("a", "b", "c", "d"):
            counter.bump()
            counter.save(name)
        elapsed = time.monotonic() - started
    finally:
        release.set()
    # 2.0 s is the documented bound (the first wait); 4 saves, not 4 x 2 s.
    assert elapsed < 2.0 + 1.5
    assert Counter.load("d").n == 0


class Feed(Block):
    """A block with an async generator method."""

    async def items(self) -> AsyncIterator[int]:
        for i in range(10):
            await asyncio.sleep(0)
            yield i


def test_break_out_of_an_async_generator_at_the_end_of_asyncio_run() -> None:
    """break, then asyncio.run ends: a success with closed_early, not a failure."""
    sink = MemoryEmitter()
    configure(emitters=[sink])

    async def main() -> None:
        async for _ in Feed().items():
            break

    asyncio.run(main())
    assert flush(5)
    assert [e.event for e in sink.events] == [
        "block.feed.items.started",
        "block.feed.items.succeeded",
    ]
    assert sink.events[1].payload["closed_early"] is True
    assert sink.events[1].payload["yielded"] == 1


RECURSION = """
import json
from blocks import Block
from emitters import MemoryEmitter, configure, flush


def pad(k, then):
    return pad(k - 1, then) if k else then()


class Node(Block):
    k: int = 0

    def down(self, n: int) -> int:
        return pad(self.k, lambda: NODES[n % 2].down(n + 1))


sink = MemoryEmitter()
configure(emitters=[sink])
runs = []
for k in range(6):
    NODES = [Node(k=k), Node(k=k)]
    for j in range(12):
        sink.clear()

        def at(d):
            if d:
                return at(d - 1)
            try:
                NODES[0].down(0)
            except RecursionError:
                pass

        at(j)
        flush(10)
        started = sum(e.event.endswith(".started") for e in sink.events)
        failed = [e.payload["error"]["type"] for e in sink.events
                  if e.event.endswith(".failed")]
        runs.append([k, j, started, len(failed), sorted(set(failed))])
print(json.dumps(runs))
"""


def test_every_call_of_a_runaway_recursion_gets_its_outcome(tmp_path: Path) -> None:
    """RecursionError at many stack offsets: each started call has its outcome."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTBLOCKS_")}
    env.update(EVENTBLOCKS_HOME=str(tmp_path), EVENTBLOCKS_EMITTERS="none")
    done = subprocess.run(
        [sys.executable, "-c", RECURSION],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)
    assert len(runs) == 72
    for k, j, started, failed, types in runs:
        assert started > 0
        assert failed == started, (k, j)
        assert types == ["RecursionError"]
