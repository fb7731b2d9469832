"""Saving blocks as documents and loading them back.

A document's data is the block's fields as JSON, where every secret value is a
Fernet token (``{"$secret": ...}``) and every nested block is a reference to its own
document (``{"$block": "<uuid>"}``). A nested block that was never saved is saved
with the parent, as ``<parent type>.<parent name>.<field>``.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import typing
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Secret, SecretBytes, SecretStr
from pydantic_core import to_jsonable_python
from sqlalchemy.engine import Connection

from blocks._documents.crypto import SecretCipher
from blocks._documents.store import (
    DocumentRecord,
    DocumentStore,
    SchemaRecord,
    TypeRecord,
    unprintable,
)
from blocks._errors import (
    BlockDefinitionError,
    BlockNotFoundError,
    BlockValidationError,
)
from blocks._instrument import public_methods
from blocks._registry import block_class, class_path
from blocks._secrets import iter_named_secrets
from emitters import emit_event
from emitters._sdk import package_version, register_named

if TYPE_CHECKING:
    from blocks._block import Block

__all__ = [
    "DocumentInfo",
    "delete_document",
    "delete_type",
    "describe_type",
    "list_documents",
    "load_document",
    "not_found_error",
    "public_view",
    "save_block",
    "split_address",
    "store_type",
]

SECRET = "$secret"
REFERENCE = "$block"
_MAX_DEPTH = 16


def _escape(key: str) -> str:
    # A user's key that starts with "$" gets one more, so that it can never be
    # mistaken for one of the markers above.
    return f"${key}" if key.startswith("$") else key


def _unescape(key: str) -> str:
    return key[1:] if key.startswith("$$") else key


@dataclass(frozen=True)
class DocumentInfo:
    """A saved block document, as listings show it (no field values).

    Attributes:
        id: The document's id; its events use ``block-document.<id>``.
        name: The document's name.
        block_type: The slug of its block type.
        created: When it was first saved (UTC).
        updated: When it was last saved (UTC).
    """

    id: uuid.UUID
    name: str
    block_type: str
    created: datetime
    updated: datetime

    @property
    def address(self) -> str:
        """``slug/name``, as ``Block.load`` and the CLI spell it."""
        return f"{self.block_type}/{self.name}"


def _info(record: DocumentRecord) -> DocumentInfo:
    return DocumentInfo(
        record.id, record.name, record.block_type, record.created, record.updated
    )


def check_name(name: object, *, new: bool = True) -> str:
    """Return ``name`` if it can name a document, else raise ValueError saying why.

    Args:
        name: The document name.
        new: The name is for a document about to be saved. Names to look up may
            hold control characters other than NUL, which earlier versions saved.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"A document name must be a non-empty string, not {name!r}.")
    bad = unprintable(name, unstorable_only=not new)
    if bad is not None:
        # NUL, tab, newline and the like; PostgreSQL refuses NUL in text, and a
        # lone surrogate is not text any database can store.
        what = "control characters" if new else "NUL"
        raise ValueError(
            f"A document name cannot contain {what} or lone surrogates: "
            f"{name!r} has {bad}."
        )
    if name != name.strip():
        raise ValueError(f"A document name cannot start or end with spaces: {name!r}.")
    if "/" in name:
        raise ValueError(
            f"A document name cannot contain '/': {name!r} (the slash separates the "
            "block type from the name, as in 'warehouse/prod')."
        )
    if len(name) > 255:
        raise ValueError("A document name can be at most 255 characters long.")
    return name


def split_address(address: str) -> tuple[str, str]:
    """Split ``"slug/name"`` into its parts, with a clear error for anything else.

    The address names a stored document: see ``check_name(..., new=False)``.
    """
    if not isinstance(address, str) or address.count("/") != 1:
        raise ValueError(
            f"Expected a document address 'block-type/name', such as "
            f"'warehouse/prod', not {address!r}."
        )
    slug, name = address.split("/")
    if not slug:
        raise ValueError(f"The address {address!r} has no block type before '/'.")
    bad = unprintable(slug, unstorable_only=True)
    if bad is not None:
        raise ValueError(
            f"A block type slug cannot contain NUL or lone surrogates: "
            f"{slug!r} has {bad}."
        )
    return slug, check_name(name, new=False)


# -- schemas -----------------------------------------------------------------------


def secret_fields(cls: type[BaseModel], prefix: str = "") -> list[str]:
    """Return the dotted paths of the secret fields of ``cls`` (nested models too)."""
    from blocks._block import Block

    found: list[str] = []
    for name, info in cls.model_fields.items():
        nested: list[str] = []
        secret = False
        # Look through unions, containers and Annotated, at any depth:
        # dict[str, str | SecretStr] holds secrets, and so does BasicAuth | None.
        for candidate in _annotation_types(info.annotation):
            if issubclass(candidate, SecretStr | SecretBytes | Secret):
                secret = True
            elif issubclass(candidate, BaseModel) and not issubclass(candidate, Block):
                nested.extend(secret_fields(candidate, f"{prefix}{name}."))
        if secret:
            found.append(prefix + name)
        found.extend(p for p in dict.fromkeys(nested) if p not in found)
    return found


def _annotation_types(annotation: Any, depth: int = 0) -> Iterator[type]:
    """Yield every class named anywhere inside a type annotation."""
    if depth > 8:
        return
    if isinstance(annotation, type) and not typing.get_args(annotation):
        yield annotation
        return
    origin = typing.get_origin(annotation)
    if isinstance(origin, type):
        yield origin
    for argument in typing.get_args(annotation):
        yield from _annotation_types(argument, depth + 1)


def describe_type(cls: type[Block]) -> dict[str, Any]:
    """Return what is stored about a block type's schema: fields, secrets, methods."""
    try:
        schema = cls.model_json_schema()
    except Exception as exc:
        raise BlockDefinitionError(
            f"{cls.__qualname__} cannot be saved: its fields cannot be described as "
            f"JSON schema ({type(exc).__name__}: {exc})."
        ) from None
    from blocks._block import BASE_CLASSES

    capabilities = public_methods(cls, BASE_CLASSES)
    fields = {"json_schema": schema, "secret_fields": secret_fields(cls)}
    checksum = hashlib.sha256(
        json.dumps(fields, sort_keys=True).encode("utf-8")
    ).hexdigest()
    return {"fields": fields, "capabilities": capabilities, "checksum": checksum}


# -- encoding ----------------------------------------------------------------------


class _Encoder:
    """Turns a block's fields into stored JSON, saving unsaved nested blocks."""

    def __init__(
        self,
        store: DocumentStore,
        conn: Connection,
        cipher: SecretCipher,
        owner: str,
    ) -> None:
        self.store = store
        self.conn = conn
        self.cipher = cipher
        self.owner = owner
        self.references: dict[str, uuid.UUID] = {}
        self.saved: list[tuple[Block, uuid.UUID, str]] = []

    def value(self, value: Any, path: str, depth: int = 0) -> Any:
        from blocks._block import Block

        if depth > _MAX_DEPTH:
            raise BlockDefinitionError(f"Field {path!r} is nested too deeply to save.")
        if isinstance(value, Block):
            document_id = value.document_id
            if document_id is None:
                name = f"{self.owner}.{path}"
                document_id = _save_in(
                    self.store, self.conn, self.cipher, value, name, True, self.saved
                )
            self.references[path] = document_id
            return {REFERENCE: str(document_id)}
        if isinstance(value, SecretStr | SecretBytes | Secret):
            plain = value.get_secret_value()
            if isinstance(plain, bytes):
                token = self.cipher.encrypt(plain)
                return {SECRET: token, "bytes": True}
            body = json.dumps(to_jsonable_python(plain)).encode("utf-8")
            return {SECRET: self.cipher.encrypt(body)}
        if isinstance(value, BaseModel):
            return {
                name: self.value(getattr(value, name), f"{path}.{name}", depth + 1)
                for name in type(value).model_fields
            }
        if isinstance(value, dict):
            return {
                _escape(str(k)): self.value(v, f"{path}[{k!r}]", depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [
                self.value(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)
            ]
        return to_jsonable_python(value)


def _store_type_in(
    store: DocumentStore, conn: Connection, cls: type[Block]
) -> tuple[TypeRecord, SchemaRecord]:
    described = describe_type(cls)
    # The class's own docstring: inspect.getdoc would inherit Block's.
    doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
    type_record = store.upsert_type(
        conn,
        slug=cls.block_type_slug,
        name=cls.__name__,
        class_path=class_path(cls),
        description=doc.split("\n\n", 1)[0].replace("\n", " "),
    )
    schema = store.upsert_schema(
        conn,
        type_id=type_record.id,
        checksum=described["checksum"],
        fields=described["fields"],
        capabilities=described["capabilities"],
        version=package_version(),
    )
    return type_record, schema


def store_type(cls: type[Block], store: DocumentStore | None = None) -> TypeRecord:
    """Record the block type ``cls`` and its current schema in the database."""
    store = store or DocumentStore()
    type_record, _ = store.run(lambda conn: _store_type_in(store, conn, cls))
    return type_record


def _save_in(
    store: DocumentStore,
    conn: Connection,
    cipher: SecretCipher,
    block: Block,
    name: str,
    overwrite: bool,
    saved: list[tuple[Block, uuid.UUID, str]],
) -> uuid.UUID:
    cls = type(block)
    slug = cls.block_type_slug
    type_record, schema = _store_type_in(store, conn, cls)
    encoder = _Encoder(store, conn, cipher, f"{slug}.{name}")
    data = {
        field: encoder.value(getattr(block, field), field) for field in cls.model_fields
    }
    saved.extend(encoder.saved)
    record = store.save_document(
        conn,
        type_id=type_record.id,
        slug=slug,
        name=name,
        schema=schema,
        data=data,
        references=encoder.references,
        overwrite=overwrite,
    )
    saved.append((block, record.id, name))
    return record.id


def _lifecycle(block: Block, event: str, payload: dict[str, Any]) -> None:
    if not type(block).events_enabled:
        return
    info = block.__eventblocks_source__()
    emit_event(event, info.resource, related=info.related, payload=payload)


def save_block(
    block: Block, name: str, *, overwrite: bool, store: DocumentStore | None
) -> uuid.UUID:
    """Save ``block`` as the document ``name``; see ``Block.save``."""
    check_name(name)
    store = store or DocumentStore()
    saved: list[tuple[Block, uuid.UUID, str]] = []
    cipher = SecretCipher()

    def save(conn: Connection) -> uuid.UUID:
        saved.clear()  # a transaction run again starts over
        return _save_in(store, conn, cipher, block, name, overwrite, saved)

    document_id = store.run(save)
    # Only once the transaction committed do the instances take their identity;
    # nested blocks saved with this one come first, as they were written.
    for instance, saved_id, saved_name in saved:
        instance._set_document(saved_id, saved_name)
        _lifecycle(
            instance,
            "block-document.saved",
            {
                "block_type": type(instance).block_type_slug,
                "overwrite": overwrite if instance is block else True,
            },
        )
    return document_id


# -- decoding ----------------------------------------------------------------------


class _Decoder:
    """Turns stored JSON back into field values, loading nested documents."""

    def __init__(
        self, store: DocumentStore, cipher: SecretCipher, stack: tuple[uuid.UUID, ...]
    ) -> None:
        self.store = store
        self.cipher = cipher
        self.stack = stack
        # Every value stored encrypted, by field: registered with the block.
        self.secrets: list[tuple[str, str | bytes]] = []

    def value(self, value: Any, record: DocumentRecord, path: str) -> Any:
        if isinstance(value, dict):
            if SECRET in value and len(value) <= 2:
                plain = self.cipher.decrypt(
                    value[SECRET], document=record.address, field=path
                )
                if value.get("bytes"):
                    self.secrets.extend(iter_named_secrets(SecretBytes(plain), path))
                    return plain
                decoded = json.loads(plain)
                # Saved as secret, so registered with the block, whatever the
                # field has become: a class whose field turned plain would not
                # register it.
                self.secrets.extend(iter_named_secrets(Secret[Any](decoded), path))
                # A secret string stays a SecretStr, also in a field typed
                # str | SecretStr, where pydantic would otherwise pick str.
                return SecretStr(decoded) if isinstance(decoded, str) else decoded
            if REFERENCE in value and len(value) == 1:
                return self._nested(uuid.UUID(value[REFERENCE]), record, path)
            return {
                _unescape(k): self.value(v, record, f"{path}.{_unescape(k)}")
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.value(v, record, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    def _nested(
        self, document_id: uuid.UUID, parent: DocumentRecord, path: str
    ) -> Block:
        if document_id in self.stack:
            raise BlockValidationError(
                parent.block_type,
                [(path, "refers back to a document that contains it")],
                document=parent.address,
            )
        record = self.store.get_document_by_id(document_id)
        if record is None:
            raise BlockNotFoundError(
                f"Document {parent.address} refers in field {path!r} to a document "
                "that no longer exists."
            )
        cls = block_class(record.block_type, self.store)
        return materialize(cls, record, self.store, self.cipher, self.stack)


def materialize(
    cls: type[Block],
    record: DocumentRecord,
    store: DocumentStore,
    cipher: SecretCipher,
    stack: tuple[uuid.UUID, ...] = (),
) -> Block:
    """Build an instance of ``cls`` from a stored document."""
    decoder = _Decoder(store, cipher, (*stack, record.id))
    data = {k: decoder.value(v, record, k) for k, v in record.data.items()}
    try:
        block = cls(**data)
    except BlockValidationError as exc:
        raise BlockValidationError(
            exc.block_type, exc.errors, document=record.address
        ) from None
    register_named(block, cls.block_type_slug, decoder.secrets)
    block._set_document(record.id, record.name, fresh=True)
    return block


def not_found_error(store: DocumentStore, slug: str, name: str) -> BlockNotFoundError:
    """Return the error for a missing document, naming close matches."""
    names = store.document_names(slug)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    if close:
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?"
    elif names:
        hint = (
            f" It has {len(names)} other document(s): 'eventblocks ls --type {slug}'."
        )
    else:
        hint = f" There are no {slug} documents."
    return BlockNotFoundError(f"There is no {slug} document named {name!r}.{hint}")


def _resolve(
    cls: type[Block], name: str, store: DocumentStore
) -> tuple[type[Block], str, str]:
    from blocks._block import Block

    if cls is Block:
        slug, name = split_address(name)
        return block_class(slug, store), slug, name
    if "/" in name:
        slug, name = split_address(name)
        if slug != cls.block_type_slug:
            raise ValueError(
                f"{cls.__name__} documents have the type {cls.block_type_slug!r}, not "
                f"{slug!r}; load it with Block.load({slug + '/' + name!r})."
            )
    return cls, cls.block_type_slug, check_name(name, new=False)


def load_document(cls: type[Block], name: str, store: DocumentStore | None) -> Block:
    """Load a document; see ``Block.load``."""
    store = store or DocumentStore()
    target, slug, name = _resolve(cls, name, store)
    record = store.get_document(slug, name)
    if record is None:
        raise not_found_error(store, slug, name)
    block = materialize(target, record, store, SecretCipher())
    _lifecycle(block, "block-document.loaded", {"block_type": slug})
    return block


def _deleted(record: DocumentRecord) -> None:
    from blocks._registry import registered_types
    from emitters import RelatedResource, Resource

    # The class need not be importable to delete a document; when it is known
    # here and has its events turned off, no event.
    cls = registered_types().get(record.block_type)
    if cls is not None and not cls.events_enabled:
        return
    emit_event(
        "block-document.deleted",
        Resource(
            id=f"block-document.{record.id}",
            name=record.name,
            labels={"block-type": record.block_type},
        ),
        related=[
            RelatedResource(
                id=f"block-type.{record.block_type}",
                role="block-type",
                name=cls.__name__ if cls is not None else None,
            )
        ],
        payload={"block_type": record.block_type},
    )


def delete_document(cls: type[Block], name: str, store: DocumentStore | None) -> None:
    """Delete a document; see ``Block.delete``. Its class need not be importable."""
    from blocks._block import Block

    store = store or DocumentStore()
    if cls is Block:
        slug, name = split_address(name)
    else:
        _, slug, name = _resolve(cls, name, store)
    if store.get_document(slug, name) is None:
        raise not_found_error(store, slug, name)
    _deleted(store.delete_document(slug, name))


def delete_type(slug: str, store: DocumentStore | None = None) -> int:
    """Delete a stored block type with its documents; return how many went.

    Emits ``block-document.deleted`` for each document.
    """
    store = store or DocumentStore()
    records = store.list_documents(slug)
    deleted = store.delete_type(slug)
    for record in records:
        _deleted(record)
    return deleted


def public_view(
    record: DocumentRecord, store: DocumentStore
) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """Return a document's fields for display, decrypting nothing.

    Returns:
        The field values with every secret as ``**********`` and every nested
        block as its ``slug/name``; the paths of the secret fields; and the
        nested references by field.
    """
    from emitters._sdk import MASK

    secrets: list[str] = []
    references: dict[str, str] = {}

    def show(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            if SECRET in value and len(value) <= 2:
                secrets.append(path)
                return MASK
            if REFERENCE in value and len(value) == 1:
                nested = store.get_document_by_id(uuid.UUID(value[REFERENCE]))
                address = (
                    nested.address
                    if nested is not None
                    else f"<missing document {value[REFERENCE]}>"
                )
                references[path] = address
                return address
            return {
                _unescape(k): show(v, f"{path}.{_unescape(k)}")
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [show(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    fields = {name: show(value, name) for name, value in record.data.items()}
    return fields, secrets, references


def list_documents(cls: type[Block], store: DocumentStore | None) -> list[DocumentInfo]:
    """List documents; see ``Block.list_documents``."""
    from blocks._block import Block

    store = store or DocumentStore()
    slug = None if cls is Block else cls.block_type_slug
    return [_info(r) for r in store.list_documents(slug)]
