"""Calls between blocks: same-instance calls, caller links and nested documents."""

import asyncio
import uuid
from collections.abc import Iterator

from blocks import Block
from emitters import Event
from emitters.testing import capture_events


class Creds(Block):
    """Credentials that other blocks hold in a field."""

    user: str = "app"

    def authenticate(self) -> str:
        """Return a session token."""
        return f"session-for-{self.user}"

    async def aauthenticate(self) -> str:
        """Return a session token asynchronously."""
        await asyncio.sleep(0)
        return f"session-for-{self.user}"


class Connector(Block):
    """A block that uses the credentials block in its field."""

    credentials: Creds

    def connect(self) -> str:
        """Connect with the credentials."""
        return "connected:" + self.credentials.authenticate()

    async def aconnect(self) -> str:
        """Connect with the credentials asynchronously."""
        return "connected:" + await self.credentials.aauthenticate()

    def outer(self) -> int:
        """Call another method of the same instance."""
        return self.inner() + 1

    def inner(self) -> int:
        """Be called by outer."""
        return 1

    async def aouter(self) -> int:
        """Await another method of the same instance."""
        return await self.ainner() + 1

    async def ainner(self) -> int:
        """Be awaited by aouter."""
        await asyncio.sleep(0)
        return 1

    def rows(self) -> Iterator[int]:
        """A generator that calls another method of the same instance."""
        yield from range(self.inner() + 1)


class Relay(Block):
    """A block of one type that calls another instance of the same type."""

    peer: "Relay | None" = None

    def ping(self) -> str:
        """Ping the peer, if any."""
        return self.peer.ping() if self.peer is not None else "end"


def names(events: list[Event]) -> list[str]:
    """Return the events' names."""
    return [e.event for e in events]


def caller_ids(event: Event) -> list[str]:
    """Return the ids of the event's related resources of role caller."""
    return [r.id for r in event.related_by_role("caller")]


def test_call_into_same_instance_emits_only_the_outer_call() -> None:
    """A method calling another method of the same instance emits only its own."""
    with capture_events() as events:
        assert Connector(credentials=Creds()).outer() == 2
    assert names(events) == [
        "block.connector.outer.started",
        "block.connector.outer.succeeded",
    ]


async def test_async_call_into_same_instance_emits_only_the_outer_call() -> None:
    """An async method awaiting another of the same instance emits only its own."""
    with capture_events() as events:
        assert await Connector(credentials=Creds()).aouter() == 2
    assert names(events) == [
        "block.connector.aouter.started",
        "block.connector.aouter.succeeded",
    ]


def test_generator_calling_same_instance_emits_only_the_generator() -> None:
    """A generator calling a method of its own instance emits only its own events."""
    with capture_events() as events:
        assert list(Connector(credentials=Creds()).rows()) == [0, 1]
    assert names(events) == [
        "block.connector.rows.started",
        "block.connector.rows.succeeded",
    ]


def test_call_into_another_block_links_its_caller() -> None:
    """A call into a field's block emits its own events with role caller."""
    with capture_events() as events:
        result = Connector(credentials=Creds()).connect()
    assert result == "connected:session-for-app"
    assert names(events) == [
        "block.connector.connect.started",
        "block.creds.authenticate.started",
        "block.creds.authenticate.succeeded",
        "block.connector.connect.succeeded",
    ]
    outer_started, inner_started, inner_end, outer_end = events
    assert inner_end.follows == inner_started.id
    assert outer_end.follows == outer_started.id
    for inner in (inner_started, inner_end):
        assert caller_ids(inner) == [f"event.{outer_started.id}"]
    for outer in (outer_started, outer_end):
        assert caller_ids(outer) == []


async def test_async_call_into_another_block_links_its_caller() -> None:
    """An awaited call into a field's block emits its events with role caller."""
    with capture_events() as events:
        result = await Connector(credentials=Creds()).aconnect()
    assert result == "connected:session-for-app"
    assert names(events) == [
        "block.connector.aconnect.started",
        "block.creds.aauthenticate.started",
        "block.creds.aauthenticate.succeeded",
        "block.connector.aconnect.succeeded",
    ]
    outer_started, inner_started, inner_end, outer_end = events
    assert inner_end.follows == inner_started.id
    for inner in (inner_started, inner_end):
        assert caller_ids(inner) == [f"event.{outer_started.id}"]
    assert caller_ids(outer_started) == caller_ids(outer_end) == []


def test_call_into_another_instance_of_the_same_type_links_its_caller() -> None:
    """Another instance of the same type is a different block: it emits too."""
    with capture_events() as events:
        assert Relay(peer=Relay()).ping() == "end"
    assert names(events) == [
        "block.relay.ping.started",
        "block.relay.ping.started",
        "block.relay.ping.succeeded",
        "block.relay.ping.succeeded",
    ]
    outer_started, inner_started, inner_end, outer_end = events
    assert caller_ids(inner_started) == [f"event.{outer_started.id}"]
    assert caller_ids(inner_end) == [f"event.{outer_started.id}"]
    assert inner_end.follows == inner_started.id
    assert outer_end.follows == outer_started.id


def test_saved_nested_block_is_related_on_every_outer_event() -> None:
    """Every event of the outer block lists a saved nested block, with its field."""
    creds = Creds()
    document_id = uuid.uuid4()
    creds._set_document(document_id, "prod-creds")
    connector = Connector(credentials=creds)
    with capture_events() as events:
        connector.connect()
        connector.outer()
    outer_events = [e for e in events if e.event.startswith("block.connector.")]
    assert len(outer_events) == 4
    for event in outer_events:
        [nested] = event.related_by_role("nested-block")
        assert nested.id == f"block-document.{document_id}"
        assert nested.labels["field"] == "credentials"
        assert nested.name == "prod-creds"
    for event in events:
        if event.event.startswith("block.creds."):
            assert event.resource.id == f"block-document.{document_id}"
            assert event.related_by_role("nested-block") == []


async def test_saved_nested_block_is_related_on_async_outer_events() -> None:
    """The nested-block relation is on async calls' events as well."""
    creds = Creds()
    document_id = uuid.uuid4()
    creds._set_document(document_id, "prod-creds")
    with capture_events() as events:
        await Connector(credentials=creds).aconnect()
    outer_events = [e for e in events if e.event.startswith("block.connector.")]
    assert len(outer_events) == 2
    for event in outer_events:
        assert [r.id for r in event.related_by_role("nested-block")] == [
            f"block-document.{document_id}"
        ]


def test_unsaved_nested_block_is_not_related() -> None:
    """A nested block without a document is not listed as nested-block."""
    with capture_events() as events:
        Connector(credentials=Creds()).connect()
    assert len(events) == 4
    for event in events:
        assert event.related_by_role("nested-block") == []


def test_nested_block_saved_after_first_use_is_related_from_then_on() -> None:
    """Giving the nested block a document later shows up on later outer events."""
    creds = Creds()
    connector = Connector(credentials=creds)
    with capture_events() as before:
        connector.outer()
    document_id = uuid.uuid4()
    creds._set_document(document_id, "late")
    with capture_events() as after:
        connector.outer()
    assert [e.related_by_role("nested-block") for e in before] == [[], []]
    for event in after:
        [nested] = event.related_by_role("nested-block")
        assert nested.id == f"block-document.{document_id}"
        assert nested.labels["field"] == "credentials"
