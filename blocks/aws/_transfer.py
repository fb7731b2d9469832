"""Moving bytes to and from S3: transfer managers whose threads keep the run
context, the tally of what one call moved, and the progress bar of folder
transfers.

boto3's transfers (multipart uploads, ranged downloads, copies) run in
s3transfer's thread pools, which start with an empty ``contextvars`` context.
:func:`transfer_manager` gives them executors that run each task in a copy of the
submitting thread's context, so code running there (botocore event hooks, an
OpenTelemetry instrumentation, a block called from a hook) sees the caller's flow
run, task run and active call.
"""

from __future__ import annotations

import contextvars
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from s3transfer.manager import (  # type: ignore[import-untyped]
    TransferConfig,
    TransferManager,
)
from s3transfer.subscribers import BaseSubscriber  # type: ignore[import-untyped]

__all__ = [
    "ContextThreadPoolExecutor",
    "FolderProgress",
    "Tally",
    "TallySubscriber",
    "folder_progress",
    "last_tally",
    "new_tally",
    "set_tally",
    "transfer_manager",
]

P = ParamSpec("P")
T = TypeVar("T")


class Tally:
    """What one block call was about and what it moved, counted from any thread.

    Attributes:
        detail: What the call was about, for its event: ``bucket``, ``key`` or
            ``prefix``... Set by the method once it has worked the keys out.
        bytes: The bytes moved so far.
        objects: The objects moved (or listed, or deleted) so far.
    """

    __slots__ = ("_lock", "bytes", "detail", "objects")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.detail: dict[str, Any] = {}
        self.bytes = 0
        self.objects = 0

    def add_bytes(self, count: int) -> None:
        """Count ``count`` bytes moved (negative when s3transfer retries a part)."""
        with self._lock:
            self.bytes += count

    def add_object(self, count: int = 1) -> None:
        """Count ``count`` objects transferred (or deleted) whole."""
        with self._lock:
            self.objects += count


# The tally of the latest S3 call started in this context. A sync method sets it
# on the caller's thread and an async twin in its task, before any work, and the
# payload hook reads it right after the call, in the same context.
_TALLY: contextvars.ContextVar[Tally | None] = contextvars.ContextVar(
    "eventblocks_s3_tally", default=None
)


def new_tally() -> Tally:
    """Start the tally of a call, in the current context, and return it."""
    tally = Tally()
    _TALLY.set(tally)
    return tally


def set_tally(tally: Tally) -> None:
    """Make ``tally`` the latest again (after calls into other buckets)."""
    _TALLY.set(tally)


def last_tally() -> Tally | None:
    """Return the tally of the latest call started in this context."""
    return _TALLY.get()


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A thread pool that runs each task in a copy of its submitter's context."""

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` in a copy of the current context."""
        context = contextvars.copy_context()

        def run() -> T:
            return context.run(fn, *args, **kwargs)

        return super().submit(run)


@contextmanager
def transfer_manager(
    client: Any, config: TransferConfig | None = None
) -> Iterator[TransferManager]:
    """Yield an s3transfer manager for ``client`` whose threads keep the context.

    It uses ``config``, or boto3's defaults: parts of 8 MiB from 8 MiB on, ten
    threads. On leaving, it waits for its transfers; on an exception it cancels
    them first.
    """
    manager = TransferManager(
        client, config or TransferConfig(), executor_cls=ContextThreadPoolExecutor
    )
    with manager:
        yield manager


class TallySubscriber(BaseSubscriber):  # type: ignore[misc]
    """Counts a transfer's bytes into a tally (and a progress bar), and gives
    s3transfer the object's size when it is known, which spares a HEAD request."""

    def __init__(
        self,
        tally: Tally,
        *,
        size: int | None = None,
        progress: FolderProgress | None = None,
    ) -> None:
        self._tally = tally
        self._size = size
        self._progress = progress

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        """Tell s3transfer the size, if known."""
        if self._size is not None:
            future.meta.provide_transfer_size(self._size)

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        """Count the bytes moved (called from s3transfer's threads)."""
        self._tally.add_bytes(bytes_transferred)
        if self._progress is not None:
            self._progress.advance(bytes_transferred)


class FolderProgress:
    """A progress bar on the terminal for a folder transfer: bytes and files."""

    def __init__(self, progress: Any, task: Any, files: int) -> None:
        self._progress = progress
        self._task = task
        self._files = files
        self._done = 0
        self._lock = threading.Lock()

    def advance(self, count: int) -> None:
        """Move the bar by ``count`` bytes."""
        self._progress.advance(self._task, count)

    def file_done(self) -> None:
        """Count one more file transferred."""
        with self._lock:
            self._done += 1
            done = self._done
        self._progress.update(self._task, files=f"{done}/{self._files}")


@contextmanager
def folder_progress(
    description: str, total_bytes: int, files: int
) -> Iterator[FolderProgress | None]:
    """Show a progress bar on stderr while the block runs, if stderr is a terminal.

    Yields None, and prints nothing, when stderr is not a terminal (a log file, a
    pipe, a scheduler's capture).
    """
    stream = sys.stderr
    isatty = getattr(stream, "isatty", None)
    if stream is None or isatty is None or not isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("{task.fields[files]} files"),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(file=stream),
    )
    with progress:
        task = progress.add_task(description, total=total_bytes, files=f"0/{files}")
        yield FolderProgress(progress, task, files)
