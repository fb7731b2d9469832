"""What ``eventblocks type inspect`` shows: a block type's fields and capabilities.

The description comes from the class when this process can import it, else from the
schema stored when the type was registered or last saved; both give the same JSON
shape, with ``source`` saying which one it is.
"""

from __future__ import annotations

import inspect
import types
from pathlib import PurePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from blocks._block import Block
from blocks._documents.operations import describe_type, secret_fields
from blocks._documents.store import SchemaRecord, TypeRecord
from blocks._registry import class_path
from emitters._sdk import MASK

__all__ = [
    "block_field_class",
    "class_description",
    "describe_from_class",
    "describe_from_schema",
    "takes_text",
    "type_label",
    "type_summary",
]

_TEXT_TYPES = (str, bytes, SecretStr, SecretBytes, PurePath)
_PLAIN_FACTORIES: tuple[type, ...] = (list, dict, set, tuple, frozenset)
_JSON_TYPES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "null": "None",
}


def _members(annotation: Any) -> list[Any]:
    """Return the members of a union (or the annotation alone), without Annotated."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _is_text(member: Any) -> bool:
    if get_origin(member) is Literal:
        return all(isinstance(arg, str) for arg in get_args(member))
    return isinstance(member, type) and issubclass(member, _TEXT_TYPES)


def takes_text(annotation: Any) -> bool:
    """Return True if a field of this type takes command-line text as it is.

    ``str``, ``SecretStr``, paths, string enums and string literals (optionally
    with None) do; for other types the text is parsed as JSON first, because
    ``5`` is meant as a number for an ``int`` field but as text for a ``str`` one.
    """
    members = [m for m in _members(annotation) if m is not type(None)]
    return bool(members) and all(_is_text(m) for m in members)


def block_field_class(annotation: Any) -> type[Block] | None:
    """Return the Block class a field holds (``Block`` for several), or None."""
    found = [
        m for m in _members(annotation) if isinstance(m, type) and issubclass(m, Block)
    ]
    if not found:
        return None
    return found[0] if len(found) == 1 else Block


def type_label(annotation: Any) -> str:
    """Return a readable spelling of a field's type: ``dict[str, int] | None``."""
    if annotation is None or annotation is type(None):
        return "None"
    origin = get_origin(annotation)
    if origin is Annotated:
        return type_label(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return " | ".join(type_label(arg) for arg in get_args(annotation))
    if origin is Literal:
        return f"Literal[{', '.join(repr(arg) for arg in get_args(annotation))}]"
    if origin is not None:
        args = ", ".join(type_label(arg) for arg in get_args(annotation))
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{args}]" if args else name
    if annotation is Any:
        return "Any"
    if isinstance(annotation, type):
        return annotation.__qualname__
    return str(annotation).replace("typing.", "")


def _default(info: FieldInfo, secret: bool) -> Any:
    if info.is_required():
        return None
    if secret:
        return MASK
    factory = info.default_factory
    if factory is not None:
        # Only the plain containers are called: a user's factory may have effects.
        if factory in _PLAIN_FACTORIES:
            return to_jsonable_python(factory())
        return f"<{getattr(factory, '__name__', 'factory')}()>"
    if info.default is PydanticUndefined:
        return None
    if isinstance(info.default, Block):
        return f"<{type(info.default).block_type_slug} block>"
    return to_jsonable_python(info.default, fallback=repr)


def class_description(cls: type) -> str:
    """Return the first paragraph of the class's own docstring, on one line."""
    # The class's own docstring only: inherited ones describe the base class.
    own = cls.__dict__.get("__doc__")
    doc = inspect.cleandoc(own) if isinstance(own, str) else ""
    return doc.split("\n\n", 1)[0].replace("\n", " ")


def describe_from_class(
    cls: type[Block], stored: TypeRecord | None, latest: SchemaRecord | None
) -> dict[str, Any]:
    """Describe block type ``cls`` from its class (the JSON of ``type inspect``)."""
    described = describe_type(cls)
    secrets = secret_fields(cls)
    fields = []
    for name, info in cls.model_fields.items():
        nested = block_field_class(info.annotation)
        fields.append(
            {
                "name": name,
                "type": type_label(info.annotation),
                "required": info.is_required(),
                "default": _default(info, name in secrets),
                "secret": name in secrets,
                "block_type": nested.block_type_slug
                if nested is not None and nested is not Block
                else None,
                "description": info.description,
            }
        )
    return {
        "slug": cls.block_type_slug,
        "name": cls.__name__,
        "class_path": class_path(cls),
        "description": class_description(cls),
        "source": "class",
        "registered": stored is not None,
        "checksum": described["checksum"],
        "stored_checksum": latest.checksum if latest is not None else None,
        "capabilities": described["capabilities"],
        "secret_fields": secrets,
        "fields": fields,
    }


def _schema_type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " | ".join(_schema_type(p) for p in prop["anyOf"])
    if "allOf" in prop and len(prop["allOf"]) == 1:
        return _schema_type(prop["allOf"][0])
    if "enum" in prop:
        return f"Literal[{', '.join(repr(v) for v in prop['enum'])}]"
    if "const" in prop:
        return f"Literal[{prop['const']!r}]"
    kind = prop.get("type")
    if kind == "string":
        return {"password": "SecretStr", "date-time": "datetime", "date": "date"}.get(
            str(prop.get("format")), "str"
        )
    if kind == "array":
        items = prop.get("items")
        return f"list[{_schema_type(items)}]" if isinstance(items, dict) else "list"
    if kind == "object":
        values = prop.get("additionalProperties")
        if isinstance(values, dict):
            return f"dict[str, {_schema_type(values)}]"
        return "dict"
    if isinstance(kind, str):
        return _JSON_TYPES.get(kind, kind)
    return "Any"


def describe_from_schema(stored: TypeRecord, latest: SchemaRecord) -> dict[str, Any]:
    """Describe a stored block type from its latest stored schema."""
    schema: dict[str, Any] = latest.fields.get("json_schema", {})
    secrets: list[str] = list(latest.fields.get("secret_fields", []))
    required = set(schema.get("required", []))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        secret = name in secrets
        default = None
        if name not in required:
            default = MASK if secret else prop.get("default")
        fields.append(
            {
                "name": name,
                "type": _schema_type(prop),
                "required": name in required,
                "default": default,
                "secret": secret,
                "block_type": None,
                "description": prop.get("description"),
            }
        )
    return {
        "slug": stored.slug,
        "name": stored.name,
        "class_path": stored.class_path,
        "description": _stored_description(stored),
        "source": "stored schema",
        "registered": True,
        "checksum": latest.checksum,
        "stored_checksum": latest.checksum,
        "capabilities": list(latest.capabilities),
        "secret_fields": secrets,
        "fields": fields,
    }


def _stored_description(stored: TypeRecord) -> str:
    # The stored description is inspect.getdoc(cls), which a class without a
    # docstring of its own inherits from Block: it describes the base, not the type.
    return "" if stored.description == class_description(Block) else stored.description


def type_summary(stored: TypeRecord, documents: int) -> dict[str, Any]:
    """Return one stored type as ``type ls --json`` lists it."""
    return {
        "slug": stored.slug,
        "name": stored.name,
        "class_path": stored.class_path,
        "description": _stored_description(stored),
        "documents": documents,
        "created": stored.created.isoformat(),
        "updated": stored.updated.isoformat(),
    }
