"""Small faults: a stuck processor and save(), reserved method names, a home
folder whose name looks like a URL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from blocks import Block, BlockDefinitionError
from emitters import Event, MemoryEmitter, configure


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
