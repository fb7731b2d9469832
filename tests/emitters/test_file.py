"""FileEmitter: JSON lines, rotation by size, durability and concurrent writers."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from blocks import Block
from emitters import Event, Resource, configure, emit_event, flow_run, flush, stats
from emitters._ids import new_uuid7
from emitters.file import FileEmitter, from_environment
from emitters.testing import capture_events


def _event(name: str = "thing.happened", **payload: object) -> Event:
    return Event(
        id=new_uuid7(),
        occurred=datetime.now(UTC),
        event=name,
        resource=Resource(id="thing.1", labels={"team": "data"}),
        payload=dict(payload),
    )


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _read_events(path: Path) -> list[Event]:
    return [Event.model_validate_json(line) for line in _lines(path)]


def _all_files(path: Path) -> list[Path]:
    """The file and its backups, oldest first."""
    backups = sorted(
        path.parent.glob(f"{path.name}.*"), key=lambda p: -int(p.suffix[1:])
    )
    return [*backups, path] if path.exists() else backups


class JsonLinesProbe(Block):
    def query(self, sql: str) -> int:
        return len(sql)


# -- format ---------------------------------------------------------------------


def test_each_line_is_the_events_json_and_reads_back(tmp_path: Path) -> None:
    """Every line is exactly model_dump_json() and model_validate_json() restores it."""
    path = tmp_path / "events.jsonl"
    events = [_event("a", n=1), _event("b", text="é ✓", nested={"x": [1, 2.5]})]
    with FileEmitter(path) as sink:
        sink.emit_batch(events)
    assert _lines(path) == [e.model_dump_json() for e in events]
    assert _read_events(path) == events


def test_pipeline_events_reach_the_file_in_order(tmp_path: Path) -> None:
    """Block calls and emit_event through configure() land in the file, in order."""
    path = tmp_path / "events.jsonl"
    name = f"file-{secrets.token_hex(4)}"
    sink = FileEmitter(path, name=name)
    configure(emitters=[sink])
    with capture_events() as captured, flow_run("nightly"):
        for i in range(20):
            JsonLinesProbe().query(f"select {i}")
        emit_event("custom.done", {"id": "job.1"}, payload={"rows": 3})
    assert flush()
    assert _read_events(path) == captured
    assert len(captured) == 41
    assert stats()["delivered"][name] == 41


def test_appends_and_creates_parent_folders(tmp_path: Path) -> None:
    """A missing parent folder is created, and a second emitter appends."""
    path = tmp_path / "a" / "b" / "events.jsonl"
    first, second = [_event("first")], [_event("second")]
    with FileEmitter(path) as sink:
        sink.emit_batch(first)
    with FileEmitter(str(path)) as sink:
        sink.emit_batch(second)
    assert _read_events(path) == first + second


def test_writes_again_after_close(tmp_path: Path) -> None:
    """A closed FileEmitter reopens its file on the next batch."""
    path = tmp_path / "events.jsonl"
    sink = FileEmitter(path)
    sink.emit_batch([_event("one")])
    sink.close()
    sink.emit_batch([_event("two")])
    sink.close()
    assert [e.event for e in _read_events(path)] == ["one", "two"]


# -- rotation -------------------------------------------------------------------


def test_rotation_keeps_backups_and_never_splits_a_line(tmp_path: Path) -> None:
    """Files stay under max_bytes, backups shift up to the limit, lines stay whole."""
    path = tmp_path / "events.jsonl"
    events = [_event("e", i=i) for i in range(200)]
    line_size = max(len(e.model_dump_json()) + 1 for e in events)
    max_bytes = line_size * 10
    with FileEmitter(path, max_bytes=max_bytes, backups=3) as sink:
        for start in range(0, 200, 7):
            sink.emit_batch(events[start : start + 7])
    files = _all_files(path)
    assert [f.name for f in files] == [
        "events.jsonl.3",
        "events.jsonl.2",
        "events.jsonl.1",
        "events.jsonl",
    ]
    kept: list[Event] = []
    for f in files:
        assert f.stat().st_size <= max_bytes
        assert f.read_bytes().endswith(b"\n")
        kept += _read_events(f)
    # The newest events survive, in order, and the oldest were dropped.
    assert kept == events[len(events) - len(kept) :]
    assert len(kept) < len(events)


def test_no_backups_means_the_full_file_is_discarded(tmp_path: Path) -> None:
    """backups=0 keeps only the current file, which never exceeds max_bytes."""
    path = tmp_path / "events.jsonl"
    events = [_event("e", i=i) for i in range(30)]
    max_bytes = (len(events[0].model_dump_json()) + 1) * 4
    with FileEmitter(path, max_bytes=max_bytes, backups=0) as sink:
        sink.emit_batch(events)
    assert _all_files(path) == [path]
    kept = _read_events(path)
    assert kept == events[-len(kept) :]
    assert path.stat().st_size <= max_bytes


def test_a_line_longer_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    """An event larger than max_bytes is written whole, into a fresh file."""
    path = tmp_path / "events.jsonl"
    small, big, after = _event("small"), _event("big", blob="x" * 5000), _event("a")
    with FileEmitter(path, max_bytes=1000, backups=5) as sink:
        sink.emit_batch([small, big, after])
    assert [_read_events(f) for f in _all_files(path)] == [[small], [big], [after]]


def test_no_rotation_when_max_bytes_is_none(tmp_path: Path) -> None:
    """max_bytes=None lets the file grow without rotating."""
    path = tmp_path / "events.jsonl"
    with FileEmitter(path, max_bytes=None) as sink:
        for _ in range(20):
            sink.emit_batch([_event("e", blob="y" * 500)])
    assert _all_files(path) == [path]
    assert len(_lines(path)) == 20


def test_a_file_renamed_by_another_writer_is_reopened(tmp_path: Path) -> None:
    """When the path is rotated away by someone else, the next batch starts anew."""
    path = tmp_path / "events.jsonl"
    with FileEmitter(path) as sink:
        sink.emit_batch([_event("before")])
        path.rename(tmp_path / "events.jsonl.1")
        sink.emit_batch([_event("after")])
    assert [e.event for e in _read_events(path)] == ["after"]
    assert [e.event for e in _read_events(tmp_path / "events.jsonl.1")] == ["before"]


# -- durability -----------------------------------------------------------------


def test_flush_syncs_the_file_to_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flush() calls os.fsync on the file, and the lines are readable right after."""
    path = tmp_path / "events.jsonl"
    synced: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    with FileEmitter(path) as sink:
        events = [_event("e", i=i) for i in range(5)]
        sink.emit_batch(events)
        assert sink.flush(1.0) is True
        assert path.stat().st_ino in synced
        assert _read_events(path) == events


def test_flush_before_any_write_is_fine(tmp_path: Path) -> None:
    """flush() on an emitter that has written nothing returns True, creates nothing."""
    path = tmp_path / "events.jsonl"
    with FileEmitter(path) as sink:
        assert sink.flush() is True
    assert not path.exists()


# -- concurrency ----------------------------------------------------------------


def test_concurrent_threads_and_emitters_write_only_whole_lines(
    tmp_path: Path,
) -> None:
    """Four emitters on one path, on four threads, with rotation: no line is torn."""
    path = tmp_path / "events.jsonl"
    sinks = [FileEmitter(path, max_bytes=20_000, backups=1000) for _ in range(4)]
    written: list[list[Event]] = [[] for _ in sinks]

    def write(index: int) -> None:
        for round_ in range(40):
            batch = [_event(f"w{index}", r=round_, k=k, pad="z" * 50) for k in range(5)]
            sinks[index].emit_batch(batch)
            written[index].extend(batch)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for sink in sinks:
        sink.close()
    found: list[Event] = []
    for f in _all_files(path):
        assert f.stat().st_size <= 20_000
        found += _read_events(f)  # raises on any torn line
    assert sorted(e.id for e in found) == sorted(e.id for w in written for e in w)
    for index, events in enumerate(written):
        # Each writer's own events keep their order across the files.
        mine = [e.id for e in found if e.event == f"w{index}"]
        assert mine == [e.id for e in events]


_WRITER = """
import sys
from datetime import UTC, datetime
from emitters import Event, Resource
from emitters._ids import new_uuid7
from emitters.file import FileEmitter

path, tag = sys.argv[1], sys.argv[2]
with FileEmitter(path, max_bytes=30_000, backups=1000) as sink:
    for r in range(60):
        sink.emit_batch([
            Event(id=new_uuid7(), occurred=datetime.now(UTC), event=tag,
                  resource=Resource(id="p"), payload={"r": r, "k": k, "pad": "q" * 80})
            for k in range(4)
        ])
"""


@pytest.mark.skipif(sys.platform == "win32", reason="cross-process locks are POSIX")
def test_concurrent_processes_rotating_one_file_write_only_whole_lines(
    tmp_path: Path,
) -> None:
    """Three processes appending and rotating the same path lose and tear nothing."""
    path = tmp_path / "events.jsonl"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), f"p{i}"])
        for i in range(3)
    ]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    found: list[Event] = []
    for f in _all_files(path):
        assert f.stat().st_size <= 30_000
        found += _read_events(f)
    assert len(found) == 3 * 60 * 4
    assert len({e.id for e in found}) == len(found)
    for tag in ("p0", "p1", "p2"):
        mine = [(e.payload["r"], e.payload["k"]) for e in found if e.event == tag]
        assert mine == sorted(mine)


# -- errors and configuration ---------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_bytes": -5}, "max_bytes"),
        ({"max_bytes": 1.5}, "max_bytes"),
        ({"max_bytes": True}, "max_bytes"),
        ({"backups": -1}, "backups"),
        ({"backups": "3"}, "backups"),
        ({"backups": False}, "backups"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(
    tmp_path: Path, kwargs: dict[str, object], argument: str
) -> None:
    """A bad max_bytes or backups raises ValueError that names the argument."""
    with pytest.raises(ValueError, match=rf"^{argument} must be"):
        FileEmitter(tmp_path / "e.jsonl", **kwargs)  # type: ignore[arg-type]


def test_an_unwritable_path_is_counted_as_failed(tmp_path: Path) -> None:
    """When the file cannot be created, the pipeline counts the events as failed."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    name = f"file-{secrets.token_hex(4)}"
    sink = FileEmitter(blocker / "events.jsonl", name=name)
    with pytest.raises(OSError):  # noqa: PT011 - the OS decides which one
        sink.emit_batch([_event("x")])
    configure(emitters=[sink])
    emit_event("x", {"id": "r"})
    flush()
    assert stats()["failed"][name] == 1


def test_from_environment_defaults_to_the_home_folder(
    eventblocks_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without EVENTBLOCKS_FILE_PATH the file is events.jsonl in the home."""
    monkeypatch.delenv("EVENTBLOCKS_FILE_PATH", raising=False)
    sink = from_environment()
    assert sink.path == eventblocks_home / "events.jsonl"
    assert not sink.path.exists()  # nothing is created before the first event


def test_from_environment_reads_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EVENTBLOCKS_FILE_PATH names the file."""
    target = tmp_path / "logs" / "ev.jsonl"
    monkeypatch.setenv("EVENTBLOCKS_FILE_PATH", str(target))
    with from_environment() as sink:
        sink.emit_batch([_event("x")])
    assert len(_lines(target)) == 1


def test_properties_and_repr(tmp_path: Path) -> None:
    """The options are readable back, and the repr names the file."""
    sink = FileEmitter(tmp_path / "e.jsonl", max_bytes=1234, backups=2, name="f")
    assert (sink.max_bytes, sink.backups, sink.name) == (1234, 2, "f")
    assert sink.path == tmp_path / "e.jsonl"
    assert "e.jsonl" in repr(sink)
