"""``eventblocks create``: a document from ``--set`` values, a JSON file or prompts.

Text from the command line is typed by the field it is for: ``str`` (and secret,
path and string enum) fields take it as it is; other fields parse it as JSON first
and fall back to the text, so ``--set port=5432`` is a number and ``--set
when=2024-05-01`` a string that pydantic turns into a date. A field that holds a
block takes the ``slug/name`` of a saved document (or just its name, when the field
names one block type) and the new document refers to it.

A required field left out is asked for only when stdin is a terminal, with hidden
input for secrets; without one the command fails naming the field. Every secret
value given is registered for redaction first, so no error message can carry it.
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from blocks._block import Block
from blocks._cli.errors import CommandError, CommandUsageError
from blocks._cli.output import console, print_json
from blocks._cli.type_info import block_field_class, takes_text, type_label
from blocks._cli.types import unknown_type
from blocks._documents.operations import check_name, secret_fields
from blocks._documents.store import DocumentStore
from blocks._errors import BlockExistsError, BlockNotFoundError, BlockValidationError
from blocks._registry import block_class
from emitters import register_secret

__all__ = ["create", "parse_pairs", "prompt_missing"]


def parse_pairs(items: list[str]) -> dict[str, str]:
    """Split ``key=value`` options at the first ``=``; bad ones are usage errors."""
    pairs: dict[str, str] = {}
    for number, item in enumerate(items, start=1):
        key, sep, value = item.partition("=")
        key = key.strip()
        # Never quote the option itself: without '=' it may be a bare secret.
        if not sep:
            raise CommandUsageError(
                f"--set value {number} has no '='; expected KEY=VALUE, such as "
                "--set port=5432."
            )
        if not key:
            raise CommandUsageError(
                f"--set value {number} has no field name before '='."
            )
        if key in pairs:
            raise CommandUsageError(f"--set gives the field {key!r} more than once.")
        pairs[key] = value
    return pairs


def read_json_file(path: str) -> dict[str, Any]:
    """Return the JSON object in the file ``path`` (``-`` is stdin)."""
    if path == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandUsageError(
                f"--from-json cannot read {path!r}: {exc.strerror or exc}."
            ) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        # json's message gives the position only, never the content.
        raise CommandError(f"{path} is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise CommandError(
            f"{path} must hold a JSON object of field names and values, not a "
            f"{type(data).__name__}."
        )
    return data


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


class FieldValues:
    """Turns command-line text and JSON into field values for block type ``cls``."""

    def __init__(self, cls: type[Block], store: DocumentStore) -> None:
        self.cls = cls
        self.slug = cls.block_type_slug
        self.store = store
        self.secret_paths = secret_fields(cls)

    def is_secret(self, field: str) -> bool:
        """Return True if ``field`` is a secret or holds one."""
        return any(p == field or p.startswith(f"{field}.") for p in self.secret_paths)

    def check_field(self, key: str) -> None:
        """Raise ``BlockValidationError`` unless ``key`` names a field."""
        fields = list(self.cls.model_fields)
        if key in fields:
            return
        head = key.split(".", 1)[0]
        if "." in key and head in fields:
            why = (
                f"nested keys are not supported; set {head!r} whole, as JSON or as "
                "a document's slug/name"
            )
        else:
            close = difflib.get_close_matches(key, fields, n=1)
            why = (
                f"did you mean {close[0]!r}?"
                if close
                else "the fields are " + (", ".join(fields) or "none")
            )
        raise BlockValidationError(
            self.slug, [(key, f"there is no such field ({why})")]
        )

    def from_text(self, field: str, text: str) -> Any:
        """Return the value of ``field`` given as command-line text."""
        if self.is_secret(field):
            register_secret(text)
        annotation = self.cls.model_fields[field].annotation
        nested = block_field_class(annotation)
        if nested is not None and not text.lstrip().startswith("{"):
            return self.reference(field, text, nested)
        if takes_text(annotation):
            return text
        try:
            value = json.loads(text)
        except ValueError:
            return text
        if self.is_secret(field):
            register_secret(*_strings(value))
        return value

    def from_json(self, field: str, value: Any) -> Any:
        """Return the value of ``field`` given in a JSON file."""
        if self.is_secret(field):
            register_secret(*_strings(value))
        nested = block_field_class(self.cls.model_fields[field].annotation)
        if nested is not None and isinstance(value, str):
            return self.reference(field, value, nested)
        return value

    def reference(self, field: str, text: str, expected: type[Block]) -> Block:
        """Load the saved document ``text`` (``slug/name``) for a block field."""
        address = text
        if "/" not in text and expected is not Block:
            address = f"{expected.block_type_slug}/{text}"
        where = f"Field {field!r} of {self.slug}"
        try:
            nested = Block.load(address, store=self.store)
        except BlockValidationError:
            raise  # it names the nested document already
        except BlockNotFoundError as exc:
            raise BlockNotFoundError(f"{where}: {exc}") from None
        except ValueError as exc:  # not a slug/name address
            raise ValueError(f"{where}: {exc}") from None
        if not isinstance(nested, expected):
            raise BlockValidationError(
                self.slug,
                [
                    (
                        field,
                        f"expects a {expected.block_type_slug} document, not {address}",
                    )
                ],
            )
        return nested

    def prompt_label(self, field: str) -> str:
        """Return the prompt for ``field``: its name and what it takes."""
        annotation = self.cls.model_fields[field].annotation
        nested = block_field_class(annotation)
        if nested is not None and nested is not Block:
            return f"{field} (the name of a {nested.block_type_slug} document)"
        if nested is not None:
            return f"{field} (a document's slug/name)"
        secret = ", secret" if self.is_secret(field) else ""
        return f"{field} ({type_label(annotation)}{secret})"


def prompt_missing(values: FieldValues, missing: list[str]) -> dict[str, Any]:
    """Ask for each missing field on the terminal; secrets with hidden input."""
    answers: dict[str, Any] = {}
    for field in missing:
        text = typer.prompt(
            values.prompt_label(field),
            hide_input=values.is_secret(field),
            err=True,
        )
        answers[field] = values.from_text(field, text)
    return answers


def create(
    slug: Annotated[
        str,
        typer.Argument(metavar="SLUG", help="The block type's slug, e.g. warehouse."),
    ],
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The new document's name, e.g. prod.")
    ],
    set_values: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            metavar="KEY=VALUE",
            help="A field value; repeat for each field.",
        ),
    ] = None,
    from_json: Annotated[
        str | None,
        typer.Option(
            "--from-json",
            metavar="FILE",
            help="A JSON object of field values ('-' reads stdin).",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a document of that name.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the new document as JSON.")
    ] = False,
) -> None:
    """Save a new block document from --set values, a JSON file or prompts."""
    if set_values and from_json is not None:
        raise CommandUsageError(
            "Give field values with --set or --from-json, not both."
        )
    pairs = parse_pairs(set_values or [])
    data = read_json_file(from_json) if from_json is not None else {}
    check_name(name)
    store = DocumentStore()
    try:
        cls = block_class(slug, store)
    except BlockNotFoundError:
        if store.get_type(slug) is None:
            raise unknown_type(store, slug) from None
        raise  # stored, but its class cannot be imported here
    if not overwrite and store.get_document(slug, name) is not None:
        raise _exists(slug, name)
    values = FieldValues(cls, store)
    given: dict[str, Any] = {}
    for key, text in pairs.items():
        values.check_field(key)
        given[key] = values.from_text(key, text)
    for key, value in data.items():
        values.check_field(key)
        given[key] = values.from_json(key, value)
    missing = [
        field
        for field, info in cls.model_fields.items()
        if info.is_required() and field not in given
    ]
    if missing and sys.stdin.isatty():
        given.update(prompt_missing(values, missing))
    elif missing:
        raise CommandError(_missing_message(slug, missing))
    block = cls(**given)
    try:
        document_id = block.save(name, overwrite=overwrite, store=store)
    except BlockExistsError:
        raise _exists(slug, name) from None
    if json_output:
        print_json({"id": str(document_id), "address": f"{slug}/{name}"})
        return
    console().print(Text(f"Saved {slug}/{name} (id {document_id})."))


def _exists(slug: str, name: str) -> BlockExistsError:
    return BlockExistsError(
        f"A {slug} document named {name!r} exists already; pass --overwrite to "
        "replace it."
    )


def _missing_message(slug: str, missing: list[str]) -> str:
    names = ", ".join(repr(field) for field in missing)
    plural = "s" if len(missing) > 1 else ""
    example = f"--set {missing[0]}=VALUE"
    return (
        f"Missing required field{plural} {names} of {slug}, and no terminal to ask "
        f"on: pass {example} or --from-json FILE."
    )
