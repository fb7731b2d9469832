"""Block documents: save, load, delete and list, on SQLite, PostgreSQL and MariaDB."""

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from pydantic import BaseModel, SecretBytes, SecretStr

import blocks._documents.store
from blocks import (
    Block,
    BlockDecryptionError,
    BlockExistsError,
    BlockNotFoundError,
    BlockStoreError,
    BlockValidationError,
    DocumentStore,
    SecretDict,
)
from blocks._documents.crypto import SecretCipher
from blocks._documents.operations import SECRET
from blocks._documents.tables import block_documents
from emitters import Event
from emitters.testing import capture_events

MASK = "**********"


class Address(BaseModel):
    """A plain pydantic model nested in a block, with a secret of its own."""

    street: str
    door_code: SecretStr


class DocEverything(Block):
    """A block with a field of every kind a document must keep."""

    block_type_slug: ClassVar[str] = "doc-everything"

    label: str
    count: int
    ratio: float
    enabled: bool
    tags: list[str]
    limits: dict[str, int]
    address: Address
    token: SecretStr
    blob: SecretBytes
    options: SecretDict
    note: str | None = None


class DocCredentials(Block):
    """Credentials that a connector holds as a nested block."""

    block_type_slug: ClassVar[str] = "doc-credentials"

    user: str
    password: SecretStr

    def whoami(self) -> str:
        """Return the user name."""
        return self.user


class DocConnector(Block):
    """A connector holding the credentials block in a field."""

    block_type_slug: ClassVar[str] = "doc-connector"

    credentials: DocCredentials
    database: str = "main"

    def connect(self) -> str:
        """Return a connection string without the password."""
        return f"{self.credentials.user}@{self.database}"


class DocOther(Block):
    """A second, unrelated type for listings across types."""

    block_type_slug: ClassVar[str] = "doc-other"

    value: int = 0


class DocConcurrent(Block):
    """A document that concurrent writers save."""

    # WORKER_SCRIPT defines its twin, with the same schema (docstring included).
    block_type_slug: ClassVar[str] = "doc-concurrent"

    worker: int
    index: int
    token: SecretStr


def tag() -> str:
    """Return a value unique to the calling test, to search for in outputs."""
    return uuid.uuid4().hex


def everything(secret: str) -> DocEverything:
    """Return a DocEverything whose secret values all contain ``secret``."""
    return DocEverything(
        label="nightly",
        count=3,
        ratio=0.25,
        enabled=True,
        tags=["a", "b"],
        limits={"rows": 10, "bytes": 2048},
        address=Address(street="Main St", door_code=f"door-{secret}"),
        token=f"tok-{secret}",
        blob=f"blob-{secret}".encode(),
        options={"api_key": f"key-{secret}", "pin": pin(secret), "ids": [pin(secret)]},
    )


def pin(secret: str) -> int:
    """Return a number unique to ``secret``, for a SecretDict's numeric value."""
    return int(secret[:12], 16) + 10**15


def secret_values(secret: str) -> list[str]:
    """Return the secret strings that ``everything(secret)`` holds."""
    return [f"door-{secret}", f"tok-{secret}", f"blob-{secret}", f"key-{secret}"]


def raw_data(url: str, name: str) -> str:
    """Read the stored ``data`` column of the document ``name``, bypassing blocks."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(
                conn.execute(
                    sa.text(
                        "SELECT data FROM eventblocks_block_documents WHERE name = :n"
                    ),
                    {"n": name},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def named(events: list[Event], name: str) -> list[Event]:
    """Return the events called ``name``."""
    return [e for e in events if e.event == name]


# -- round trip and addresses -------------------------------------------------------


def test_round_trip_keeps_every_field_kind(store_url: str) -> None:
    """Scalars, lists, dicts, nested models and all secret kinds load back equal."""
    store = DocumentStore(store_url)
    secret = tag()
    original = everything(secret)
    original.save("nightly", store=store)

    loaded = DocEverything.load("nightly", store=store)

    assert type(loaded) is DocEverything
    assert loaded.label == "nightly"
    assert loaded.count == 3
    assert loaded.ratio == 0.25
    assert loaded.enabled is True
    assert loaded.tags == ["a", "b"]
    assert loaded.limits == {"rows": 10, "bytes": 2048}
    assert loaded.note is None
    assert loaded.address.street == "Main St"
    assert loaded.address.door_code.get_secret_value() == f"door-{secret}"
    assert loaded.token.get_secret_value() == f"tok-{secret}"
    assert loaded.blob.get_secret_value() == f"blob-{secret}".encode()
    assert loaded.options.get_secret_value() == {
        "api_key": f"key-{secret}",
        "pin": pin(secret),
        "ids": [pin(secret)],
    }


def test_save_and_load_give_instances_their_document(store_url: str) -> None:
    """A saved and a loaded instance both carry the document's id and name."""
    store = DocumentStore(store_url)
    block = DocOther(value=1)
    assert (block.document_id, block.document_name) == (None, None)

    document_id = block.save("first", store=store)

    assert isinstance(document_id, uuid.UUID)
    assert (block.document_id, block.document_name) == (document_id, "first")
    loaded = DocOther.load("first", store=store)
    assert (loaded.document_id, loaded.document_name) == (document_id, "first")


def test_load_by_address_on_block_and_subclass(store_url: str) -> None:
    """Block.load("slug/name"), Subclass.load("name") and ("slug/name") all work."""
    store = DocumentStore(store_url)
    document_id = DocOther(value=7).save("prod", store=store)

    by_block = Block.load("doc-other/prod", store=store)
    by_name = DocOther.load("prod", store=store)
    by_address = DocOther.load("doc-other/prod", store=store)

    for loaded in (by_block, by_name, by_address):
        assert type(loaded) is DocOther
        assert loaded.value == 7
        assert loaded.document_id == document_id


def test_subclass_load_with_another_slug_raises_value_error(store_url: str) -> None:
    """Subclass.load("other-slug/name") is a ValueError naming both slugs."""
    store = DocumentStore(store_url)
    DocOther(value=1).save("prod", store=store)

    with pytest.raises(ValueError, match="doc-other") as info:
        DocConnector.load("doc-other/prod", store=store)

    assert "doc-connector" in str(info.value)


def test_block_load_needs_an_address(store_url: str) -> None:
    """Block.load with a bare name is a ValueError asking for 'block-type/name'."""
    store = DocumentStore(store_url)

    with pytest.raises(ValueError, match="block-type/name"):
        Block.load("prod", store=store)


# -- document names -----------------------------------------------------------------

UNSTORABLE = pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("in\x00box", "U+0000 at position 2"),
        ("in\tbox", "U+0009 at position 2"),
        ("in\nbox", "U+000A at position 2"),
        ("in\x7fbox", "U+007F at position 2"),
        ("in\x85box", "U+0085 at position 2"),
        ("in\ud800box", "U+D800 at position 2"),
    ],
    ids=["nul", "tab", "newline", "delete", "c1-next-line", "lone-surrogate"],
)


@UNSTORABLE
def test_a_name_with_a_control_character_is_refused_on_save(
    store_url: str, name: str, shown: str
) -> None:
    """Saving under a name with a control character or surrogate is a ValueError."""
    store = DocumentStore(store_url)

    with pytest.raises(ValueError, match="control characters or lone") as info:
        DocOther(value=1).save(name, store=store)

    message = str(info.value)
    assert message.startswith("A document name cannot contain control characters")
    assert repr(name) in message
    assert shown in message
    assert DocOther.list_documents(store=store) == []


@UNSTORABLE
def test_a_name_with_a_control_character_is_refused_or_not_found_on_load_and_delete(
    store_url: str, name: str, shown: str
) -> None:
    """Load and delete by such a name: NUL and surrogates refused, others not found."""
    store = DocumentStore(store_url)
    DocOther(value=1).save("inbox", store=store)
    calls = [
        lambda: DocOther.load(name, store=store),
        lambda: DocOther.load(f"doc-other/{name}", store=store),
        lambda: Block.load(f"doc-other/{name}", store=store),
        lambda: DocOther.delete(name, store=store),
        lambda: Block.delete(f"doc-other/{name}", store=store),
    ]
    unstorable = "\x00" in name or "\ud800" in name

    for call in calls:
        if unstorable:
            with pytest.raises(ValueError, match="cannot contain NUL or lone") as info:
                call()
            assert shown in str(info.value)
        else:  # earlier versions saved such names: a lookup must reach the store
            with pytest.raises(BlockNotFoundError):
                call()

    assert [d.name for d in DocOther.list_documents(store=store)] == ["inbox"]


def test_a_name_with_a_tab_saved_by_an_earlier_version_loads_and_deletes(
    store_url: str,
) -> None:
    """A stored name holding a tab (allowed before) still loads and deletes."""
    store = DocumentStore(store_url)
    DocOther(value=7).save("team prod", store=store)
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(block_documents)
            .where(block_documents.c.name == "team prod")
            .values(name="team\tprod")
        )

    assert DocOther.load("team\tprod", store=store).value == 7
    assert Block.load("doc-other/team\tprod", store=store).value == 7  # type: ignore[attr-defined]
    Block.delete("doc-other/team\tprod", store=store)
    assert DocOther.list_documents(store=store) == []


def test_a_block_type_with_a_control_character_is_refused_on_load(
    store_url: str,
) -> None:
    """Block.load of an address whose type holds NUL is a ValueError naming it."""
    with pytest.raises(ValueError, match="block type slug cannot contain NUL") as info:
        Block.load("doc-\x00other/inbox", store=DocumentStore(store_url))

    assert "'doc-\\x00other'" in str(info.value)


@pytest.mark.parametrize(
    "command",
    [
        ["inspect", "doc-other/in\x00box"],
        ["delete", "doc-other/in\x00box"],
        ["create", "doc-other", "in\nbox", "--set", "value=1"],
    ],
    ids=["inspect", "delete", "create"],
)
def test_the_cli_refuses_a_name_with_a_control_character(
    store_url: str,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI reports such a name in one line and exits 1, on every database."""
    from blocks._cli.app import main

    DocOther(value=1).save("inbox", store=DocumentStore(store_url))
    monkeypatch.setenv("EVENTBLOCKS_DATABASE_URL", store_url)

    assert main(command) == 1

    err = capsys.readouterr().err
    assert err.startswith("Error: A document name cannot contain ")
    assert "U+0000" in err or "U+000A" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "command",
    [
        ["create", "doc-\x00other", "inbox", "--set", "value=1"],
        ["type", "inspect", "doc-\x00other"],
        ["type", "delete", "doc-\x00other", "--force"],
        ["ls", "--type", "doc-\x00other"],
    ],
    ids=["create", "type-inspect", "type-delete", "ls"],
)
def test_the_cli_refuses_a_block_type_with_a_control_character(
    store_url: str,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A type slug with NUL is a one-line error, never a database error."""
    from blocks._cli.app import main

    DocOther(value=1).save("inbox", store=DocumentStore(store_url))
    monkeypatch.setenv("EVENTBLOCKS_DATABASE_URL", store_url)

    status = main(command)

    err = capsys.readouterr().err
    assert status in (1, 2), err
    assert "slug cannot contain NUL or lone surrogates" in err, err
    assert "database" not in err.lower()
    assert err.count("\n") == 1


# -- nested blocks ------------------------------------------------------------------


def test_saved_nested_block_loads_back_as_its_own_document(store_url: str) -> None:
    """A nested block saved first is stored as a reference and loaded as itself."""
    store = DocumentStore(store_url)
    secret = tag()
    creds = DocCredentials(user="etl", password=f"pw-{secret}")
    creds_id = creds.save("shared-creds", store=store)
    DocConnector(credentials=creds, database="dwh").save("app", store=store)

    loaded = DocConnector.load("app", store=store)

    assert type(loaded.credentials) is DocCredentials
    assert loaded.credentials.user == "etl"
    assert loaded.credentials.password.get_secret_value() == f"pw-{secret}"
    assert loaded.credentials.document_id == creds_id
    assert loaded.credentials.document_name == "shared-creds"
    # The reference did not copy the credentials into a second document.
    assert [d.name for d in DocCredentials.list_documents(store=store)] == [
        "shared-creds"
    ]
    assert secret not in raw_data(store_url, "app")


def test_unsaved_nested_block_is_saved_with_its_parent(store_url: str) -> None:
    """An unsaved nested block becomes the document <parent-slug>.<name>.<field>."""
    store = DocumentStore(store_url)
    creds = DocCredentials(user="etl", password=f"pw-{tag()}")
    connector = DocConnector(credentials=creds)

    connector.save("prod", store=store)

    expected = "doc-connector.prod.credentials"
    assert creds.document_name == expected
    assert creds.document_id is not None
    standalone = DocCredentials.load(expected, store=store)
    assert standalone.document_id == creds.document_id
    assert standalone.user == "etl"
    loaded = DocConnector.load("prod", store=store)
    assert loaded.credentials.document_id == creds.document_id
    assert loaded.credentials.document_name == expected


def test_events_of_loaded_block_name_its_document_and_nested_one(
    store_url: str,
) -> None:
    """A loaded block's calls use block-document.<uuid> and relate the nested one."""
    store = DocumentStore(store_url)
    creds_id = DocCredentials(user="etl", password=f"pw-{tag()}").save(
        "creds", store=store
    )
    app_id = DocConnector(credentials=DocCredentials.load("creds", store=store)).save(
        "app", store=store
    )
    loaded = DocConnector.load("app", store=store)

    with capture_events() as events:
        assert loaded.connect() == "etl@main"
        assert loaded.credentials.whoami() == "etl"

    connect = [e for e in events if e.event.startswith("block.doc-connector.connect.")]
    assert [e.event.rsplit(".", 1)[1] for e in connect] == ["started", "succeeded"]
    for event in connect:
        assert event.resource.id == f"block-document.{app_id}"
        assert event.resource.name == "app"
        nested = event.related_by_role("nested-block")
        assert [(r.id, r.name, r.labels.get("field")) for r in nested] == [
            (f"block-document.{creds_id}", "creds", "credentials")
        ]
    whoami = [e for e in events if e.event.startswith("block.doc-credentials.")]
    assert len(whoami) == 2
    assert {e.resource.id for e in whoami} == {f"block-document.{creds_id}"}
    assert {e.resource.name for e in whoami} == {"creds"}


# -- lifecycle events ---------------------------------------------------------------


def test_lifecycle_events_name_the_document_and_carry_no_secret(
    store_url: str,
) -> None:
    """save, load and delete emit block-document.* events without any secret."""
    store = DocumentStore(store_url)
    secret = tag()

    with capture_events() as events:
        document_id = everything(secret).save("nightly", store=store)
        DocEverything.load("nightly", store=store)
        DocEverything.delete("nightly", store=store)

    lifecycle = [e for e in events if e.event.startswith("block-document.")]
    assert [e.event for e in lifecycle] == [
        "block-document.saved",
        "block-document.loaded",
        "block-document.deleted",
    ]
    for event in lifecycle:
        assert event.resource.id == f"block-document.{document_id}"
        assert event.resource.name == "nightly"
        assert [r.id for r in event.related_by_role("block-type")] == [
            "block-type.doc-everything"
        ]
        dumped = event.model_dump_json()
        for value in [secret, *secret_values(secret)]:
            assert value not in dumped
        # Not even masked: lifecycle events never carry field values at all.
        assert MASK not in dumped


def test_saving_a_parent_emits_saved_for_the_nested_block_too(
    store_url: str,
) -> None:
    """Saving with an unsaved nested block emits saved for it, then the parent."""
    store = DocumentStore(store_url)
    creds = DocCredentials(user="etl", password=f"pw-{tag()}")

    with capture_events() as events:
        parent_id = DocConnector(credentials=creds).save("prod", store=store)

    saved = named(events, "block-document.saved")
    assert [(e.resource.id, e.resource.name) for e in saved] == [
        (f"block-document.{creds.document_id}", "doc-connector.prod.credentials"),
        (f"block-document.{parent_id}", "prod"),
    ]


# -- overwrite, delete, not found, listing ------------------------------------------


def test_save_without_overwrite_on_taken_name_changes_nothing(
    store_url: str,
) -> None:
    """overwrite=False on a taken name raises BlockExistsError and writes nothing."""
    store = DocumentStore(store_url)
    first_id = DocConnector(
        credentials=DocCredentials(user="first", password=f"pw-{tag()}")
    ).save("prod", store=store)
    before = raw_data(store_url, "prod")
    listed_before = Block.list_documents(store=store)
    newcomer = DocCredentials(user="second", password=f"pw-{tag()}")
    block = DocConnector(credentials=newcomer, database="other")

    with pytest.raises(BlockExistsError, match="overwrite=True"):
        block.save("prod", store=store)

    assert raw_data(store_url, "prod") == before
    assert Block.list_documents(store=store) == listed_before
    loaded = DocConnector.load("prod", store=store)
    assert loaded.document_id == first_id
    assert (loaded.database, loaded.credentials.user) == ("main", "first")
    # Neither the parent nor its nested block took an identity.
    assert block.document_id is None
    assert newcomer.document_id is None


def test_overwrite_replaces_data_and_keeps_the_id(store_url: str) -> None:
    """overwrite=True replaces the data, keeps the id and moves `updated` on."""
    store = DocumentStore(store_url)
    first_id = DocOther(value=1).save("prod", store=store)
    [before] = DocOther.list_documents(store=store)

    second_id = DocOther(value=2).save("prod", overwrite=True, store=store)

    [after] = DocOther.list_documents(store=store)
    assert second_id == first_id == after.id
    assert DocOther.load("prod", store=store).value == 2
    assert after.created == before.created
    assert after.updated > before.updated


def test_timestamps_keep_sub_second_precision(store_url: str) -> None:
    """Stored created/updated keep their microseconds on every backend."""
    store = DocumentStore(store_url)
    # Two saves: the chance that both land on a whole second is negligible.
    DocOther(value=1).save("a", store=store)
    DocOther(value=2).save("b", store=store)

    listed = DocOther.list_documents(store=store)

    assert any(d.created.microsecond != 0 for d in listed), listed


def test_deleted_document_no_longer_loads(store_url: str) -> None:
    """After delete, load raises BlockNotFoundError and listings omit it."""
    store = DocumentStore(store_url)
    DocOther(value=1).save("gone", store=store)
    DocOther(value=2).save("kept", store=store)

    DocOther.delete("gone", store=store)

    with pytest.raises(BlockNotFoundError, match="gone"):
        DocOther.load("gone", store=store)
    assert [d.name for d in DocOther.list_documents(store=store)] == ["kept"]
    with pytest.raises(BlockNotFoundError):
        Block.delete("doc-other/gone", store=store)


def test_deleting_a_referenced_document_names_its_user(store_url: str) -> None:
    """Deleting a document another one references is refused, naming the user."""
    store = DocumentStore(store_url)
    creds = DocCredentials(user="etl", password=f"pw-{tag()}")
    creds.save("shared", store=store)
    DocConnector(credentials=creds).save("app", store=store)

    with pytest.raises(BlockStoreError) as info:
        DocCredentials.delete("shared", store=store)

    assert "doc-connector/app" in str(info.value)
    assert "credentials" in str(info.value)
    assert DocCredentials.load("shared", store=store).user == "etl"


def test_missing_name_suggests_close_matches(store_url: str) -> None:
    """Loading a missing name raises BlockNotFoundError listing close names."""
    store = DocumentStore(store_url)
    DocOther(value=1).save("production", store=store)
    DocOther(value=2).save("staging", store=store)

    with pytest.raises(BlockNotFoundError) as info:
        DocOther.load("prodution", store=store)

    message = str(info.value)
    assert "'prodution'" in message
    assert "Did you mean 'production'" in message
    assert "staging" not in message


def test_list_documents_per_type_and_across_types(store_url: str) -> None:
    """list_documents on a subclass lists its type; on Block, every type."""
    store = DocumentStore(store_url)
    b_id = DocOther(value=1).save("b", store=store)
    a_id = DocOther(value=2).save("a", store=store)
    creds_id = DocCredentials(user="u", password=f"pw-{tag()}").save("c", store=store)

    own = DocOther.list_documents(store=store)
    every = Block.list_documents(store=store)

    assert [(d.id, d.name, d.block_type) for d in own] == [
        (a_id, "a", "doc-other"),
        (b_id, "b", "doc-other"),
    ]
    assert [d.address for d in every] == [
        "doc-credentials/c",
        "doc-other/a",
        "doc-other/b",
    ]
    assert {d.id for d in every} == {a_id, b_id, creds_id}
    assert all(d.created.tzinfo is not None for d in every)


# -- drift: stored data that no longer fits the class -------------------------------


def test_added_required_field_fails_naming_document_and_field(
    store_url: str,
) -> None:
    """A required field added to the class makes load fail naming field and doc."""
    store = DocumentStore(store_url)

    class DriftAdded(Block):
        block_type_slug: ClassVar[str] = "doc-drift-added"
        host: str

    DriftAdded(host="db").save("prod", store=store)

    class DriftAddedV2(Block):
        block_type_slug: ClassVar[str] = "doc-drift-added"
        host: str
        port: int

    with pytest.raises(BlockValidationError) as info:
        DriftAddedV2.load("prod", store=store)

    message = str(info.value)
    assert "doc-drift-added/prod" in message
    assert "port" in message
    # Through the registry, the redefined class is used and fails the same way.
    with pytest.raises(BlockValidationError, match="doc-drift-added/prod"):
        Block.load("doc-drift-added/prod", store=store)


def test_removed_field_fails_naming_document_and_field(store_url: str) -> None:
    """A field removed from the class makes load fail on the extra stored field."""
    store = DocumentStore(store_url)

    class DriftRemoved(Block):
        block_type_slug: ClassVar[str] = "doc-drift-removed"
        host: str
        region: str = "eu"

    DriftRemoved(host="db").save("prod", store=store)

    class DriftRemovedV2(Block):
        block_type_slug: ClassVar[str] = "doc-drift-removed"
        host: str

    with pytest.raises(BlockValidationError) as info:
        DriftRemovedV2.load("prod", store=store)

    message = str(info.value)
    assert "doc-drift-removed/prod" in message
    assert "region" in message


def test_retyped_field_fails_naming_document_and_field(store_url: str) -> None:
    """A str field retyped to int fails on a non-numeric value, without echoing it."""
    store = DocumentStore(store_url)
    value = f"port-{tag()}"

    class DriftRetyped(Block):
        block_type_slug: ClassVar[str] = "doc-drift-retyped"
        port: str

    DriftRetyped(port=value).save("prod", store=store)

    class DriftRetypedV2(Block):
        block_type_slug: ClassVar[str] = "doc-drift-retyped"
        port: int

    with pytest.raises(BlockValidationError) as info:
        DriftRetypedV2.load("prod", store=store)

    message = str(info.value)
    assert "doc-drift-retyped/prod" in message
    assert "port" in message
    assert value not in message


def test_drift_error_lists_each_field_like_a_validation_error(
    store_url: str,
) -> None:
    """A drift error's `errors` name each field, as BlockValidationError documents."""
    store = DocumentStore(store_url)

    class DriftListed(Block):
        block_type_slug: ClassVar[str] = "doc-drift-listed"
        host: str
        region: str = "eu"

    DriftListed(host="db").save("prod", store=store)

    class DriftListedV2(Block):
        block_type_slug: ClassVar[str] = "doc-drift-listed"
        host: int
        port: int

    with pytest.raises(BlockValidationError) as info:
        DriftListedV2.load("prod", store=store)

    assert info.value.document == "doc-drift-listed/prod"
    assert sorted(field for field, _ in info.value.errors) == [
        "host",
        "port",
        "region",
    ]
    assert "(block)" not in str(info.value)


def test_dict_keys_that_look_like_markers_round_trip(store_url: str) -> None:
    """Plain dict data with "$secret" or "$block" keys is kept as plain data."""
    store = DocumentStore(store_url)

    class DocLabels(Block):
        block_type_slug: ClassVar[str] = "doc-labels"
        labels: dict[str, str]

    labels = {"$secret": "not a secret", "$block": str(uuid.uuid4())}
    for key, value in labels.items():
        DocLabels(labels={key: value}).save(key.strip("$"), store=store)

    for key, value in labels.items():
        assert DocLabels.load(key.strip("$"), store=store).labels == {key: value}


# -- secrets at rest ----------------------------------------------------------------


def test_secrets_are_encrypted_in_the_data_column(store_url: str) -> None:
    """The raw data column holds $secret tokens and no plaintext secret value."""
    store = DocumentStore(store_url)
    secret = tag()
    everything(secret).save("nightly", store=store)

    raw = raw_data(store_url, "nightly")

    assert "nightly" in raw  # the plain fields are there: this is the right row
    assert secret not in raw
    for value in secret_values(secret):
        assert value not in raw
    assert str(pin(secret)) not in raw
    # token, blob, options and address.door_code: one token each.
    assert raw.count('"$secret"') == 4


class DocLoosened(Block):
    """A class whose fields were secret in an earlier version and are plain now."""

    block_type_slug: ClassVar[str] = "doc-loosened"

    options: dict[str, str]
    blob: bytes

    def connect(self) -> None:
        """Fail with the field values in the message, as a careless driver would."""
        raise ConnectionError(f"login refused for {self.options} {self.blob!r}")


def test_values_saved_as_secret_stay_redacted_after_their_fields_turn_plain(
    store_url: str,
) -> None:
    """Values stored encrypted are registered on load, whatever the field is now."""
    from emitters._redact import redact_text

    store = DocumentStore(store_url)
    secret = tag()
    password, blob = f"opt-{secret}", f"blob-{secret}"
    DocLoosened(options={}, blob=b"").save("vault", store=store)
    # Written as an earlier class with SecretDict and SecretBytes fields saved it,
    # by this process, which never held the values in a block.
    cipher = SecretCipher()
    data = {
        "options": {
            SECRET: cipher.encrypt(json.dumps({"password": password}).encode())
        },
        "blob": {SECRET: cipher.encrypt(blob.encode()), "bytes": True},
    }
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE eventblocks_block_documents SET data = :d"),
                {"d": json.dumps(data, sort_keys=True)},
            )
    finally:
        engine.dispose()
    assert redact_text(password) == password  # not registered yet

    loaded = DocLoosened.load("vault", store=store)
    with capture_events() as events, pytest.raises(ConnectionError):
        loaded.connect()

    assert loaded.options == {"password": password}
    assert loaded.blob == blob.encode()
    failed = named(events, "block.doc-loosened.connect.failed")
    assert len(failed) == 1
    dumped = json.dumps([e.model_dump(mode="json") for e in events])
    assert secret not in dumped
    assert MASK in dumped


def test_key_file_is_created_with_mode_0600(
    store_url: str, eventblocks_home: Path
) -> None:
    """The first save of a secret creates the key file in the home, mode 0600."""
    store = DocumentStore(store_url)
    key_file = eventblocks_home / "encryption.key"
    assert not key_file.exists()

    DocCredentials(user="etl", password=f"pw-{tag()}").save("prod", store=store)

    assert key_file.is_file()
    assert key_file.stat().st_mode & 0o777 == 0o600
    Fernet(key_file.read_bytes().strip())  # a valid Fernet key


def _save_credentials(store: DocumentStore) -> str:
    """Save DocCredentials 'prod' with a fresh password and return the password."""
    password = f"pw-{tag()}"
    DocCredentials(user="etl", password=password).save("prod", store=store)
    return password


def _assert_decryption_error(exc: BaseException, password: str) -> None:
    """The error names the document and the field and never the secret."""
    message = str(exc)
    assert "doc-credentials/prod" in message
    assert "'password'" in message
    assert password not in message


def test_other_key_in_environment_fails_naming_document_and_field(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading with another EVENTBLOCKS_ENCRYPTION_KEY raises BlockDecryptionError."""
    store = DocumentStore(store_url)
    password = _save_credentials(store)
    monkeypatch.setenv("EVENTBLOCKS_ENCRYPTION_KEY", Fernet.generate_key().decode())

    with pytest.raises(BlockDecryptionError) as info:
        DocCredentials.load("prod", store=store)

    _assert_decryption_error(info.value, password)


def test_replaced_key_file_fails_naming_document_and_field(
    store_url: str, eventblocks_home: Path
) -> None:
    """Loading after the key file was replaced raises BlockDecryptionError."""
    store = DocumentStore(store_url)
    password = _save_credentials(store)
    (eventblocks_home / "encryption.key").write_bytes(Fernet.generate_key() + b"\n")

    with pytest.raises(BlockDecryptionError) as info:
        DocCredentials.load("prod", store=store)

    _assert_decryption_error(info.value, password)


def test_missing_key_fails_naming_document_and_field(
    store_url: str, eventblocks_home: Path
) -> None:
    """Loading after the key file was deleted raises BlockDecryptionError."""
    store = DocumentStore(store_url)
    password = _save_credentials(store)
    (eventblocks_home / "encryption.key").unlink()

    with pytest.raises(BlockDecryptionError) as info:
        DocCredentials.load("prod", store=store)

    _assert_decryption_error(info.value, password)
    assert "no encryption key" in str(info.value)
    # Loading must not quietly create a new key that could never decrypt it.
    assert not (eventblocks_home / "encryption.key").exists()


def test_invalid_key_in_environment_is_a_clear_error(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A malformed EVENTBLOCKS_ENCRYPTION_KEY is a clear error, not garbage."""
    store = DocumentStore(store_url)
    password = _save_credentials(store)
    bad_key = f"not-a-fernet-key-{tag()}"
    monkeypatch.setenv("EVENTBLOCKS_ENCRYPTION_KEY", bad_key)

    with pytest.raises(BlockDecryptionError) as load_info:
        DocCredentials.load("prod", store=store)
    with pytest.raises(BlockDecryptionError) as save_info:
        DocCredentials(user="etl", password=password).save("other", store=store)

    for info in (load_info, save_info):
        message = str(info.value)
        assert "EVENTBLOCKS_ENCRYPTION_KEY" in message
        assert "not a valid Fernet key" in message
        assert bad_key not in message
        assert password not in message
    assert [d.name for d in DocCredentials.list_documents(store=store)] == ["prod"]


def _encrypt_at_once(threads: int) -> tuple[list[str], list[BaseException]]:
    """Encrypt from ``threads`` fresh ciphers released at once; tokens and errors."""
    from blocks._documents.crypto import SecretCipher

    start = threading.Barrier(threads)
    tokens: list[str] = []
    errors: list[BaseException] = []

    def encrypt() -> None:
        start.wait(timeout=30)
        try:
            tokens.append(SecretCipher().encrypt(b"secret"))
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=encrypt) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)
    return tokens, errors


def test_threads_creating_the_key_file_at_once_share_one_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Of several first encryptions at once, none reads a half-written key file."""
    for round_ in range(10):
        home = tmp_path / f"home-{round_}"
        monkeypatch.setenv("EVENTBLOCKS_HOME", str(home))

        tokens, errors = _encrypt_at_once(8)

        assert [str(e) for e in errors] == [], f"round {round_}"
        fernet = Fernet((home / "encryption.key").read_bytes().strip())
        assert {fernet.decrypt(t.encode()) for t in tokens} == {b"secret"}


# -- the schema version -------------------------------------------------------------


def test_new_database_records_the_current_schema_version(store_url: str) -> None:
    """A fresh database is stamped with SCHEMA_VERSION on first use."""
    assert (
        DocumentStore(store_url).schema_version()
        == blocks._documents.store.SCHEMA_VERSION
    )


def _stored_schema_version(url: str) -> str:
    """Read eventblocks_meta's schema_version row, bypassing blocks."""
    meta = blocks._documents.store.meta
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(
                conn.execute(
                    sa.select(meta.c.value).where(meta.c.key == "schema_version")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_database_from_a_newer_version_is_refused(store_url: str) -> None:
    """A database stamped with a higher schema version asks to upgrade."""
    DocOther(value=1).save("prod", store=DocumentStore(store_url))
    newer = blocks._documents.store.SCHEMA_VERSION + 1
    meta = blocks._documents.store.meta
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                meta.update()
                .where(meta.c.key == "schema_version")
                .values(value=str(newer))
            )
    finally:
        engine.dispose()
    blocks._documents.store._ready.discard(store_url)

    fresh = DocumentStore(store_url)
    with pytest.raises(BlockStoreError) as info:
        fresh.schema_version()
    with pytest.raises(BlockStoreError):
        DocOther.load("prod", store=fresh)

    message = str(info.value)
    assert str(newer) in message
    assert "upgrade eventblocks" in message
    assert _stored_schema_version(store_url) == str(newer)  # left as it was


# -- concurrency --------------------------------------------------------------------

# Secret values are registered for redaction process-wide: make them unique.
RUN = uuid.uuid4().hex
WORKERS = 4
DOCUMENTS_PER_WORKER = 25
SHARED_EVERY = 5

WORKER_SCRIPT = textwrap.dedent(
    '''
    """Save distinct documents and one shared name, started at a common signal."""

    import sys
    import time
    from pathlib import Path
    from typing import ClassVar

    from pydantic import SecretStr

    from blocks import Block, DocumentStore
    from emitters import configure


    class DocConcurrent(Block):
        """A document that concurrent writers save."""

        block_type_slug: ClassVar[str] = "doc-concurrent"

        worker: int
        index: int
        token: SecretStr


    def main() -> None:
        url, worker, signals = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
        count, shared_every, run = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
        configure(emitters=[])
        store = DocumentStore(url)
        (signals / f"ready-{worker}").touch()
        deadline = time.monotonic() + 60
        while not (signals / "go").exists():
            if time.monotonic() > deadline:
                raise SystemExit("no go signal")
            time.sleep(0.002)
        for index in range(count):
            block = DocConcurrent(
                worker=worker, index=index, token=f"tok-{worker}-{index}-{run}"
            )
            block.save(f"w{worker}-{index}", store=store)
            if index % shared_every == 0:
                block.save("shared", overwrite=True, store=store)


    main()
    '''
)


def token(worker: int, index: int) -> str:
    """Return the secret a concurrent writer saves in document (worker, index)."""
    return f"tok-{worker}-{index}-{RUN}"


def _check_concurrent_result(
    store: DocumentStore, workers: int, count: int, extra: int = 0
) -> None:
    """Every distinct document loads, and the shared one holds a written value."""
    for worker in range(workers):
        for index in range(count):
            loaded = DocConcurrent.load(f"w{worker}-{index}", store=store)
            assert (loaded.worker, loaded.index) == (worker, index)
            assert loaded.token.get_secret_value() == token(worker, index)
    shared = DocConcurrent.load("shared", store=store)
    assert shared.index % SHARED_EVERY == 0
    assert shared.token.get_secret_value() == token(shared.worker, shared.index)
    names = [d.name for d in DocConcurrent.list_documents(store=store)]
    assert len(names) == workers * count + 1 + extra
    assert len(set(names)) == len(names)


@pytest.mark.slow
@pytest.mark.parametrize("type_known", [False, True], ids=["new-type", "known-type"])
def test_concurrent_processes_never_corrupt_the_store(
    store_url: str, tmp_path: Path, eventblocks_home: Path, type_known: bool
) -> None:
    """Four processes saving at once all succeed and every document loads.

    With ``new-type`` the type and its schema are first stored by the racing
    workers themselves; with ``known-type`` a document of the same schema was
    saved before they start.
    """
    expected_extra = 0
    if type_known:
        DocConcurrent(worker=-1, index=0, token=token(-1, 0)).save(
            "before", store=DocumentStore(store_url)
        )
        expected_extra = 1
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT, encoding="utf-8")
    signals = tmp_path / "signals"
    signals.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "EVENTBLOCKS_DATABASE_URL"
    }
    env["EVENTBLOCKS_HOME"] = str(eventblocks_home)
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                store_url,
                str(worker),
                str(signals),
                str(DOCUMENTS_PER_WORKER),
                str(SHARED_EVERY),
                RUN,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for worker in range(WORKERS)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(signals.glob("ready-*"))) < WORKERS:
            if any(p.poll() is not None for p in processes):
                break
            assert time.monotonic() < deadline, "the workers never got ready"
            time.sleep(0.01)
        (signals / "go").touch()
        outputs = [p.communicate(timeout=90) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    errors = [
        f"worker {i} exited {p.returncode}:\n{err}"
        for i, (p, (_, err)) in enumerate(zip(processes, outputs, strict=True))
        if p.returncode != 0 or err.strip()
    ]
    assert not errors, "\n".join(errors)
    _check_concurrent_result(
        DocumentStore(store_url), WORKERS, DOCUMENTS_PER_WORKER, expected_extra
    )


def test_concurrent_threads_never_corrupt_sqlite(tmp_path: Path) -> None:
    """Eight threads saving 20 documents each into SQLite all succeed."""
    store = DocumentStore(f"sqlite:///{tmp_path / 'threads.db'}")
    threads, count = 8, 20
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(worker: int) -> None:
        try:
            start.wait(timeout=30)
            for index in range(count):
                block = DocConcurrent(
                    worker=worker, index=index, token=token(worker, index)
                )
                block.save(f"w{worker}-{index}", store=store)
                if index % SHARED_EVERY == 0:
                    block.save("shared", overwrite=True, store=store)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=120)

    assert not any(thread.is_alive() for thread in pool)
    assert errors == []
    _check_concurrent_result(store, threads, count)
