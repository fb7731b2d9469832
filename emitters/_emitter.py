"""The sink plug-in point: ``Emitter``, and the in-memory sink ``MemoryEmitter``."""

from __future__ import annotations

import abc
import operator
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self, cast, overload

from emitters._model import Event
from emitters._pipeline.batch import Draft, event_maker, items_of
from emitters._pipeline.record import Call

__all__ = [
    "Emitter",
    "KeptEvents",
    "LiveCall",
    "LiveCallHook",
    "MemoryEmitter",
    "PartialDelivery",
]


class LiveCall(Protocol):
    """A call in progress that a sink observes on the caller's thread (a span)."""

    def end(
        self, error: tuple[str, str] | None, extra: Mapping[str, Any] | None
    ) -> None:
        """The call ended: ``error`` is (type, message) if it raised; ``extra`` is
        its payload hook's detail. Must not raise."""


class LiveCallHook(Protocol):
    """What a sink returns from :meth:`Emitter.live_calls` to see calls as they run."""

    def start(self, call: Call, current: bool) -> LiveCall | None:
        """A call starts on this thread; return what to tell when it ends, or None.

        ``call`` is read with the accessors of ``emitters._pipeline.record``;
        ``current`` says whether the caller's context may be changed until the call
        ends. Must not raise, and must be cheap: it runs on the caller's thread.
        """


class PartialDelivery(Exception):
    """Raised by a sink that delivered only part of a batch.

    The pipeline counts ``delivered`` events of the batch as delivered and the rest
    as failed, instead of counting the whole batch as failed.

    Args:
        delivered: How many events of the batch were delivered.
        reason: What happened to the others (no secret: it is logged).
    """

    def __init__(self, delivered: int, reason: str) -> None:
        super().__init__(reason)
        self.delivered = delivered


class Emitter(abc.ABC):
    """Base class of every sink.

    A sink implements :meth:`emit_batch`, and :meth:`flush` and :meth:`close` when it
    buffers or holds resources. The pipeline calls it from its own thread, one batch
    at a time, and isolates it: whatever it raises is caught, counted in ``stats()``
    and logged at most once a minute; a sink that hangs delays only itself.
    Emitters are context managers that close on exit.

    Three capabilities are declared here, off by default: :attr:`join_batches_up_to`
    (take batches that waited behind a slow write as one), :meth:`live_calls`
    (see each call on the caller's thread, as it runs) and :meth:`prepare_exit`
    (hear that the process is exiting, and by when it must be done).

    Args:
        name: The name it is counted under in ``stats()``; its class name by default.
    """

    join_batches_up_to: ClassVar[int] = 0
    """Batches waiting for this sink may reach it joined, up to this many events.

    0 (the default) hands every batch as it was made. A sink that writes a batch
    in one transaction sets a limit, so that after a slow write it catches up in
    fewer, larger transactions.
    """

    def __init__(self, *, name: str | None = None) -> None:
        self._emitter_name = name

    @property
    def name(self) -> str:
        """The name this sink is counted under in ``stats()``."""
        return getattr(self, "_emitter_name", None) or type(self).__name__

    @abc.abstractmethod
    def emit_batch(self, events: Sequence[Event]) -> None:
        """Deliver a batch of events, in order.

        Raise to report a failure: the whole batch is counted as failed, unless
        the exception is a :class:`PartialDelivery` that says how many were
        delivered.
        """

    def flush(self, timeout: float | None = None) -> bool:
        """Make delivered events durable; return False if ``timeout`` ran out."""
        return True

    def close(self) -> None:  # noqa: B027 - optional, like flush
        """Release what the sink holds. Called once, by ``shutdown()`` or ``with``."""

    def prepare_exit(self, deadline: float) -> None:  # noqa: B027 - optional
        """The process is exiting: everything must be done by ``deadline``.

        ``deadline`` is a ``time.monotonic()`` value. The exit hook calls it once,
        before it delivers what is queued and closes the sinks, so that a sink that
        retries (over a network) can stop retrying and put what is left where it
        keeps it (the HTTP sink's spool) instead of running out of time. Must be
        quick and must not raise.
        """

    def live_calls(self) -> LiveCallHook | None:
        """Return a hook that sees each block call start and end on the caller's
        thread, or None (the default).

        The pipeline asks when it is configured, and uses the first sink's hook.
        Only a sink that must act inside the call needs one (the OpenTelemetry
        sink's live mode makes each call's span current, so that spans of the
        libraries the block drives become its children); everything else is
        better done in :meth:`emit_batch`, off the caller's thread.
        """
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


_ALL = slice(None)
_NOT_A_DRAFT = (None,) * 5  # what follows an event that came built, in its row
# Each takes one field of a draft. (Columns made by zip(*drafts) would cost an
# iterator a draft: enough new objects to set off the collector.)
_FIELDS = tuple(itemgetter(i) for i in range(6))
Columns = tuple[tuple[Any, ...], ...]
"""A batch of drafts as its six columns (see emitters._pipeline.batch)."""


class MemoryEmitter(Emitter):
    """Keeps every event it receives, and gives them back in order as :attr:`events`.

    The events of block calls are kept as the parts they are made of (their id
    and time as integers, their name, the call's shared resources, their
    payload), a few hundred bytes each instead of a kilobyte or more, which the
    garbage collector does not have to walk; an ``Event`` is built each time
    one is read. Events that reached it already built (those of
    ``emit_event()``) are kept as they are.

    Args:
        max_events: Keep only the newest this many events; None keeps all.
        name: The name it is counted under in ``stats()``.
    """

    _eventblocks_reads_drafts = True

    def __init__(self, *, max_events: int | None = None, name: str | None = None):
        super().__init__(name=name)
        if max_events is not None and max_events < 1:
            raise ValueError(f"max_events must be at least 1, not {max_events!r}")
        self._max = max_events
        self._lock = threading.Lock()
        # The batches kept, oldest first, each as the six columns of its drafts
        # (an event that came built stands in the id column, with None in the
        # others): a few tuples a batch, where a tuple an event would give the
        # garbage collector one more object to walk for each.
        self._batches: list[Columns] = []
        # Where each batch starts, counting every event ever received; where
        # the first event kept is, and where the next event received will be.
        self._starts: list[int] = []
        self._first = 0
        self._end = 0
        # Whether any event kept came built (then its time is None).
        self._any_built = False

    @property
    def events(self) -> Sequence[Event]:
        """The events received so far, oldest first.

        A read-only sequence that follows what the sink receives: it compares
        equal to a list (or tuple) of the same events, and each event of a
        block call read from it is built anew, with a payload dictionary of its
        own (equal to the one read before, not the same object).
        """
        return KeptEvents(self)

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Keep the batch's events after those received before."""
        items = items_of(events)
        if not isinstance(items, list | tuple):
            items = list(items)  # read twice below
        if not items:
            return
        drafts_only = set(map(type, items)) <= {tuple}
        if not drafts_only:
            items = [i if type(i) is tuple else (i, *_NOT_A_DRAFT) for i in items]
        columns = tuple([tuple(map(field, items)) for field in _FIELDS])
        with self._lock:
            if not drafts_only:
                self._any_built = True
            self._batches.append(columns)
            self._starts.append(self._end)
            self._end += len(items)
            if self._max is not None and self._end - self._first > self._max:
                self._trim(self._end - self._max)

    def _trim(self, first: int) -> None:
        """Forget the events before ``first``; call with the lock held."""
        batches, starts = self._batches, self._starts
        while len(starts) > 1 and starts[1] <= first:
            del batches[0], starts[0]
        cut = first - starts[0]
        batches[0] = tuple(column[cut:] for column in batches[0])
        starts[0] = self._first = first

    def clear(self) -> None:
        """Forget every event received so far."""
        with self._lock:
            self._batches.clear()
            self._starts.clear()
            self._first = self._end
            self._any_built = False

    def _count(self) -> int:
        with self._lock:
            return self._end - self._first

    def _one(self, index: int) -> Event:
        """The event at ``index`` (negative from the end), as it is now."""
        with self._lock:
            count = self._end - self._first
            position = index + count if index < 0 else index
            if not 0 <= position < count:
                raise IndexError(
                    f"event index {index} out of range ({count} events kept)"
                )
            draft = self._draft(self._first + position)
        if draft[1] is None:
            built: Event = draft[0]  # an event that came built
            return built
        return event_maker(copy_payloads=True)(draft)

    def _draft(self, at: int) -> Draft:
        """The fields of the event received ``at``-th; call with the lock held."""
        i = bisect_right(self._starts, at) - 1
        offset = at - self._starts[i]
        return cast(Draft, tuple(column[offset] for column in self._batches[i]))

    def _read(self, window: slice = _ALL) -> Iterator[Event]:
        """The events of ``window`` (all by default) as they are now, each built
        as it is read: an event read and let go is freed before the garbage
        collector sees it, let alone keeps walking it."""
        with self._lock:
            start, stop, step = window.indices(self._end - self._first)
            start += self._first
            stop += self._first
            drafts: Iterator[Draft]
            if step == 1:
                # The batches are immutable: sliced after the lock is let go.
                spans = [
                    (columns, max(start - at, 0), stop - at)
                    for columns, at in zip(self._batches, self._starts, strict=True)
                    if at < stop and at + len(columns[0]) > start
                ]
                drafts = chain.from_iterable(
                    zip(*(column[lo:hi] for column in columns), strict=True)
                    for columns, lo, hi in spans
                )
            else:
                drafts = iter([self._draft(at) for at in range(start, stop, step)])
            any_built = self._any_built
        make = event_maker(copy_payloads=True)
        if not any_built:
            return map(make, drafts)
        return _mixed(make, drafts)


def _mixed(make: Callable[[Draft], Event], drafts: Iterator[Draft]) -> Iterator[Event]:
    """Events of drafts and events that came built, in order (see _read)."""
    for draft in drafts:
        if draft[1] is None:
            yield draft[0]  # an event that came built
        else:
            yield make(draft)


class KeptEvents(Sequence[Event]):
    """The events a :class:`MemoryEmitter` keeps, oldest first: a read-only view.

    Indexing, slicing and iterating build the events they return, each with a
    payload dictionary of its own; events that reached the sink built are
    returned as they are. Iterating reads the events kept when it starts.
    """

    __slots__ = ("_sink",)

    def __init__(self, sink: MemoryEmitter) -> None:
        self._sink = sink

    def __len__(self) -> int:
        return self._sink._count()

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        if isinstance(index, slice):
            return list(self._sink._read(index))
        return self._sink._one(operator.index(index))

    def __iter__(self) -> Iterator[Event]:
        return self._sink._read()

    def __reversed__(self) -> Iterator[Event]:
        return self._sink._read(slice(None, None, -1))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, KeptEvents | list | tuple):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(list(self))
