"""The sinks' disk spool: a batch kept, or a sentence saying why it was dropped
(the HTTP and NATS sinks raise it as their own delivery errors: see their tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emitters._spool import Batch, SpoolError, open_spool


def test_keep_writes_a_batch_or_says_why_not(tmp_path: Path) -> None:
    """keep() spools what fits; a full spool and an unwritable folder raise a
    SpoolError naming the folder and the count, and write nothing."""
    assert open_spool(None, 1000, "http://x") is None
    spool = open_spool(tmp_path / "spool", 200, "http://127.0.0.1/events")
    assert spool is not None
    batch = Batch(b"x" * 100, "identity", 3, "a-b")
    spool.keep(batch, "sink")
    assert len(spool.pending()) == 1
    with pytest.raises(SpoolError, match=r"is full \(max_spool_bytes=200\); 3 events"):
        spool.keep(batch, "sink")
    assert len(spool.pending()) == 1
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    unwritable = open_spool(blocked, 1000, "http://127.0.0.1/events")
    assert unwritable is not None
    with pytest.raises(SpoolError, match=r"sink could not spool 3 events to .*a-file"):
        unwritable.keep(batch, "sink")
