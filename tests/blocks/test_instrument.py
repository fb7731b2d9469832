"""Instrumentation of Block methods: which methods record calls, and what they emit."""

import asyncio
import inspect
import linecache
import types
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

import pytest

import blocks
from blocks import Block, BlockDefinitionError, event_payload, no_events
from emitters import Event, MemoryEmitter, configure, flush
from emitters.testing import capture_events


class StorageError(Exception):
    """A non-builtin exception, reported by its module-qualified name."""


class Errors:
    """A namespace, so that the nested exception's qualified name has a dot."""

    class QuotaError(Exception):
        """A nested exception class."""


HOOK_CALLS: list[tuple[inspect.BoundArguments, Any]] = []


def record_hook(bound: inspect.BoundArguments, outcome: Any) -> dict[str, Any]:
    """Remember what the hook was given and describe the call."""
    HOOK_CALLS.append((bound, outcome))
    return {"key": bound.arguments["key"], "outcome": repr(outcome)}


def raising_hook(bound: inspect.BoundArguments, outcome: Any) -> dict[str, Any]:
    """A broken payload hook."""
    raise RuntimeError("hook broke")


def list_hook(bound: inspect.BoundArguments, outcome: Any) -> Any:
    """A payload hook that returns something other than a mapping."""
    return ["not", "a", "mapping"]


class Gauge(Block):
    """A block with a method of every kind."""

    label: str = "g"

    def read(self, key: str, scale: int = 1) -> int:
        """Read a value."""
        return len(key) * scale

    async def aread(self, key: str, gate: asyncio.Event | None = None) -> int:
        """Read a value asynchronously, once ``gate`` is set."""
        if gate is not None:
            await gate.wait()
        await asyncio.sleep(0)
        return len(key)

    def scan(self, n: int) -> Iterator[int]:
        """Yield ``n`` values."""
        yield from range(n)

    async def ascan(self, n: int) -> AsyncIterator[int]:
        """Yield ``n`` values asynchronously."""
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    def accumulate(self) -> Generator[int, int | None, int]:
        """Add up sent values; a thrown LookupError adds 100; None ends the sum."""
        total = 0
        while True:
            try:
                value = yield total
            except LookupError:
                value = 100
            if value is None:
                return total
            total += value

    async def aaccumulate(self) -> AsyncGenerator[int, int | None]:
        """Add up sent values; a thrown LookupError adds 100; None ends the sum."""
        total = 0
        while True:
            try:
                value = yield total
            except LookupError:
                value = 100
            if value is None:
                return
            total += value

    def fail(self, error: BaseException) -> None:
        """Raise ``error``."""
        raise error

    async def afail(self, error: BaseException) -> None:
        """Raise ``error`` asynchronously."""
        await asyncio.sleep(0)
        raise error

    def scan_then_fail(self, error: BaseException) -> Iterator[int]:
        """Yield once, then raise ``error``."""
        yield 1
        raise error

    async def ascan_then_fail(self, error: BaseException) -> AsyncIterator[int]:
        """Yield once, then raise ``error``."""
        yield 1
        raise error

    @event_payload(record_hook)
    def hooked(self, key: str, limit: int = 10) -> int:
        """Return ``limit``, described by a payload hook."""
        return limit

    @event_payload(record_hook)
    def hooked_fail(self, key: str, error: BaseException) -> None:
        """Raise ``error``, described by a payload hook."""
        raise error

    @event_payload(raising_hook)
    def broken_hook(self, key: str) -> str:
        """Return ``key``; the payload hook raises."""
        return key

    @event_payload(list_hook)
    def list_hooked(self, key: str) -> str:
        """Return ``key``; the payload hook returns a list."""
        return key


class Gcs2Bucket(Block):
    """Slug from a name with a digit (not S3Bucket: blocks.aws owns that slug)."""

    def touch(self) -> None:
        """Do nothing."""


class HTTPService(Block):
    """Slug from a name starting with an acronym."""

    def touch(self) -> None:
        """Do nothing."""


class Renamed(Block):
    """A block whose slug is set explicitly."""

    block_type_slug = "custom-thing"

    def touch(self) -> None:
        """Do nothing."""


class Excluded(Block):
    """A block with one member of every kind that is not instrumented."""

    def _private(self) -> str:
        return "private"

    @property
    def prop(self) -> str:
        """A property."""
        return "prop"

    @classmethod
    def cm(cls) -> str:
        """A classmethod."""
        return "cm"

    @staticmethod
    def sm() -> str:
        """A staticmethod."""
        return "sm"

    def model_custom(self) -> str:
        """A method in pydantic's namespace."""
        return "model"

    @no_events
    def ping(self) -> str:
        """A cheap helper marked no_events."""
        return "pong"

    def public(self) -> str:
        """An ordinary public method, for contrast."""
        return "public"


class Loud(Block):
    """An instrumented parent."""

    def shout(self) -> str:
        """Return a word."""
        return "hey"


class QuietChild(Loud):
    """A child that turns events off for everything, inherited methods included."""

    events_enabled = False

    def whisper(self) -> str:
        """Return a word."""
        return "psst"


class QuietParent(Block):
    """A parent with events off."""

    events_enabled = False

    def murmur(self) -> str:
        """Return a word."""
        return "mm"


class LoudChild(QuietParent):
    """A child that turns events back on, for its inherited methods too."""

    events_enabled = True


class FetchMixin:
    """A plain mixin whose public methods a Block subclass uses."""

    def fetch(self, n: int) -> int:
        """Return ``n`` doubled."""
        return n * 2


class Fetcher(FetchMixin, Block):
    """A block that gets ``fetch`` from a mixin."""


def assert_pair(events: list[Event], name: str, outcome: str = "succeeded") -> Event:
    """Check ``events`` are one call's started and outcome; return the outcome."""
    assert [e.event for e in events] == [f"{name}.started", f"{name}.{outcome}"]
    started, end = events
    assert started.follows is None
    assert started.payload == {}
    assert end.follows == started.id
    duration = end.payload["duration_ms"]
    assert isinstance(duration, float)
    assert duration >= 0.0
    return end


def assert_raised_at(exc: BaseException, method: Any, line: str) -> None:
    """Check the traceback's last frame is ``method``'s own ``line``."""
    tb = exc.__traceback__
    assert tb is not None
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    assert code is inspect.unwrap(method).__code__
    assert linecache.getline(code.co_filename, tb.tb_lineno).strip() == line


# -- every method kind ----------------------------------------------------------


def test_sync_call_emits_started_then_succeeded() -> None:
    """A sync method emits started then succeeded and returns its result."""
    with capture_events() as events:
        result = Gauge().read("abc", scale=2)
    assert result == 6
    assert_pair(events, "block.gauge.read")


async def test_coroutine_call_emits_started_then_succeeded() -> None:
    """An async method emits started then succeeded once awaited."""
    with capture_events() as events:
        result = await Gauge().aread("abcd")
    assert result == 4
    assert_pair(events, "block.gauge.aread")


async def test_coroutine_outcome_waits_until_the_coroutine_finishes() -> None:
    """An async method's outcome is emitted when the coroutine finishes."""
    memory = MemoryEmitter()
    configure(emitters=[memory])
    gate = asyncio.Event()
    task = asyncio.ensure_future(Gauge().aread("ab", gate))
    for _ in range(5):
        await asyncio.sleep(0)
    assert flush()
    assert [e.event for e in memory.events] == ["block.gauge.aread.started"]
    gate.set()
    assert await task == 2
    assert flush()
    assert_pair(memory.events, "block.gauge.aread")


def test_generator_outcome_when_iteration_ends() -> None:
    """A generator's outcome is emitted when iteration ends, counting the yields."""
    memory = MemoryEmitter()
    configure(emitters=[memory])
    gen = Gauge().scan(3)
    assert next(gen) == 0
    assert flush()
    assert [e.event for e in memory.events] == ["block.gauge.scan.started"]
    assert list(gen) == [1, 2]
    assert flush()
    end = assert_pair(memory.events, "block.gauge.scan")
    assert end.payload["yielded"] == 3
    assert "closed_early" not in end.payload


def test_generator_closed_early_succeeds_with_closed_early() -> None:
    """Closing a generator early gives succeeded with closed_early True."""
    with capture_events() as events:
        gen = Gauge().scan(10)
        assert next(gen) == 0
        assert next(gen) == 1
        gen.close()
    end = assert_pair(events, "block.gauge.scan")
    assert end.payload["yielded"] == 2
    assert end.payload["closed_early"] is True


def test_generator_exception_gives_failed() -> None:
    """An exception raised inside a generator gives failed and reaches the caller."""
    error = ValueError("bad row")
    with capture_events() as events:
        gen = Gauge().scan_then_fail(error)
        assert next(gen) == 1
        with pytest.raises(ValueError, match="bad row") as info:
            next(gen)
    assert info.value is error
    assert_raised_at(error, Gauge.scan_then_fail, "raise error")
    end = assert_pair(events, "block.gauge.scan_then_fail", "failed")
    assert end.payload["error"] == {"type": "ValueError", "message": "bad row"}
    assert end.payload["yielded"] == 1


def test_generator_send_and_throw_reach_the_inner_generator() -> None:
    """send() and throw() on an instrumented generator reach the method's body."""
    with capture_events() as events:
        gen = Gauge().accumulate()
        assert next(gen) == 0
        assert gen.send(5) == 5
        assert gen.throw(KeyError("k")) == 105
        with pytest.raises(StopIteration) as info:
            gen.send(None)
    assert info.value.value == 105
    end = assert_pair(events, "block.gauge.accumulate")
    assert end.payload["yielded"] == 3


def test_generator_unhandled_throw_gives_failed_with_same_exception() -> None:
    """An exception thrown into a generator that does not catch it gives failed."""
    error = StorageError("thrown in")
    with capture_events() as events:
        gen = Gauge().scan(5)
        next(gen)
        with pytest.raises(StorageError) as info:
            gen.throw(error)
    assert info.value is error
    end = assert_pair(events, "block.gauge.scan", "failed")
    assert end.payload["error"] == {
        "type": f"{__name__}.StorageError",
        "message": "thrown in",
    }


async def test_async_generator_outcome_when_iteration_ends() -> None:
    """An async generator's outcome is emitted when iteration ends."""
    memory = MemoryEmitter()
    configure(emitters=[memory])
    agen = Gauge().ascan(3)
    assert await anext(agen) == 0
    assert flush()
    assert [e.event for e in memory.events] == ["block.gauge.ascan.started"]
    assert [i async for i in agen] == [1, 2]
    assert flush()
    end = assert_pair(memory.events, "block.gauge.ascan")
    assert end.payload["yielded"] == 3
    assert "closed_early" not in end.payload


async def test_async_generator_aclose_early_succeeds_with_closed_early() -> None:
    """aclose() before the end gives succeeded with closed_early True."""
    with capture_events() as events:
        agen = Gauge().ascan(10)
        assert await anext(agen) == 0
        await agen.aclose()
    end = assert_pair(events, "block.gauge.ascan")
    assert end.payload["yielded"] == 1
    assert end.payload["closed_early"] is True


async def test_async_generator_exception_gives_failed() -> None:
    """An exception inside an async generator gives failed and reaches the caller."""
    error = Errors.QuotaError("over quota")
    with capture_events() as events:
        agen = Gauge().ascan_then_fail(error)
        assert await anext(agen) == 1
        with pytest.raises(Errors.QuotaError) as info:
            await anext(agen)
    assert info.value is error
    assert_raised_at(error, Gauge.ascan_then_fail, "raise error")
    end = assert_pair(events, "block.gauge.ascan_then_fail", "failed")
    assert end.payload["error"] == {
        "type": f"{__name__}.Errors.QuotaError",
        "message": "over quota",
    }
    assert end.payload["yielded"] == 1


async def test_async_generator_asend_and_athrow_reach_the_inner_generator() -> None:
    """asend() and athrow() on an instrumented async generator reach its body."""
    with capture_events() as events:
        agen = Gauge().aaccumulate()
        assert await agen.asend(None) == 0
        assert await agen.asend(5) == 5
        assert await agen.athrow(KeyError("k")) == 105
        with pytest.raises(StopAsyncIteration):
            await agen.asend(None)
    end = assert_pair(events, "block.gauge.aaccumulate")
    assert end.payload["yielded"] == 3


# -- failures -------------------------------------------------------------------


def test_builtin_exception_gives_failed_with_plain_type_name() -> None:
    """A builtin exception is reported with its bare class name and message."""
    error = ValueError("no such key")
    with capture_events() as events, pytest.raises(ValueError, match="no such key"):
        Gauge().fail(error)
    end = assert_pair(events, "block.gauge.fail", "failed")
    assert end.payload["error"] == {"type": "ValueError", "message": "no such key"}


def test_custom_exception_type_is_module_and_qualified_name() -> None:
    """A non-builtin exception is reported as module.QualName."""
    with capture_events() as events, pytest.raises(StorageError):
        Gauge().fail(StorageError("disk full"))
    with capture_events() as nested, pytest.raises(Errors.QuotaError):
        Gauge().fail(Errors.QuotaError("quota"))
    end = assert_pair(events, "block.gauge.fail", "failed")
    assert end.payload["error"] == {
        "type": f"{StorageError.__module__}.StorageError",
        "message": "disk full",
    }
    assert __name__.endswith("test_instrument")
    end = assert_pair(nested, "block.gauge.fail", "failed")
    assert end.payload["error"]["type"] == f"{__name__}.Errors.QuotaError"


def test_sync_exception_is_the_same_object_raised_in_the_method() -> None:
    """The caller gets the very exception, its traceback ending at the raise line."""
    error = StorageError("gone")
    with pytest.raises(StorageError) as info:
        Gauge().fail(error)
    assert info.value is error
    assert_raised_at(info.value, Gauge.fail, "raise error")


async def test_coroutine_exception_is_the_same_object_raised_in_the_method() -> None:
    """An awaited method's exception is the same object, raised at its own line."""
    error = StorageError("gone")
    with capture_events() as events, pytest.raises(StorageError) as info:
        await Gauge().afail(error)
    assert info.value is error
    assert_raised_at(info.value, Gauge.afail, "raise error")
    end = assert_pair(events, "block.gauge.afail", "failed")
    assert end.payload["error"]["message"] == "gone"


# -- what is instrumented ---------------------------------------------------------

INSTRUMENTED = ["read", "aread", "scan", "ascan", "hooked"]


@pytest.mark.parametrize("name", INSTRUMENTED)
def test_is_instrumented_true_for_installed_wrapper(name: str) -> None:
    """The attribute installed on the class for a public method is a recorder."""
    assert blocks.is_instrumented(inspect.getattr_static(Gauge, name))


@pytest.mark.parametrize("name", INSTRUMENTED)
def test_is_instrumented_true_for_method_looked_up_on_class(name: str) -> None:
    """is_instrumented is True for a public method looked up on the class."""
    assert blocks.is_instrumented(getattr(Gauge, name))


@pytest.mark.parametrize("name", INSTRUMENTED)
def test_is_instrumented_true_for_method_looked_up_on_instance(name: str) -> None:
    """is_instrumented is True for a public method looked up on an instance."""
    assert blocks.is_instrumented(getattr(Gauge(), name))


def assert_not_instrumented(cls: type, name: str) -> None:
    """Check no recorder is installed for ``name``, however it is looked up."""
    raw = inspect.getattr_static(cls, name)
    assert not blocks.is_instrumented(raw)
    assert not blocks.is_instrumented(getattr(cls, name))


EXCLUDED_CALLS = [
    ("_private", lambda b: b._private(), "private"),
    ("prop", lambda b: b.prop, "prop"),
    ("cm", lambda b: b.cm(), "cm"),
    ("sm", lambda b: b.sm(), "sm"),
    ("model_custom", lambda b: b.model_custom(), "model"),
    ("ping", lambda b: b.ping(), "pong"),
]


@pytest.mark.parametrize(
    ("name", "call", "expected"),
    EXCLUDED_CALLS,
    ids=[name for name, _, _ in EXCLUDED_CALLS],
)
def test_excluded_members_emit_nothing_and_are_not_wrapped(
    name: str, call: Any, expected: str
) -> None:
    """Excluded kinds of members are left unwrapped and emit no events."""
    block = Excluded()
    with capture_events() as events:
        assert call(block) == expected
    assert events == []
    assert_not_instrumented(Excluded, name)
    if name != "prop":
        assert not blocks.is_instrumented(getattr(block, name))


def test_excluded_contrast_public_method_is_recorded() -> None:
    """The ordinary public method beside the excluded ones does emit events."""
    with capture_events() as events:
        assert Excluded().public() == "public"
    assert_pair(events, "block.excluded.public")
    assert blocks.is_instrumented(inspect.getattr_static(Excluded, "public"))


PYDANTIC_CALLS = [
    ("model_dump", lambda b: b.model_dump()),
    ("model_dump_json", lambda b: b.model_dump_json()),
    ("model_copy", lambda b: b.model_copy()),
    ("model_validate", lambda b: type(b).model_validate({"label": "x"})),
    ("model_json_schema", lambda b: type(b).model_json_schema()),
    ("model_post_init", lambda b: b.model_post_init(None)),
]


@pytest.mark.parametrize(
    ("name", "call"), PYDANTIC_CALLS, ids=[n for n, _ in PYDANTIC_CALLS]
)
def test_pydantic_methods_emit_nothing_and_are_not_wrapped(
    name: str, call: Any
) -> None:
    """pydantic's own model_* methods are never instrumented."""
    block = Gauge()
    with capture_events() as events:
        call(block)
    assert events == []
    assert_not_instrumented(Gauge, name)
    assert not blocks.is_instrumented(getattr(block, name))


def test_events_disabled_class_emits_nothing() -> None:
    """events_enabled = False leaves every method of the class unwrapped."""
    with capture_events() as events:
        assert QuietParent().murmur() == "mm"
    assert events == []
    assert_not_instrumented(QuietParent, "murmur")
    assert isinstance(inspect.getattr_static(QuietParent, "murmur"), types.FunctionType)


def test_events_disabled_child_has_no_wrapper_for_inherited_methods() -> None:
    """A child with events off gets plain functions, even for inherited methods."""
    with capture_events() as events:
        assert QuietChild().shout() == "hey"
        assert QuietChild().whisper() == "psst"
    assert events == []
    for name in ("shout", "whisper"):
        assert_not_instrumented(QuietChild, name)
        raw = inspect.getattr_static(QuietChild, name)
        assert isinstance(raw, types.FunctionType)
    assert inspect.getattr_static(QuietChild, "shout") is Loud.shout.__wrapped__


def test_events_disabled_child_leaves_its_parent_instrumented() -> None:
    """Turning events off on a child does not unwrap the parent's methods."""
    with capture_events() as events:
        assert Loud().shout() == "hey"
    assert_pair(events, "block.loud.shout")
    assert blocks.is_instrumented(inspect.getattr_static(Loud, "shout"))


def test_events_enabled_child_of_disabled_parent_instruments_inherited() -> None:
    """A child with events on instruments what it inherits from a quiet parent."""
    with capture_events() as events:
        assert LoudChild().murmur() == "mm"
        assert QuietParent().murmur() == "mm"
    assert_pair(events, "block.loud-child.murmur")
    assert blocks.is_instrumented(inspect.getattr_static(LoudChild, "murmur"))
    assert not blocks.is_instrumented(inspect.getattr_static(QuietParent, "murmur"))


def test_mixin_methods_are_instrumented_for_the_block() -> None:
    """A public method a Block subclass gets from a mixin records its calls."""
    with capture_events() as events:
        assert Fetcher().fetch(4) == 8
    assert_pair(events, "block.fetcher.fetch")
    assert blocks.is_instrumented(inspect.getattr_static(Fetcher, "fetch"))
    assert isinstance(FetchMixin.__dict__["fetch"], types.FunctionType)


# -- what wrapping preserves ----------------------------------------------------


@pytest.mark.parametrize("name", INSTRUMENTED)
def test_wrapper_preserves_signature_name_doc_and_wrapped(name: str) -> None:
    """inspect.signature, __name__, __doc__ and __wrapped__ survive wrapping."""
    block = Gauge()
    method = getattr(Gauge, name)
    original = inspect.getattr_static(Gauge, name).__wrapped__
    assert isinstance(original, types.FunctionType)
    assert original.__name__ == name
    assert method.__wrapped__ is original
    assert method.__name__ == name
    assert getattr(block, name).__name__ == name
    assert method.__doc__ == original.__doc__
    assert getattr(block, name).__doc__ == original.__doc__
    assert method.__doc__
    assert inspect.signature(method) == inspect.signature(original)
    bound = types.MethodType(original, block)
    assert inspect.signature(getattr(block, name)) == inspect.signature(bound)


def test_signature_text_on_class_and_instance() -> None:
    """The class shows self and the instance hides it, with defaults and types."""
    assert (
        str(inspect.signature(Gauge.read)) == "(self, key: str, scale: int = 1) -> int"
    )
    assert str(inspect.signature(Gauge().read)) == "(key: str, scale: int = 1) -> int"


@pytest.mark.parametrize("where", ["class", "instance"])
def test_wrapper_preserves_inspect_kind_predicates(where: str) -> None:
    """iscoroutinefunction, isgeneratorfunction and isasyncgenfunction survive."""
    owner: Any = Gauge if where == "class" else Gauge()
    assert inspect.iscoroutinefunction(owner.aread)
    assert not inspect.iscoroutinefunction(owner.read)
    assert inspect.isgeneratorfunction(owner.scan)
    assert not inspect.isgeneratorfunction(owner.read)
    assert inspect.isasyncgenfunction(owner.ascan)
    assert not inspect.isasyncgenfunction(owner.aread)


# -- slugs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "slug"), [(Gcs2Bucket, "gcs2-bucket"), (HTTPService, "http-service")]
)
def test_slug_is_kebab_case_of_class_name(cls: type[Any], slug: str) -> None:
    """The type slug defaults to the kebab-case class name and names the events."""
    assert cls.block_type_slug == slug
    with capture_events() as events:
        cls().touch()
    assert_pair(events, f"block.{slug}.touch")


def test_slug_can_be_set_explicitly() -> None:
    """block_type_slug set on the class is used in event names and resources."""
    assert Renamed.block_type_slug == "custom-thing"
    with capture_events() as events:
        Renamed().touch()
    assert_pair(events, "block.custom-thing.touch")
    assert events[0].resource.id == "block.custom-thing"


@pytest.mark.parametrize("slug", ["Bad Slug", "under_score", "-lead", "trail-", ""])
def test_invalid_slug_raises_block_definition_error(slug: str) -> None:
    """An invalid block_type_slug raises BlockDefinitionError naming the class."""
    with pytest.raises(BlockDefinitionError, match="BadlyNamed") as info:

        class BadlyNamed(Block):
            block_type_slug = slug

    assert isinstance(info.value, TypeError)
    assert repr(slug) in str(info.value)


# -- payload hooks --------------------------------------------------------------


def test_payload_hook_gets_bound_arguments_with_defaults_and_result() -> None:
    """The hook gets BoundArguments with defaults applied and the result."""
    HOOK_CALLS.clear()
    block = Gauge()
    with capture_events() as events:
        assert block.hooked("k1") == 10
    end = assert_pair(events, "block.gauge.hooked")
    assert end.payload["key"] == "k1"
    assert end.payload["outcome"] == "10"
    [(bound, outcome)] = HOOK_CALLS
    assert isinstance(bound, inspect.BoundArguments)
    assert dict(bound.arguments) == {"self": block, "key": "k1", "limit": 10}
    assert outcome == 10


def test_payload_hook_gets_the_exception_on_failure() -> None:
    """On failure the hook gets the very exception, and its dict joins the payload."""
    HOOK_CALLS.clear()
    error = StorageError("nope")
    with capture_events() as events, pytest.raises(StorageError):
        Gauge().hooked_fail("k2", error)
    [(bound, outcome)] = HOOK_CALLS
    assert outcome is error
    assert bound.arguments["key"] == "k2"
    end = assert_pair(events, "block.gauge.hooked_fail", "failed")
    assert end.payload["key"] == "k2"
    assert end.payload["error"]["message"] == "nope"


def test_payload_hook_that_raises_gives_payload_error() -> None:
    """A hook that raises never reaches the caller and yields payload_error."""
    with capture_events() as events:
        assert Gauge().broken_hook("x") == "x"
    end = assert_pair(events, "block.gauge.broken_hook")
    assert "RuntimeError" in end.payload["payload_error"]
    assert "hook broke" in end.payload["payload_error"]


def test_payload_hook_returning_non_mapping_gives_payload_error() -> None:
    """A hook returning a non-mapping never reaches the caller: payload_error."""
    with capture_events() as events:
        assert Gauge().list_hooked("x") == "x"
    end = assert_pair(events, "block.gauge.list_hooked")
    assert "list" in end.payload["payload_error"]
    assert "not" not in end.payload.keys() - {"payload_error", "duration_ms"}


def test_event_payload_rejects_a_non_callable() -> None:
    """event_payload(123) raises TypeError."""
    with pytest.raises(TypeError, match="callable"):
        event_payload(123)  # type: ignore[arg-type]


# -- resources ------------------------------------------------------------------


def test_unsaved_block_resource_and_block_type_related() -> None:
    """An unsaved block's events are about block.<slug> with no name."""
    with capture_events() as events:
        Gcs2Bucket().touch()
    assert len(events) == 2
    for event in events:
        assert event.resource.id == "block.gcs2-bucket"
        assert event.resource.name is None
        [block_type] = event.related_by_role("block-type")
        assert block_type.id == "block-type.gcs2-bucket"


def test_set_document_changes_the_resource_of_later_calls() -> None:
    """After _set_document events are about block-document.<uuid>, named."""
    block = Gauge()
    document_id = uuid.uuid4()
    block._set_document(document_id, "prod")
    with capture_events() as events:
        block.read("x")
    assert len(events) == 2
    for event in events:
        assert event.resource.id == f"block-document.{document_id}"
        assert event.resource.name == "prod"
        [block_type] = event.related_by_role("block-type")
        assert block_type.id == "block-type.gauge"


def test_calls_before_set_document_keep_the_unsaved_resource() -> None:
    """Events of calls made before _set_document stay about the unsaved block."""
    block = Gauge()
    document_id = uuid.uuid4()
    with capture_events() as events:
        block.read("before")
        block._set_document(document_id, "prod")
        block.read("after")
    assert [e.resource.id for e in events] == [
        "block.gauge",
        "block.gauge",
        f"block-document.{document_id}",
        f"block-document.{document_id}",
    ]
    assert [e.resource.name for e in events] == [None, None, "prod", "prod"]
