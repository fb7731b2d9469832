"""The JSON lines sink: ``FileEmitter``, with size-based rotation.

Each line of the file is one event, exactly as ``Event.model_dump_json()`` writes
it, so ``Event.model_validate_json(line)`` reads it back. Each batch is written with
``os.write`` on a descriptor opened with ``O_APPEND``, in chunks of whole lines, so
a reader never sees half a line from another writer. Emitters of one process that
share a path also share a lock; on POSIX an advisory ``flock`` on the file extends
that to other processes, including across a rotation (a writer that finds the path
renamed under it reopens it).
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Sequence
from pathlib import Path

from emitters._emitter import Emitter, PartialDelivery
from emitters._model import Event
from emitters._pipeline.batch import JsonEncoder, items_of
from emitters._settings import file_path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: in-process locking only
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileEmitter", "from_environment"]

_DEFAULT_MAX_BYTES = 10 * 1024 * 1024
_DEFAULT_BACKUPS = 5

# Read too: after a failed write the file's tail is read to find the last line.
_OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)

_path_locks: dict[str, threading.Lock] = {}
_path_locks_guard = threading.Lock()


def _lock_for(path: str) -> threading.Lock:
    with _path_locks_guard:
        lock = _path_locks.get(path)
        if lock is None:
            lock = _path_locks[path] = threading.Lock()
        return lock


def _check_max_bytes(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"max_bytes must be a positive integer (or None for no rotation), "
            f"not {value!r}"
        )
    return value


def _check_backups(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"backups must be a non-negative integer, not {value!r}")
    return value


def _same_file(fd: int, path: str) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


class _LinesWritten(Exception):
    """A write failed after ``count`` whole lines; the file ends on a line again."""

    def __init__(self, count: int, cause: OSError) -> None:
        super().__init__(count)
        self.count = count
        self.cause = cause


def _write_lines(fd: int, lines: list[bytes]) -> None:
    """Append ``lines``, whole or not at all: after a failed write (a full disk,
    a file size limit) the file is cut back to the end of the last whole line.

    Raises:
        _LinesWritten: How many of ``lines`` are in the file.
    """
    data = b"".join(lines)
    # O_APPEND writes at the end; the flock is held. A pipe has no end to cut to.
    start = os.lseek(fd, 0, os.SEEK_END) if _regular(fd) else None
    view = memoryview(data)
    done = 0
    try:
        while view:
            written = os.write(fd, view)
            view = view[written:]
            done += written
    except OSError as exc:
        whole = count = 0
        for line in lines:
            if whole + len(line) > done:
                break
            whole += len(line)
            count += 1
        if start is not None:
            # If this fails too, the next batch cuts it back before it writes.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start + whole)
        raise _LinesWritten(count, exc) from None


class FileEmitter(Emitter):
    """Appends each event to a file as one line of JSON, rotating by size.

    Every line is exactly ``event.model_dump_json()``, so
    ``Event.model_validate_json(line)`` reads it back. Parent folders are created
    on the first write. When a write would make the file larger than
    ``max_bytes``, the file is rotated first, like the standard library's
    ``RotatingFileHandler``: ``path`` becomes ``path.1``, ``path.1`` becomes
    ``path.2`` and so on up to ``path.<backups>``; the oldest is deleted. A line is
    never split across files, so a file exceeds ``max_bytes`` only when a single
    line does. ``flush()`` makes written events durable (``os.fsync``).

    Several emitters, threads or (on POSIX) processes may write to the same path:
    lines never interleave.

    Args:
        path: The file to append to.
        max_bytes: Rotate before the file would grow past this size; None never
            rotates.
        backups: How many rotated files to keep; 0 deletes the full file.
        name: The name it is counted under in ``stats()``.

    Raises:
        ValueError: ``max_bytes`` is not a positive integer or None, or ``backups``
            is not a non-negative integer.
    """

    # It writes JSON straight from the pipeline's drafts of events.
    _eventblocks_reads_drafts = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int | None = _DEFAULT_MAX_BYTES,
        backups: int = _DEFAULT_BACKUPS,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self._max_bytes = _check_max_bytes(max_bytes)
        self._backups = _check_backups(backups)
        self._path = Path(os.fspath(path)).expanduser().absolute()
        self._target = str(self._path)
        self._lock = _lock_for(self._target)
        self._fd: int | None = None
        self._rotated = False
        self._lines_done = 0
        self._json = JsonEncoder()

    @property
    def path(self) -> Path:
        """The file events are appended to."""
        return self._path

    @property
    def max_bytes(self) -> int | None:
        """The size a file may reach before it is rotated; None: never."""
        return self._max_bytes

    @property
    def backups(self) -> int:
        """How many rotated files are kept."""
        return self._backups

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Append one line per event, rotating first when the file is full.

        Lines are written whole or not at all: after a write error (a full disk)
        the file is cut back to its last whole line, and the next batch starts
        on a line of its own.

        Raises:
            PartialDelivery: A write failed; it says how many lines are written.
        """
        if not events:
            return
        lines = [line + b"\n" for line in self._json.lines(items_of(events))]
        with self._lock:
            fd = self._locked_current()
            self._lines_done = 0
            try:
                _cut_to_last_line(fd)
                if self._max_bytes is None:
                    _write_lines(fd, lines)
                else:
                    self._write_rotating(fd, lines, self._max_bytes)
            except _LinesWritten as exc:
                done = self._lines_done + exc.count
                raise PartialDelivery(
                    done,
                    f"wrote {done} of {len(lines)} lines to {self._target}, then "
                    f"{type(exc.cause).__name__}: {exc.cause.strerror or exc.cause}",
                ) from None
            finally:
                # A rotation replaces the descriptor (and its lock) on the way.
                if self._fd is not None:
                    _unlock(self._fd)

    def _locked_current(self) -> int:
        """Return a descriptor of the file now at the path, holding its flock."""
        while True:
            fd = self._fd
            if fd is None or not _same_file(fd, self._target):
                fd = self._reopen()
            _lock(fd)
            # Another process may have rotated the file while this one waited.
            if _same_file(fd, self._target):
                return fd
            _unlock(fd)

    def _reopen(self) -> int:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self._target, _OPEN_FLAGS, 0o644)
        return self._fd

    def _write_rotating(self, fd: int, lines: list[bytes], limit: int) -> None:
        size = os.fstat(fd).st_size
        chunk: list[bytes] = []
        chunk_size = 0
        for line in lines:
            if size + chunk_size + len(line) > limit and size + chunk_size > 0:
                if chunk:
                    _write_lines(fd, chunk)
                    self._lines_done += len(chunk)
                    chunk, chunk_size = [], 0
                fd = self._rotate(fd)
                size = 0
            chunk.append(line)
            chunk_size += len(line)
        if chunk:
            _write_lines(fd, chunk)

    def _rotate(self, fd: int) -> int:
        """Shift the backups, start a new file and return it, locked."""
        base = self._target
        if self._backups == 0:
            os.unlink(base)
        else:
            for i in range(self._backups - 1, 0, -1):
                older = f"{base}.{i}"
                if os.path.exists(older):
                    os.replace(older, f"{base}.{i + 1}")
            os.replace(base, f"{base}.1")
        new_fd = os.open(base, _OPEN_FLAGS, 0o644)
        # Lock the new file before releasing the old one, so that no other
        # process writes to either while the rest of this batch goes in.
        _lock(new_fd)
        os.fsync(fd)
        _unlock(fd)
        os.close(fd)
        self._fd = new_fd
        self._rotated = True
        return new_fd

    def flush(self, timeout: float | None = None) -> bool:
        """Make every line written so far durable on disk (``os.fsync``)."""
        with self._lock:
            if self._fd is None:
                return True
            os.fsync(self._fd)
            if self._rotated:
                # The renames of a rotation live in the folder's own entries.
                self._rotated = False
                _fsync_folder(self._path.parent)
        return True

    def close(self) -> None:
        """Close the file; a later write opens it again."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __repr__(self) -> str:
        return f"<FileEmitter name={self.name!r} path={self._target!r}>"


def _regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


def _cut_to_last_line(fd: int) -> None:
    """Cut a file that does not end with a newline back to its last whole line.

    Only after a write error whose clean-up failed can a file end mid-line.
    """
    info = os.fstat(fd)
    size = info.st_size
    if not stat.S_ISREG(info.st_mode) or size == 0:
        return
    if os.pread(fd, 1, size - 1) == b"\n":
        return
    end = size
    while end > 0:
        start = max(0, end - 65536)
        block = os.pread(fd, end - start, start)
        cut = block.rfind(b"\n")
        if cut >= 0:
            os.ftruncate(fd, start + cut + 1)
            return
        end = start
    os.ftruncate(fd, 0)


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - folders cannot be opened on Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def from_environment() -> FileEmitter:
    """Return a ``FileEmitter`` configured by the environment.

    ``EVENTBLOCKS_FILE_PATH`` names the file; by default it is ``events.jsonl`` in
    the eventblocks home (``EVENTBLOCKS_HOME``, by default ``~/.eventblocks``).
    """
    return FileEmitter(file_path())
