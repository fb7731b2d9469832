"""Document commands: ``eventblocks ls``, ``inspect`` and ``delete``.

``inspect`` reads the stored document as it is: secret values stay encrypted and
print as ``**********`` (so it needs neither the encryption key nor the class), and
references to nested documents print as their ``slug/name``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from blocks._block import Block
from blocks._cli.output import (
    JsonOption,
    cells,
    console,
    iso,
    key_values,
    print_json,
    shown,
    table,
    when,
)
from blocks._cli.types import require_type
from blocks._documents.operations import not_found_error, public_view, split_address
from blocks._documents.store import DocumentRecord, DocumentStore

__all__ = ["delete_document", "inspect_document", "list_documents"]

Address = Annotated[
    str, typer.Argument(metavar="SLUG/NAME", help="The document, e.g. warehouse/prod.")
]


def _summary(record: DocumentRecord) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "name": record.name,
        "block_type": record.block_type,
        "address": record.address,
        "created": iso(record.created),
        "updated": iso(record.updated),
    }


def list_documents(
    block_type: Annotated[
        str | None,
        typer.Option("--type", "-t", metavar="SLUG", help="Only this block type."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """List the saved block documents."""
    store = DocumentStore()
    if block_type is not None:
        require_type(store, block_type)
    records = store.list_documents(block_type)
    if json_output:
        print_json([_summary(r) for r in records])
        return
    out = console()
    if not records:
        where = f" of type {block_type}" if block_type else ""
        out.print(Text(f"There are no documents{where}."))
        return
    grid = table("Document", "Id", "Updated", whole=("Id",))
    for record in records:
        grid.add_row(*cells(record.address, str(record.id), when(record.updated)))
    out.print(grid)


def _find(store: DocumentStore, address: str) -> DocumentRecord:
    slug, name = split_address(address)
    require_type(store, slug)
    record = store.get_document(slug, name)
    if record is None:
        raise not_found_error(store, slug, name)
    return record


def inspect_document(address: Address, json_output: JsonOption = False) -> None:
    """Show a document's field values, with every secret masked."""
    store = DocumentStore()
    record = _find(store, address)
    fields, secret_fields, references = public_view(record, store)
    info = {
        **_summary(record),
        "schema_checksum": record.schema_checksum,
        "fields": fields,
        "secret_fields": secret_fields,
        "references": references,
    }
    if json_output:
        print_json(info)
        return
    out = console()
    out.print(Text(record.address, style="bold"))
    out.print(
        key_values(
            [
                ("id", str(record.id)),
                ("block type", record.block_type),
                ("schema", record.schema_checksum),
                ("created", when(record.created)),
                ("updated", when(record.updated)),
            ]
        )
    )
    grid = table("Field", "Value")
    for name, value in fields.items():
        note = " (document)" if name in references else ""
        grid.add_row(*cells(name, shown(value) + note))
    out.print(grid)


def delete_document(address: Address) -> None:
    """Delete a saved document (refused while another document uses it)."""
    store = DocumentStore()
    record = _find(store, address)
    Block.delete(record.address, store=store)  # emits block-document.deleted
    console().print(Text(f"Deleted {record.address}."))
