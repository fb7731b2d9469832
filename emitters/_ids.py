"""UUIDv7 identifiers (RFC 9562), time ordered and cheap to make.

Python 3.11 has no ``uuid.uuid7``. Building a ``uuid.UUID`` through its constructor
validates its arguments and costs about a microsecond; the pipeline makes two ids per
block call, so it fills the object's slots directly instead.
"""

from __future__ import annotations

import os
import random
import threading
import time
from uuid import UUID, SafeUUID

__all__ = ["IdSequence", "new_uuid7", "run_short_id", "uuid7_from_ns"]

_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_RAND_B_MASK = (1 << 62) - 1
_COUNTER_LIMIT = 1 << 12

_new = object.__new__
_set_uuid_int = UUID.int.__set__  # type: ignore[attr-defined,misc]
_set_uuid_safe = UUID.is_safe.__set__  # type: ignore[attr-defined,misc]
_UNKNOWN = SafeUUID.unknown


class IdSequence:
    """Makes UUIDv7 ids that never sort before earlier ones of the same sequence.

    The 12-bit ``rand_a`` field is a counter within a millisecond (RFC 9562,
    method 1); when it runs out, the millisecond is advanced, as the RFC allows.
    Not thread-safe: each thread that makes ids in bulk owns one sequence.
    """

    def __init__(self) -> None:
        self.bits = random.Random(os.urandom(16)).getrandbits
        self.last_ms = -1
        self.counter = 0

    def from_ms(self, ms: int) -> UUID:
        """Return the next id for the Unix time ``ms`` (milliseconds)."""
        if ms > self.last_ms:
            self.last_ms = ms
            self.counter = counter = self.bits(11)
        else:
            ms = self.last_ms
            counter = self.counter = self.counter + 1
            if counter >= _COUNTER_LIMIT:
                ms = self.last_ms = ms + 1
                counter = self.counter = self.bits(11)
        u = _new(UUID)
        _set_uuid_int(
            u, (ms << 80) | _VERSION_AND_VARIANT | (counter << 64) | self.bits(62)
        )
        _set_uuid_safe(u, _UNKNOWN)
        return u


_lock = threading.Lock()
_shared = IdSequence()


def _reseed() -> None:
    # A forked child must not repeat its parent's random sequence.
    global _lock, _shared
    _lock = threading.Lock()
    _shared = IdSequence()


os.register_at_fork(after_in_child=_reseed)


def uuid7_from_ns(unix_ns: int) -> UUID:
    """Return a UUIDv7 whose timestamp is ``unix_ns`` (nanoseconds since the epoch)."""
    with _lock:
        return _shared.from_ms(unix_ns // 1_000_000)


def new_uuid7() -> UUID:
    """Return a new UUIDv7 for the current time."""
    return uuid7_from_ns(time.time_ns())


def run_short_id(run_id: str) -> str:
    """Return the part of a run id shown in listings: the last 8 characters (of
    the hex digits, for a UUID), where UUIDv7 ids of one minute differ."""
    try:
        return UUID(run_id).hex[-8:]
    except ValueError:
        return run_id[-8:]
