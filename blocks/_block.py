"""The ``Block`` base class: a typed, validated connector whose calls are observable."""

from __future__ import annotations

import itertools
import re
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from blocks._errors import BlockDefinitionError, BlockValidationError
from blocks._instrument import EXCLUDED_NAMES, instrument_class
from blocks._registry import register_type
from blocks._secrets import register_held_secrets
from emitters import RelatedResource, Resource
from emitters._sdk import EVENTS_OFF_AT_IMPORT, SourceInfo, drain, ensure_configured

if TYPE_CHECKING:
    from pydantic._internal._model_construction import ModelMetaclass

    from blocks._documents.operations import DocumentInfo
    from blocks._documents.store import DocumentStore
else:
    ModelMetaclass = type(BaseModel)

__all__ = ["Block", "kebab_case"]

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Bumped whenever any block's document identity changes, so that cached event
# sources of the blocks that hold it as a field are rebuilt.
_identity_generation = itertools.count(1)
_current_generation = 0
_IDENTITY_DRAIN_TIMEOUT = 2.0


def kebab_case(name: str) -> str:
    """Return the kebab-case slug of a class name: ``S3Bucket`` -> ``s3-bucket``."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", name)
    words = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1-\2", words)
    return re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-")


# Set on a block class once its definition is complete.
_DEFINED = "__eventblocks_defined__"


class BlockType(ModelMetaclass):
    """The metaclass of blocks: late changes to a block class take effect.

    cloudpickle re-creates a class it sends by value (a class of ``__main__``,
    as Prefect's runner sends a served flow's) as an empty class first, and then
    sets its attributes one by one. A public method, ``block_type_slug`` or
    ``events_enabled`` given to a block class after its definition is therefore
    treated as if it had been in the class body: the method records its calls and
    the type is registered under its slug.
    """

    def __setattr__(cls, name: str, value: Any) -> None:
        if _DEFINED not in cls.__dict__:
            # Still being defined: __pydantic_init_subclass__ does the rest.
            super().__setattr__(name, value)
            return
        if name == "block_type_slug":
            _check_slug(cls.__qualname__, value)
            before = cls.__dict__.get(name, _DEFINED)
            super().__setattr__(name, value)
            try:
                register_type(cls)  # type: ignore[arg-type]
            except BlockDefinitionError:
                if before is _DEFINED:
                    type.__delattr__(cls, name)
                else:
                    super().__setattr__(name, before)
                raise
            return
        super().__setattr__(name, value)
        if name == "events_enabled" or (
            type(value) is types.FunctionType and not name.startswith("_")
        ):
            _instrument(cls)  # type: ignore[arg-type]


def _check_slug(qualname: str, slug: Any) -> None:
    if not isinstance(slug, str) or not _SLUG.match(slug):
        raise BlockDefinitionError(
            f"{qualname}.block_type_slug must be lowercase words joined "
            f"by hyphens, such as 'my-block', not {slug!r}"
        )


def _instrument(cls: type[Block]) -> bool:
    """Install or remove the recording wrappers; return whether events are on."""
    enabled = bool(cls.events_enabled) and not EVENTS_OFF_AT_IMPORT
    instrument_class(cls, enabled=enabled, stop=BASE_CLASSES)
    return enabled


class Block(BaseModel, metaclass=BlockType):
    """Base class of every block: subclass it, declare fields, add methods.

    Every public method of a subclass (sync, ``async def``, generator, async
    generator) emits ``block.<slug>.<method>.started`` and then ``succeeded`` or
    ``failed`` events, tagged with the current flow run and task run. Secret
    fields (``pydantic.SecretStr``, :class:`~blocks.SecretDict`) are registered
    for redaction as soon as the block is built, so no event carries them.

    Class attributes:
        block_type_slug: The type's slug; the kebab-case class name by default.
        events_enabled: False installs no instrumentation on this class at all.

    Example:
        >>> from pydantic import SecretStr
        >>> from blocks import Block
        >>> class Warehouse(Block):
        ...     dsn: SecretStr
        ...     def query(self, sql: str) -> list[dict]: ...
        >>> Warehouse.block_type_slug
        'warehouse'
        >>> Warehouse(dsn="postgresql://etl:pa55@db/prod")
        Warehouse(dsn=SecretStr('**********'))
    """

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, arbitrary_types_allowed=True
    )

    block_type_slug: ClassVar[str] = "block"
    events_enabled: ClassVar[bool] = True
    __eventblocks_block__: ClassVar[bool] = True

    _document_id: UUID | None = PrivateAttr(default=None)
    _document_name: str | None = PrivateAttr(default=None)
    _event_source: tuple[int, SourceInfo] | None = PrivateAttr(default=None)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for reserved in sorted(EXCLUDED_NAMES):
            # A function (or classmethod, staticmethod, property) of that name
            # hides the document method; a descriptor written to keep it on the
            # class, like HttpEndpoint.delete, is allowed.
            if isinstance(
                cls.__dict__.get(reserved),
                types.FunctionType | classmethod | staticmethod | property,
            ):
                raise BlockDefinitionError(
                    f"{cls.__qualname__}.{reserved} cannot be defined: "
                    f"{reserved!r} is the document method Block.{reserved}; give "
                    "the block's method another name"
                )
        if "block_type_slug" not in cls.__dict__:
            cls.block_type_slug = kebab_case(cls.__name__)
        _check_slug(cls.__qualname__, cls.block_type_slug)
        register_type(cls)
        if _instrument(cls):
            ensure_configured()
        type.__setattr__(cls, _DEFINED, True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            # pydantic's message echoes input values, which may be secrets.
            raise BlockValidationError.from_pydantic(
                type(self).block_type_slug, exc
            ) from None

    def model_post_init(self, context: Any, /) -> None:
        # Every validated or constructed instance passes here: the constructor,
        # model_validate, model_validate_json, model_validate_strings,
        # model_construct, and a block nested in another's input.
        self._register_secrets()

    def _register_secrets(self) -> None:
        """Register every secret this block holds while it is alive."""
        register_held_secrets(self, type(self).block_type_slug, self)

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Validate ``obj`` into a block; errors never quote the input.

        Raises:
            BlockValidationError: A field is invalid; the message names it.
        """
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise BlockValidationError.from_pydantic(cls.block_type_slug, exc) from None

    @classmethod
    def model_validate_json(
        cls, json_data: str | bytes | bytearray, *args: Any, **kwargs: Any
    ) -> Self:
        """Validate JSON into a block; errors never quote the input.

        Raises:
            BlockValidationError: The JSON is invalid or a field is; the message
                names the field.
        """
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except ValidationError as exc:
            raise BlockValidationError.from_pydantic(cls.block_type_slug, exc) from None

    @classmethod
    def model_validate_strings(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Validate a mapping of strings into a block; errors never quote the input.

        Raises:
            BlockValidationError: A field is invalid; the message names it.
        """
        try:
            return super().model_validate_strings(obj, *args, **kwargs)
        except ValidationError as exc:
            raise BlockValidationError.from_pydantic(cls.block_type_slug, exc) from None

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Self:
        """Return a copy (``update`` replaces fields, unvalidated); its secrets,
        ``update``'s included, are registered."""
        copied = super().model_copy(update=update, deep=deep)
        copied._register_secrets()
        return copied

    def __copy__(self) -> Self:
        copied = super().__copy__()
        copied._register_secrets()
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        copied = super().__deepcopy__(memo)
        copied._register_secrets()
        return copied

    def __setstate__(self, state: dict[Any, Any]) -> None:
        # Unpickling (a block sent to a spawn worker) skips model_post_init.
        super().__setstate__(state)
        self._register_secrets()

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, value)
            return
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise BlockValidationError.from_pydantic(
                type(self).block_type_slug, exc
            ) from None
        register_held_secrets(
            self, type(self).block_type_slug, getattr(self, name, None), prefix=name
        )
        self._event_source = None

    # -- documents ---------------------------------------------------------------

    def save(
        self, name: str, overwrite: bool = False, *, store: DocumentStore | None = None
    ) -> UUID:
        """Save this block as the document ``name`` of its type; return its id.

        Secret fields are encrypted; nested blocks are saved as references to their
        own documents (an unsaved one is saved with this one, as
        ``<type>.<name>.<field>``). Afterwards this instance's events name the
        document. Emits ``block-document.saved``.

        Args:
            name: The document's name, unique within the block type.
            overwrite: Replace an existing document of that name.
            store: The database; by default ``EVENTBLOCKS_DATABASE_URL`` or the
                SQLite file in the eventblocks home.

        Raises:
            BlockExistsError: The name is taken and ``overwrite`` is False; nothing
                was written.
            ValueError: The name is empty, longer than 255 characters, padded with
                spaces, or contains ``/``, a control character or a lone surrogate.
            BlockStoreError: The database cannot be used.
        """
        from blocks._documents.operations import save_block

        return save_block(self, name, overwrite=overwrite, store=store)

    @classmethod
    def load(cls, name: str, *, store: DocumentStore | None = None) -> Self:
        """Load a saved document: ``Warehouse.load("prod")`` or
        ``Block.load("warehouse/prod")``. Emits ``block-document.loaded``.

        Raises:
            BlockNotFoundError: No such document (the message lists close names)
                or no class for its type.
            BlockValidationError: The stored data no longer fits the class; the
                message names the document and the fields.
            BlockDecryptionError: The encryption key is missing or not the one the
                document was saved with.
        """
        from blocks._documents.operations import load_document

        return load_document(cls, name, store)  # type: ignore[return-value]

    @classmethod
    def delete(cls, name: str, *, store: DocumentStore | None = None) -> None:
        """Delete a saved document: ``Warehouse.delete("prod")`` or
        ``Block.delete("warehouse/prod")``. Emits ``block-document.deleted``.

        Raises:
            BlockNotFoundError: No such document.
            BlockStoreError: Another document uses it as a nested block.
        """
        from blocks._documents.operations import delete_document

        delete_document(cls, name, store)

    @classmethod
    def list_documents(
        cls, *, store: DocumentStore | None = None
    ) -> list[DocumentInfo]:
        """Return the saved documents of this type (of every type, on ``Block``)."""
        from blocks._documents.operations import list_documents

        return list_documents(cls, store)

    # -- identity ----------------------------------------------------------------

    @property
    def document_id(self) -> UUID | None:
        """The id of the saved document this block was saved as or loaded from."""
        return self._document_id

    @property
    def document_name(self) -> str | None:
        """The name of the saved document, or None for an unsaved block."""
        return self._document_name

    def _set_document(
        self, document_id: UUID | None, name: str | None, *, fresh: bool = False
    ) -> None:
        """Record the document this instance is saved as or was loaded from.

        Args:
            document_id: The document's id, or None to forget it.
            name: The document's name.
            fresh: True for an instance just built from a document, which has made
                no call yet.
        """
        global _current_generation
        if (document_id, name) == (self._document_id, self._document_name):
            return
        if not fresh:
            # Events of calls made so far are built with the identity they had:
            # let the dispatcher build what is queued before the identity changes.
            # A dispatcher held up (a processor that hangs) costs this wait
            # once; later saves do not wait until it catches up.
            drain(timeout=_IDENTITY_DRAIN_TIMEOUT, unless_stuck=True)
        self._document_id = document_id
        self._document_name = name
        _current_generation = next(_identity_generation)

    def __eventblocks_source__(self) -> SourceInfo:
        """Describe this block for its events (cached until its identity changes)."""
        # The private-attribute dict directly: pydantic's attribute access for
        # private names costs microseconds, and this runs once per call.
        private = self.__pydantic_private__
        assert private is not None
        cached = private.get("_event_source")
        if cached is not None and cached[0] == _current_generation:
            return cached[1]  # type: ignore[no-any-return]
        info = self._build_event_source()
        private["_event_source"] = (_current_generation, info)
        return info

    def _build_event_source(self) -> SourceInfo:
        slug = type(self).block_type_slug
        if self._document_id is not None:
            resource = Resource(
                id=f"block-document.{self._document_id}",
                name=self._document_name,
                labels={"block-type": slug},
            )
        else:
            resource = Resource(id=f"block.{slug}", labels={"block-type": slug})
        related = [
            RelatedResource(
                id=f"block-type.{slug}", role="block-type", name=type(self).__name__
            )
        ]
        for field, nested in _nested_blocks(self):
            if nested.document_id is not None:
                related.append(
                    RelatedResource(
                        id=f"block-document.{nested.document_id}",
                        role="nested-block",
                        name=nested.document_name,
                        labels={
                            "field": field,
                            "block-type": type(nested).block_type_slug,
                        },
                    )
                )
        return SourceInfo(f"block.{slug}", resource, tuple(related))


def _nested_blocks(block: Block) -> list[tuple[str, Block]]:
    """Return ``(field, block)`` for every block held in the block's fields."""
    found: list[tuple[str, Block]] = []
    for name in type(block).model_fields:
        value = getattr(block, name, None)
        if isinstance(value, Block):
            found.append((name, value))
        elif isinstance(value, list | tuple):
            found.extend(
                (f"{name}[{i}]", item)
                for i, item in enumerate(value)
                if isinstance(item, Block)
            )
        elif isinstance(value, dict):
            found.extend(
                (f"{name}[{key!r}]", item)
                for key, item in value.items()
                if isinstance(item, Block)
            )
    return found


BASE_CLASSES: frozenset[type] = frozenset(Block.__mro__)
