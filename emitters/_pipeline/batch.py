"""What a sink receives: an immutable batch of events, built only if read.

The dispatcher turns queued records into *drafts*, tuples that hold what an
event is made of without the event itself::

    (id, wall_ns, name, described, payload, follows)

- ``id``: the event's UUIDv7 as an integer;
- ``wall_ns``: when it occurred, in nanoseconds since the Unix epoch (UTC);
- ``name``: the event name;
- ``described``: the call's parts, shared by all the events of the calls of
  one block method in one run: ``(resource, related, started name, succeeded
  name, failed name)``;
- ``payload``: a dict, or None for an empty one (a ``started`` event);
- ``follows``: the id of the event this one follows, as an integer, or None.

A sink that writes rows or JSON (the SQL store, the file and HTTP sinks) or
keeps events (the memory emitter), which set :data:`DRAFTS_ATTRIBUTE`, reads
the drafts of an :class:`EventBatch` through :meth:`EventBatch.items` and
turns them straight into what it writes, with the parts that repeat from one
call to the next encoded once, or keeps them. Any other
reader of the batch gets ``Event`` objects, shared by every reader. The
dispatcher builds them when some sink reads events (and keeps the drafts only
when some sink writes from them): a batch that only the SQL store takes never
builds one.

Items that are not drafts are events already (those of ``emit_event()`` and
the pipeline's own), and pass through.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, cast, overload
from uuid import UUID

from pydantic_core import to_json

from emitters._ids import _UNKNOWN, _new, _set_uuid_int, _set_uuid_safe
from emitters._model import _ALL_FIELDS, _EVENT_SLOTS, Event

if TYPE_CHECKING:
    from emitters._model import RelatedResource, Resource

__all__ = [
    "DRAFTS_ATTRIBUTE",
    "Described",
    "Draft",
    "EventBatch",
    "Item",
    "JsonEncoder",
    "event_maker",
    "item_id",
    "items_of",
    "materialize",
    "reads_drafts",
]

Described = tuple["Resource", tuple["RelatedResource", ...], str, str, str]
"""A call's resource, related resources and its three event names."""
Item = Any
"""A draft or an ``Event``: ``type(item) is tuple`` tells them apart."""


Draft = tuple[int, int, str, Described, "dict[str, Any] | None", "int | None"]
"""A draft's fields: ``(id, wall_ns, name, described, payload, follows)``."""


_NS = 1_000_000_000


# The datetime constructor's other form, which typing stubs leave out.
_FROM_STATE = cast(Callable[[bytes, tzinfo], datetime], datetime)


def _second_state(unix_s: int) -> bytes:
    """The first seven bytes of a UTC datetime's pickled state at ``unix_s``.

    ``datetime(state + microsecond.to_bytes(3), UTC)`` is then that second plus
    the microsecond: the datetime constructor takes the ten bytes of its pickled
    form (year in two bytes, month, day, hour, minute, second, microsecond in
    three, all big-endian) as its first argument.
    """
    t = datetime.fromtimestamp(unix_s, UTC)
    return t.year.to_bytes(2) + bytes((t.month, t.day, t.hour, t.minute, t.second))


def event_maker(copy_payloads: bool = False) -> Callable[[Draft], Event]:
    """Return a function that makes the event of a draft.

    With ``copy_payloads`` each event gets a copy of its draft's payload
    dictionary (a reader of kept drafts must not change them); else the
    event holds the draft's own.

    Events are assembled from trusted parts, as pydantic's constructor would
    fill them, without validation. The function keeps the parts of the last
    second it saw, and the id of the last ``started`` event: an outcome made
    right after the event it follows (a call that made no other on the way)
    shares its id object, one object fewer to free or, for as long as events
    are kept, for the garbage collector to walk. Use one per batch, on one
    thread.
    """
    maker = _maker(copy_payloads)
    next(maker)  # to the first yield, which gives None: every other an event
    return cast(Callable[[Draft], Event], maker.send)


def _maker(copy_payloads: bool) -> Generator[Event | None, Draft, None]:
    """The body of :func:`event_maker`: each draft sent in gives back its event.

    A generator resumed by ``send`` costs less than a function call, and its
    locals are already in place.
    """
    new, set_int, set_safe, unknown = _new, _set_uuid_int, _set_uuid_safe, _UNKNOWN
    set_dict, set_fields, set_extra, set_private = _EVENT_SLOTS
    all_fields = _ALL_FIELDS
    uuid_type, event_type = UUID, Event
    stamp, utc, to_bytes = _FROM_STATE, UTC, int.to_bytes
    last_id, last_uid = -1, None  # the last started event's id, and its object
    # The last second seen, from its first nanosecond to the first of the next,
    # and its date and time in the form datetime pickles itself as (see
    # _second_state): a datetime made from those bytes and its microsecond
    # skips the parsing of eight arguments.
    second, next_second, state = 0, 0, b""
    event = None
    while True:
        event_id, wall, name, described, payload, follows = yield event
        uid = new(uuid_type)
        set_int(uid, event_id)
        set_safe(uid, unknown)
        if follows is None:
            follows_id = None
            last_id, last_uid = event_id, uid
        elif follows == last_id:
            follows_id = last_uid
        else:
            follows_id = new(uuid_type)
            set_int(follows_id, follows)
            set_safe(follows_id, unknown)
        if not second <= wall < next_second:
            second = wall - wall % _NS
            next_second = second + _NS
            state = _second_state(second // _NS)
        event = new(event_type)
        set_dict(
            event,
            {
                "id": uid,
                "occurred": stamp(state + to_bytes((wall - second) // 1000, 3), utc),
                "event": name,
                "resource": described[0],
                "related": described[1],
                "payload": {}
                if payload is None
                else (payload.copy() if copy_payloads else payload),
                "follows": follows_id,
            },
        )
        set_fields(event, all_fields)
        set_extra(event, None)
        set_private(event, None)


def materialize(items: Sequence[Item]) -> list[Event]:
    """Return the events of ``items`` (drafts and events), in order."""
    make = event_maker()
    return [item if type(item) is not tuple else make(item) for item in items]


class EventBatch(Sequence[Event]):
    """An immutable batch of events, shared by every sink.

    It reads as a sequence of ``Event`` objects, shared by every reader: built
    by the dispatcher when some sink reads events, else on the first read. The
    SQL store, the file and the HTTP sinks read :meth:`items` instead, the
    drafts the dispatcher made for them.
    """

    __slots__ = ("_events", "_items", "_lock")

    def __init__(self, items: Sequence[Item]) -> None:
        self._items: tuple[Item, ...] = tuple(items)
        self._events: tuple[Event, ...] | None = None
        self._lock = threading.Lock()

    @classmethod
    def of_events(cls, events: Sequence[Event]) -> EventBatch:
        """A batch of events already built."""
        batch = cls(events)
        batch._events = batch._items
        return batch

    @classmethod
    def join(cls, batches: Sequence[Sequence[Event]]) -> EventBatch:
        """One batch of the items of ``batches``, in order, with its events
        when every batch had its events built."""
        items: list[Item] = []
        events: list[Event] | None = []
        for batch in batches:
            if isinstance(batch, EventBatch):
                items.extend(batch._items)
                if batch._events is None:
                    events = None
                elif events is not None:
                    events.extend(batch._events)
            else:
                items.extend(batch)
                if events is not None:
                    events.extend(batch)
        joined = cls(items)
        if events is not None:
            joined._events = tuple(events)
        return joined

    def items(self) -> tuple[Item, ...]:
        """The drafts and events of the batch (see the module's docstring),
        whether or not its events were built too."""
        return self._items

    def events(self) -> tuple[Event, ...]:
        """The events of the batch, built on the first call."""
        events = self._events
        if events is None:
            with self._lock:
                events = self._events
                if events is None:
                    events = self._events = tuple(materialize(self._items))
        return events

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | Sequence[Event]:
        return self.events()[index]

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events())

    def __repr__(self) -> str:
        return f"<EventBatch of {len(self._items)} events>"


DRAFTS_ATTRIBUTE = "_eventblocks_reads_drafts"
"""Set to True on a sink class that reads :meth:`EventBatch.items`."""


def reads_drafts(sink: object) -> bool:
    """Whether ``sink`` writes from the drafts of a batch rather than its events."""
    return getattr(sink, DRAFTS_ATTRIBUTE, False) is True


def items_of(events: Sequence[Event]) -> Sequence[Item]:
    """The drafts and events of a batch a sink was given (any sequence of
    events is its own items)."""
    if isinstance(events, EventBatch):
        return events.items()
    return events


def item_id(item: Item) -> UUID:
    """The id of a draft or an event."""
    if type(item) is tuple:
        return UUID(int=item[0])
    event_id: UUID = item.id
    return event_id


class JsonEncoder:
    """Writes events as JSON, each exactly as ``Event.model_dump_json()`` does.

    A draft's resource and related resources are encoded once per call's parts
    and kept (the cache keeps its key objects alive, so an ``id()`` is not
    reused while its entry exists); ids and times are written from their
    integers. Events already built are encoded by pydantic. Safe to share
    between threads.
    """

    _MAX = 2048

    def __init__(self) -> None:
        self._middles: dict[int, tuple[Described, dict[str, bytes]]] = {}
        # The last second written, and its text: one attribute, so that two
        # threads writing at once cannot pair one's second with the other's text.
        self._clock: tuple[int, bytes] = (-1, b"")

    def _middle(self, described: Described, name: str) -> bytes:
        """The JSON between an event's time and its payload, per event name."""
        hit = self._middles.get(id(described))
        if hit is None or hit[0] is not described:
            shared = (
                b',"resource":'
                + to_json(described[0])
                + b',"related":'
                + to_json(described[1])
                + b',"payload":'
            )
            by_name = {n: b',"event":' + to_json(n) + shared for n in described[2:5]}
            if len(self._middles) >= self._MAX:
                self._middles.clear()
            hit = self._middles[id(described)] = (described, by_name)
        return hit[1][name]

    def lines(self, items: Sequence[Item]) -> list[bytes]:
        """Return each event of ``items`` as one line of JSON, without its end."""
        out: list[bytes] = []
        append = out.append
        tuple_type = tuple
        second, second_text = self._clock
        for item in items:
            if type(item) is not tuple_type:
                append(item.__pydantic_serializer__.to_json(item))
                continue
            event_id, wall, name, described, payload, follows = item
            h = f"{event_id:032x}"
            sec, rest = divmod(wall, 1_000_000_000)
            if sec != second:
                second = sec
                t = datetime.fromtimestamp(sec, UTC)
                second_text = (
                    f"{t.year:04d}-{t.month:02d}-{t.day:02d}"
                    f"T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
                ).encode()
            micros = rest // 1000
            if micros:
                occurred = second_text + b'.%06dZ"' % micros
            else:
                occurred = second_text + b'Z"'
            if follows is None:
                tail = b',"follows":null}'
            else:
                f = f"{follows:032x}"
                tail = (
                    f',"follows":"{f[:8]}-{f[8:12]}-{f[12:16]}-{f[16:20]}-{f[20:]}"}}'
                ).encode()
            append(
                f'{{"id":"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}","occurred":"'.encode()
                + occurred
                + self._middle(described, name)
                + (b"{}" if payload is None else to_json(payload))
                + tail
            )
        self._clock = (second, second_text)
        return out
