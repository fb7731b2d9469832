"""Bad input, documents: field values against block schemas, document names, and
documents written by an earlier version of a class.

Property-based (hypothesis): valid values round-trip through save and load on
SQLite, PostgreSQL and MariaDB; an invalid value is refused with a
``BlockValidationError`` that names its field and never echoes the value; and a
document saved with one version of a class and loaded with another either loads
with its values intact or is refused naming the document and the changed fields.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from itertools import count
from typing import Any, ClassVar, Literal

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, SecretStr

from blocks import Block, BlockValidationError, DocumentStore, SecretDict
from blocks.system import JSON

NO_SHRINK = (Phase.explicit, Phase.generate)
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
TEXT = st.text(CHARS, max_size=20)
# A value that no parser turns into a number, a bool or a choice, and that a
# message echoing its input would show.
MARKED = st.text(CHARS, max_size=12).map(lambda s: f"\u22a5{s}\u22a5")
# Secrets are registered process-wide for redaction: keep them long and distinct.
SECRETS = st.binary(min_size=8, max_size=8).map(lambda b: f"sec-{b.hex()}")
_names = count()


class Window(BaseModel):
    """A delivery window."""

    start: datetime
    hours: int = Field(ge=0, le=48)


class InputShipment(Block):
    """A block with a field of every common kind."""

    carrier: str
    pieces: int = Field(ge=1, le=10_000)
    weight_kg: float = Field(gt=0, allow_inf_nan=False)
    express: bool = False
    tags: list[str] = Field(default_factory=list)
    dims: dict[str, int] = Field(default_factory=dict)
    mode: Literal["air", "sea", "road"] = "road"
    notes: str | None = None
    token: SecretStr
    options: SecretDict = SecretDict({})
    window: Window | None = None


MOMENTS = st.datetimes(
    min_value=datetime(1971, 1, 2),
    max_value=datetime(9000, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)
VALID = st.fixed_dictionaries(
    {
        "carrier": TEXT,
        "pieces": st.integers(min_value=1, max_value=10_000),
        "weight_kg": st.floats(min_value=1e-9, max_value=1e12),
        "token": SECRETS,
    },
    optional={
        "express": st.booleans(),
        "tags": st.lists(TEXT, max_size=4),
        "dims": st.dictionaries(TEXT, st.integers(-(2**40), 2**40), max_size=4),
        "mode": st.sampled_from(["air", "sea", "road"]),
        "notes": st.none() | TEXT,
        "options": st.dictionaries(TEXT, SECRETS, max_size=3),
        "window": st.fixed_dictionaries(
            {"start": MOMENTS, "hours": st.integers(min_value=0, max_value=48)}
        ),
    },
)
INVALID: dict[str, st.SearchStrategy[Any]] = {
    "carrier": st.none() | st.integers() | st.lists(TEXT, min_size=1, max_size=2),
    "pieces": st.integers(max_value=0)
    | st.integers(min_value=10_001)
    | st.floats(min_value=1.1, max_value=9.9).filter(lambda f: not f.is_integer())
    | MARKED,
    "weight_kg": st.floats(max_value=0)
    | st.sampled_from([float("nan"), float("inf")])
    | MARKED,
    "express": st.integers(min_value=2) | st.lists(st.booleans(), min_size=1) | MARKED,
    "tags": MARKED | st.lists(st.integers(), min_size=1, max_size=2),
    "dims": st.dictionaries(TEXT, MARKED, min_size=1, max_size=2)
    | st.lists(st.integers(), min_size=1, max_size=2),
    "mode": MARKED,
    "token": st.none() | st.integers() | st.lists(SECRETS, min_size=1, max_size=2),
    "window": st.fixed_dictionaries({"start": MARKED, "hours": st.just(1)})
    | st.fixed_dictionaries(
        {"start": MOMENTS, "hours": st.integers(min_value=49, max_value=10**6)}
    ),
}


def _secrets_of(block: InputShipment) -> tuple[str, dict[str, Any]]:
    return block.token.get_secret_value(), block.options.get_secret_value()


@given(VALID)
@settings(max_examples=25, phases=NO_SHRINK)
def test_valid_values_round_trip_through_save_and_load(
    store_url: str, data: dict[str, Any]
) -> None:
    """Any valid field values save and load back equal, on every database."""
    store = DocumentStore(store_url)
    name = f"shipment-{next(_names)}"
    block = InputShipment(**data)
    document_id = block.save(name, store=store)
    loaded = InputShipment.load(name, store=store)
    assert loaded.document_id == document_id
    assert loaded.model_dump(mode="json") == block.model_dump(mode="json")
    assert _secrets_of(loaded) == _secrets_of(block)
    assert data["token"] not in repr(loaded)


@given(VALID, st.data())
@settings(max_examples=150)
def test_an_invalid_value_is_refused_naming_its_field(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    """An invalid value raises BlockValidationError naming the field, not the value."""
    field = draw.draw(st.sampled_from(sorted(INVALID)), label="field")
    bad = draw.draw(INVALID[field], label="value")
    with pytest.raises(BlockValidationError) as refused:
        InputShipment(**{**data, field: bad})
    assert {loc.split(".")[0] for loc, _ in refused.value.errors} == {field}
    message = str(refused.value)
    assert data["token"] not in message
    for text in _strings_in(bad):
        assert text not in message or "\u22a5" not in text


@given(VALID, st.data())
@settings(max_examples=60)
def test_an_invalid_assignment_is_refused_and_changes_nothing(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    """Assigning an invalid value raises naming the field and keeps the old value."""
    block = InputShipment(**data)
    before = block.model_dump(mode="json")
    field = draw.draw(st.sampled_from(sorted(INVALID)), label="field")
    with pytest.raises(BlockValidationError) as refused:
        setattr(block, field, draw.draw(INVALID[field], label="value"))
    assert {loc.split(".")[0] for loc, _ in refused.value.errors} == {field}
    assert block.model_dump(mode="json") == before


def _strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [*_strings_in(k), *_strings_in(v)]]
    if isinstance(value, list):
        return [s for item in value for s in _strings_in(item)]
    return []


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(CHARS, max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(CHARS, max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(JSON_VALUES)
@settings(max_examples=25, phases=NO_SHRINK)
def test_any_json_value_round_trips_on_every_backend(
    store_url: str, value: Any
) -> None:
    """A JSON block holds any JSON value across save and load, on every database."""
    store = DocumentStore(store_url)
    name = f"json-{next(_names)}"
    JSON(value=value).save(name, store=store)
    assert JSON.load(name, store=store).value == value


NAMES = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/"),
    min_size=1,
    max_size=255,
).filter(lambda s: s == s.strip())


@given(NAMES)
@settings(max_examples=25, phases=NO_SHRINK)
def test_any_valid_document_name_round_trips_on_every_backend(
    store_url: str, name: str
) -> None:
    """Any name without '/', control characters or outer spaces saves and loads."""
    store = DocumentStore(store_url)
    # A unique prefix: names that one database's collation merges are a case of
    # their own below.
    name = f"{next(_names)}-{name}"[:255]
    JSON(value=name).save(name, store=store)
    assert JSON.load(name, store=store).value == name
    assert name in {d.name for d in JSON.list_documents(store=store)}


@pytest.mark.parametrize(
    ("first", "second"),
    [("prod", "Prod"), ("cafe", "caf\u00e9"), ("\U0001f680", "\U0001f389")],
    ids=["case", "accent", "emoji"],
)
def test_names_that_differ_are_distinct_documents_on_every_backend(
    store_url: str, first: str, second: str
) -> None:
    """Names differing in case, accent or emoji are distinct documents everywhere."""
    store = DocumentStore(store_url)
    JSON(value=1).save(first, store=store)
    JSON(value=2).save(second, store=store)
    assert JSON.load(first, store=store).value == 1
    assert JSON.load(second, store=store).value == 2


@given(
    st.one_of(
        st.just(""),
        st.text(CHARS, min_size=256, max_size=300),
        st.tuples(TEXT, TEXT).map("/".join),
        TEXT.map(lambda s: f" {s}"),
        TEXT.map(lambda s: f"{s}\t"),
    )
)
@settings(max_examples=40)
def test_a_malformed_document_name_is_refused(name: str) -> None:
    """An empty, too long, slashed or padded name is a ValueError; nothing is saved."""
    with pytest.raises(ValueError, match="name"):
        JSON(value=1).save(name)
    assert JSON.list_documents() == []


def test_a_name_with_nul_is_refused_or_kept_alike_on_every_backend(
    store_url: str,
) -> None:
    """A name with NUL is refused as a bad name, or kept, alike on every database."""
    store = DocumentStore(store_url)
    try:
        JSON(value=1).save("inbox\x00", store=store)
    except ValueError:
        return
    assert JSON.load("inbox\x00", store=store).value == 1


def test_a_large_document_round_trips_on_every_backend(store_url: str) -> None:
    """A 100 kB JSON document (a big mapping, a service account) saves and loads."""
    store = DocumentStore(store_url)
    value = {f"key-{i}": "x" * 90 for i in range(1000)}
    JSON(value=value).save("big", store=store)
    assert JSON.load("big", store=store).value == value


# -- documents written by an earlier version of a class ---------------------------


@dataclass(frozen=True)
class Kind:
    """One field type a class version may give a field, with values for it."""

    annotation: Any
    values: st.SearchStrategy[Any]
    default: Any
    secret: bool = False


KINDS = {
    "str": Kind(str, TEXT.map(lambda s: f"v-{s}"), "d"),
    "int": Kind(int, st.integers(-(10**12), 10**12), 7),
    "float": Kind(float, st.floats(allow_nan=False, allow_infinity=False), 0.5),
    "bool": Kind(bool, st.booleans(), False),
    "list": Kind(list[str], st.lists(TEXT, max_size=3), []),
    "dict": Kind(dict[str, int], st.dictionaries(TEXT, st.integers(), max_size=3), {}),
    "choice": Kind(Literal["red", "green"], st.sampled_from(["red", "green"]), "red"),
    "optional": Kind(str | None, st.none() | TEXT.map(lambda s: f"v-{s}"), None),
    "secret": Kind(SecretStr, SECRETS, SecretStr("sec-default-0000"), secret=True),
    "secretdict": Kind(
        SecretDict,
        st.dictionaries(st.sampled_from("abc"), SECRETS, max_size=2),
        SecretDict({}),
        secret=True,
    ),
}
FIELDS = ("f1", "f2", "f3", "f4")


def _evolving(spec: dict[str, tuple[str, bool]]) -> type[Block]:
    """Define (or define again) the evolving class from a field spec."""
    annotations: dict[str, Any] = {"block_type_slug": ClassVar[str]}
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__qualname__": "Evolving",
        "block_type_slug": "reliability-evolving",
    }
    for name, (kind, has_default) in spec.items():
        annotations[name] = KINDS[kind].annotation
        if has_default:
            namespace[name] = KINDS[kind].default
    namespace["__annotations__"] = annotations
    return type("Evolving", (Block,), namespace)


@st.composite
def _versions(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Draw an old field spec with values, and a new spec derived from it."""
    old_fields = draw(st.lists(st.sampled_from(FIELDS), min_size=1, unique=True))
    old = {f: (draw(st.sampled_from(sorted(KINDS))), False) for f in old_fields}
    values = {f: draw(KINDS[kind].values) for f, (kind, _) in old.items()}
    new: dict[str, tuple[str, bool]] = {}
    for field, (kind, _) in old.items():
        change = draw(st.sampled_from(["keep", "keep", "default", "drop", "retype"]))
        if change == "keep":
            new[field] = (kind, False)
        elif change == "default":
            new[field] = (kind, True)
        elif change == "retype":
            # A secret turned into a plain field is a case of its own (below).
            choices = [k for k in KINDS if KINDS[k].secret or not KINDS[kind].secret]
            new[field] = (draw(st.sampled_from(sorted(choices))), False)
    for field in FIELDS:
        if field not in old and draw(st.booleans()):
            new[field] = (draw(st.sampled_from(sorted(KINDS))), draw(st.booleans()))
    return old, values, new


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr | SecretDict):
        return value.get_secret_value()
    return value


@given(_versions())
@settings(max_examples=80, phases=NO_SHRINK)
def test_a_document_from_an_earlier_class_loads_intact_or_is_refused_by_field(
    versions: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
) -> None:
    """An old class's document loads intact or is refused naming changed fields."""
    old, values, new = versions
    name = f"doc-{next(_names)}"
    _evolving(old)(**values).save(name)
    current = _evolving(new)
    changed = {f for f in new if f not in old or new[f][0] != old[f][0]}
    removed = set(old) - set(new)
    missing = {f for f in new if f not in old and not new[f][1]}
    secrets = [
        s for v in values.values() for s in _strings_in(_plain(v)) if "sec-" in s
    ]
    refused: BlockValidationError | None = None
    try:
        loaded = current.load(name)
    except BlockValidationError as exc:
        refused = exc
    if refused is not None:
        assert refused.document == f"reliability-evolving/{name}"
        fields = {loc.split(".")[0] for loc, _ in refused.errors}
        assert fields <= changed | removed, refused.errors
        assert (removed | missing) <= fields
        assert not any(s in str(refused) for s in secrets)
        return
    assert not removed
    assert not missing
    for field, (kind, has_default) in new.items():
        got = _plain(getattr(loaded, field))
        if field not in old:
            assert has_default
            assert got == _plain(KINDS[kind].default)
        elif kind == old[field][0]:
            assert got == _plain(values[field])
    assert not any(s in repr(loaded) for s in secrets)


SAVE_OLD = """
from blocks import Block, SecretDict
from pydantic import SecretStr

class Evolving(Block):
    value: {old}

Evolving(value={value!r}).save("creds")
"""

LOAD_NEW = """
import json
from blocks import Block, BlockValidationError
from emitters.testing import capture_events

class Evolving(Block):
    value: {new}

    def connect(self) -> None:
        raise ConnectionError(f"login refused for {{self.value}}")

try:
    block = Evolving.load("creds")
except BlockValidationError as exc:
    print(json.dumps({{"refused": str(exc)}}))
else:
    with capture_events() as events:
        try:
            block.connect()
        except ConnectionError:
            pass
    print(json.dumps({{"events": [e.model_dump(mode="json") for e in events]}}))
"""


@pytest.mark.parametrize(
    ("old", "new", "value"),
    [
        ("SecretStr", "str", "sec-{token}"),
        ("SecretDict", "dict[str, str]", {"password": "sec-{token}"}),
        ("SecretDict", "dict", {"password": "sec-{token}"}),
    ],
)
def test_a_value_saved_as_secret_stays_out_of_events_after_the_class_changes(
    old: str, new: str, value: Any
) -> None:
    """A value saved as secret stays out of events once its field turns plain."""
    token = f"{next(_names):04d}" + "7c1e9a3b5d"
    value = (
        value.format(token=token)
        if isinstance(value, str)
        else {k: v.format(token=token) for k, v in value.items()}
    )
    secret = f"sec-{token}"

    def run(code: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    run(SAVE_OLD.format(old=old, value=value))
    # A new process: nothing registered the secret when it was saved.
    result = json.loads(run(LOAD_NEW.format(new=new)))
    assert secret not in json.dumps(result)
