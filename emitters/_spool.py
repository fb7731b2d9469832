"""The disk spool of the HTTP and NATS sinks: batches that could not be sent.

One file per batch, named ``<uuid7 hex>.<endpoint tag>.batch`` so that names sort
in the order the batches were spooled, and an emitter replays only what was meant
for its own destination (an HTTP endpoint, a NATS stream and subject). A file is
written as a hidden temporary file, synced, then renamed into place, so a reader
never sees half of one. It holds one JSON header line (``count``, ``key``,
``encoding``) and then the body exactly as it is sent.

Replaying is claimed with an advisory lock on ``.lock`` in the folder (``flock``,
released by the kernel if the process dies), so two emitters or processes never
send the same file at the same time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from emitters._ids import new_uuid7
from emitters._pipeline.delivery import throttle

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: in-process claims only
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "Batch",
    "Spool",
    "SpoolError",
    "endpoint_tag",
    "http_batch_is_whole",
    "open_spool",
]

_SUFFIX = ".batch"
_LOCK_NAME = ".lock"
_CLAIM_POLL_S = 0.02

_dir_claims: dict[str, threading.Lock] = {}
_dir_claims_guard = threading.Lock()


class Batch(NamedTuple):
    """One delivery's worth of events, ready to send or to spool.

    Attributes:
        body: The bytes sent (an HTTP request body, compressed if ``encoding`` is
            ``"gzip"``; for NATS, one ``<event id> <event JSON>`` line per event).
        encoding: ``"gzip"`` or ``"identity"``.
        event_count: How many events the body holds.
        key: The idempotency key: the first and the last event id.
    """

    body: bytes
    encoding: str
    event_count: int
    key: str


def endpoint_tag(url: str) -> str:
    """Return a short, one-way tag of a destination for spool file names."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def http_batch_is_whole(batch: Batch) -> bool:
    """Whether a spooled HTTP body (``{"events": [...]}``, or a bare JSON array as
    Prefect's events API takes it; maybe gzipped) decodes to exactly the events its
    header counts."""
    body = batch.body
    try:
        if batch.encoding == "gzip":
            body = zlib.decompress(body, wbits=31)
        elif batch.encoding != "identity":
            return False
        parsed = json.loads(body)
        events = parsed.get("events") if isinstance(parsed, dict) else parsed
    except (zlib.error, ValueError, AttributeError):
        return False
    return isinstance(events, list) and len(events) == batch.event_count


def _claim_lock(folder: str) -> threading.Lock:
    with _dir_claims_guard:
        lock = _dir_claims.get(folder)
        if lock is None:
            lock = _dir_claims[folder] = threading.Lock()
        return lock


class SpoolError(OSError):
    """A batch could not be spooled (the spool is full, or cannot be written), so
    its events are lost; the message says which, and where."""


class Spool:
    """A bounded folder of batches waiting to be sent to one destination.

    Args:
        folder: The spool folder, created (mode 0700) on first use.
        max_bytes: The most bytes of batch files the folder may hold.
        tag: The destination's tag (see :func:`endpoint_tag`).
    """

    def __init__(
        self,
        folder: Path,
        max_bytes: int,
        tag: str,
        *,
        is_whole: Callable[[Batch], bool] = http_batch_is_whole,
    ) -> None:
        self.folder = folder
        # Checks that a file read back holds the whole batch its header counts
        # (its sink's own encoding), so that a truncated file is never sent.
        self._is_whole = is_whole
        self.max_bytes = max_bytes
        self._suffix = f".{tag}{_SUFFIX}"
        self._size: int | None = None
        self._claim = _claim_lock(str(folder))
        self.corrupt = 0
        """Files this spool set aside as ``.corrupt``."""

    # -- listing ---------------------------------------------------------------

    def pending(self) -> list[Path]:
        """Return this endpoint's batch files, oldest first."""
        try:
            with os.scandir(self.folder) as entries:
                names = [e.name for e in entries if e.name.endswith(self._suffix)]
        except FileNotFoundError:
            return []
        names.sort()
        return [self.folder / name for name in names]

    def has_pending(self) -> bool:
        """Whether any batch for this endpoint is waiting."""
        try:
            with os.scandir(self.folder) as entries:
                return any(e.name.endswith(self._suffix) for e in entries)
        except FileNotFoundError:
            return False

    def _scan_size(self) -> int:
        total = 0
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    if entry.name.endswith(_SUFFIX):
                        with contextlib.suppress(FileNotFoundError):
                            total += entry.stat().st_size
        except FileNotFoundError:
            pass
        return total

    # -- writing ---------------------------------------------------------------

    def write(self, batch: Batch) -> Path | None:
        """Spool ``batch`` and return its file; None if it does not fit.

        Raises:
            OSError: The folder or the file could not be written.
        """
        header = json.dumps(
            {"count": batch.event_count, "key": batch.key, "encoding": batch.encoding}
        ).encode()
        data = header + b"\n" + batch.body
        if self._size is None or self._size + len(data) > self.max_bytes:
            # Other processes may have added or replayed files meanwhile.
            self._size = self._scan_size()
            if self._size + len(data) > self.max_bytes:
                return None
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        stem = new_uuid7().hex
        final = self.folder / f"{stem}{self._suffix}"
        temp = self.folder / f".{stem}{self._suffix}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        os.close(fd)
        os.replace(temp, final)
        self._size += len(data)
        return final

    def keep(self, batch: Batch, owner: str) -> None:
        """Spool ``batch`` for ``owner`` (the sink's name, for the message).

        Raises:
            SpoolError: The spool is full, or the folder or file could not be
                written: the batch was not kept.
        """
        try:
            stored = self.write(batch)
        except OSError as exc:
            raise SpoolError(
                f"{owner} could not spool {batch.event_count} events to "
                f"{self.folder} ({type(exc).__name__}: {exc.strerror or exc}); "
                "they were dropped"
            ) from None
        if stored is None:
            raise SpoolError(
                f"{owner}: the spool {self.folder} is full "
                f"(max_spool_bytes={self.max_bytes}); {batch.event_count} events "
                "were dropped"
            )

    # -- reading and removing --------------------------------------------------

    def read(self, path: Path) -> Batch | None:
        """Return the batch in ``path``; None if it is gone or unreadable.

        The body is checked (decompressed, parsed, its events counted), so that a
        truncated file is never sent. An unreadable file is renamed to
        ``<name>.corrupt`` so it stops blocking the ones after it.
        """
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            data = b""
        header, sep, body = data.partition(b"\n")
        try:
            meta = json.loads(header)
            batch: Batch | None = Batch(
                body, str(meta["encoding"]), int(meta["count"]), str(meta["key"])
            )
        except (ValueError, KeyError, TypeError):
            batch = None
        if batch is None or not sep or not self._is_whole(batch):
            self.set_aside(path)
            throttle.warn(
                f"spool-corrupt:{self.folder}",
                "spool file %s is unreadable and was set aside as .corrupt",
                path.name,
            )
            return None
        return batch

    def set_aside(self, path: Path) -> None:
        """Rename a batch file that cannot be sent to ``<name>.corrupt``."""
        try:
            size = path.stat().st_size
            os.replace(path, path.with_name(path.name + ".corrupt"))
        except OSError:
            return
        self.corrupt += 1
        if self._size is not None:
            self._size = max(0, self._size - size)

    def remove(self, path: Path) -> None:
        """Delete a batch file that was delivered (or rejected for good)."""
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return
        if self._size is not None:
            self._size = max(0, self._size - size)

    # -- claiming --------------------------------------------------------------

    @contextlib.contextmanager
    def claimed(self, deadline: float | None, stop: threading.Event) -> Iterator[bool]:
        """Hold the right to replay this folder; yield False if not obtained.

        Args:
            deadline: A ``time.monotonic()`` time to give up at; None tries once.
            stop: Give up as soon as this is set.
        """
        if not self._claim.acquire(blocking=False) and (
            deadline is None or not self._wait_for(self._claim, deadline, stop)
        ):
            yield False
            return
        try:
            fd = self._lock_file(deadline, stop)
            if fd is None:
                yield False
                return
            try:
                yield True
            finally:
                os.close(fd)  # releases the flock too
        finally:
            self._claim.release()

    def _wait_for(
        self, lock: threading.Lock, deadline: float, stop: threading.Event
    ) -> bool:
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if lock.acquire(timeout=min(remaining, _CLAIM_POLL_S)):
                return True
        return False

    def _lock_file(self, deadline: float | None, stop: threading.Event) -> int | None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.folder / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        if fcntl is None:  # pragma: no cover - Windows
            return fd
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if (
                    deadline is None
                    or time.monotonic() >= deadline
                    or stop.wait(_CLAIM_POLL_S)
                ):
                    os.close(fd)
                    return None
            else:
                return fd


def open_spool(
    folder: str | os.PathLike[str] | None,
    max_bytes: int,
    destination: str,
    *,
    is_whole: Callable[[Batch], bool] = http_batch_is_whole,
) -> Spool | None:
    """Return the spool of a sink in ``folder`` (None: the sink has none).

    Args:
        folder: The spool folder as the user gave it (``~`` is expanded).
        max_bytes: The most bytes of batch files the folder may hold.
        destination: What the sink sends to (a URL, a stream and subject); only
            its one-way tag is written in file names.
        is_whole: Checks that a batch read back is whole, in the sink's encoding.
    """
    if folder is None:
        return None
    return Spool(
        Path(os.fspath(folder)).expanduser().absolute(),
        max_bytes,
        endpoint_tag(destination),
        is_whole=is_whole,
    )
