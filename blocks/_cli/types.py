"""Block type commands: ``eventblocks register`` and ``eventblocks type ...``."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from blocks._block import Block
from blocks._cli.errors import CommandError, CommandUsageError
from blocks._cli.output import (
    JsonOption,
    cells,
    console,
    help_without_command,
    key_values,
    print_json,
    shown,
    table,
)
from blocks._cli.type_info import (
    class_description,
    describe_from_class,
    describe_from_schema,
    type_summary,
)
from blocks._documents.operations import delete_type, describe_type, store_type
from blocks._documents.store import DocumentStore, TypeRecord
from blocks._errors import BlockError, BlockNotFoundError
from blocks._registry import (
    block_class,
    class_path,
    entry_point_types,
    register_file,
    register_module,
    registered_types,
)

__all__ = ["register", "require_type", "type_app", "unknown_type"]

type_app = typer.Typer(
    name="type",
    help="List, inspect and delete the block types recorded in the database.",
    invoke_without_command=True,
)


@type_app.callback()
def _type_group(ctx: typer.Context) -> None:
    """List, inspect and delete the block types recorded in the database."""
    help_without_command(ctx)


def unknown_type(store: DocumentStore, slug: str) -> BlockNotFoundError:
    """Return the error for a type that is not stored, naming the closest slugs."""
    known = sorted({*registered_types(), *(t.slug for t in store.list_types())})
    close = difflib.get_close_matches(slug, known, n=3)
    if close:
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?"
    else:
        hint = " Register it first with 'eventblocks register -m MODULE'."
    return BlockNotFoundError(f"There is no block type {slug!r}.{hint}")


def require_type(store: DocumentStore, slug: str) -> TypeRecord:
    """Return the stored type ``slug``, or raise naming the closest slugs."""
    stored = store.get_type(slug)
    if stored is None:
        raise unknown_type(store, slug)
    return stored


def _import_types(
    module: str | None, file: Path | None
) -> tuple[str, list[type[Block]]]:
    source = f"module {module!r}" if module is not None else f"file {str(file)!r}"
    try:
        if module is not None:
            return source, register_module(module)
        assert file is not None
        return source, register_file(file)
    except BlockError:
        raise
    except Exception as exc:
        # The user's code failed while it ran: say where, keep the cause for --debug.
        raise CommandError(
            f"Running {source} failed: {type(exc).__name__}: {exc}"
        ) from exc


def register(
    module: Annotated[
        str | None,
        typer.Option(
            "--module",
            "-m",
            metavar="MODULE",
            help="Import this module, e.g. my_pkg.blocks.",
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", metavar="FILE", help="Run this Python file."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Record every block type that a module or a file defines."""
    if (module is None) == (file is None):
        raise CommandUsageError("Give exactly one of -m MODULE or -f FILE.")
    source, classes = _import_types(module, file)
    if not classes:
        raise CommandError(
            f"The {source} defines no Block subclass; nothing was registered."
        )
    store = DocumentStore()
    rows: list[dict[str, Any]] = []
    for cls in classes:
        store_type(cls, store)
        described = describe_type(cls)
        rows.append(
            {
                "slug": cls.block_type_slug,
                "name": cls.__name__,
                "class_path": class_path(cls),
                "checksum": described["checksum"],
                "capabilities": described["capabilities"],
            }
        )
    if json_output:
        print_json(rows)
        return
    out = console()
    out.print(Text(f"Registered {len(rows)} block type(s) from the {source}:"))
    grid = table("Slug", "Class", "Capabilities")
    for row in rows:
        grid.add_row(
            *cells(row["slug"], row["class_path"], ", ".join(row["capabilities"]))
        )
    out.print(grid)


def _builtin_summary(cls: type[Block]) -> dict[str, Any]:
    return {
        "slug": cls.block_type_slug,
        "name": cls.__name__,
        "class_path": class_path(cls),
        "description": class_description(cls),
        "documents": 0,
        "created": None,
        "updated": None,
    }


@type_app.command("ls")
def type_ls(json_output: JsonOption = False) -> None:
    """List the block types: the installed (built-in) ones and those recorded."""
    store = DocumentStore()
    installed = entry_point_types()
    rows: dict[str, dict[str, Any]] = {}
    for t in store.list_types():
        rows[t.slug] = {
            **type_summary(t, store.count_documents(t.slug)),
            "built_in": t.slug in installed,
            "registered": True,
        }
    for slug, cls in installed.items():
        if slug not in rows:
            rows[slug] = {
                **_builtin_summary(cls),
                "built_in": True,
                "registered": False,
            }
    listed = [rows[slug] for slug in sorted(rows)]
    if json_output:
        print_json(listed)
        return
    out = console()
    if not listed:
        out.print(
            "No block types are registered; add some with 'eventblocks register'."
        )
        return
    grid = table("Slug", "Class", "Documents", "Description")
    for row in listed:
        slug = row["slug"] + (" (built-in)" if row["built_in"] else "")
        grid.add_row(
            *cells(
                slug,
                row["class_path"],
                str(row["documents"]),
                row["description"],
            )
        )
    out.print(grid)


def _describe(store: DocumentStore, slug: str) -> dict[str, Any]:
    stored = store.get_type(slug)
    try:
        cls = block_class(slug, store)
    except BlockNotFoundError:
        if stored is None:
            raise unknown_type(store, slug) from None
        latest = store.latest_schema(slug)
        if latest is None:
            raise
        return describe_from_schema(stored, latest)
    latest = store.latest_schema(slug) if stored is not None else None
    return describe_from_class(cls, stored, latest)


@type_app.command("inspect")
def type_inspect(
    slug: Annotated[
        str,
        typer.Argument(metavar="SLUG", help="The block type's slug, e.g. warehouse."),
    ],
    json_output: JsonOption = False,
) -> None:
    """Show a block type's fields, secrets, capabilities and schema checksum."""
    store = DocumentStore()
    info = _describe(store, slug)
    info["documents"] = store.count_documents(slug) if info["registered"] else 0
    if json_output:
        print_json(info)
        return
    source = (
        "its class"
        if info["source"] == "class"
        else "the stored schema (the class cannot be imported here)"
    )
    checksum = info["checksum"]
    if info["stored_checksum"] not in (None, checksum):
        checksum += f" (stored: {info['stored_checksum']}; register it again)"
    elif not info["registered"]:
        checksum += " (not registered)"
    out = console()
    out.print(Text(f"Block type {info['slug']} ({info['name']})", style="bold"))
    out.print(
        key_values(
            [
                ("class", info["class_path"]),
                ("description", info["description"] or "-"),
                ("capabilities", ", ".join(info["capabilities"]) or "-"),
                ("checksum", checksum),
                ("documents", str(info["documents"])),
                ("described from", source),
            ]
        )
    )
    grid = table("Field", "Type", "Required", "Default", "Secret")
    for field in info["fields"]:
        kind = field["type"]
        if field["block_type"]:
            kind += f" (a {field['block_type']} document)"
        grid.add_row(
            *cells(
                field["name"],
                kind,
                "yes" if field["required"] else "no",
                "-" if field["required"] else shown(field["default"]),
                "yes" if field["secret"] else "",
            )
        )
    out.print(grid)


@type_app.command("delete")
def type_delete(
    slug: Annotated[str, typer.Argument(metavar="SLUG", help="The block type's slug.")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Delete the type's documents with it."),
    ] = False,
) -> None:
    """Delete a block type from the database (refused while it has documents)."""
    store = DocumentStore()
    require_type(store, slug)
    count = store.count_documents(slug)
    if count and not force:
        raise CommandError(
            f"Block type {slug!r} has {count} document(s); delete them first, or "
            "pass --force to delete them with the type."
        )
    deleted = delete_type(slug, store)
    suffix = f" and its {deleted} document(s)" if deleted else ""
    console().print(Text(f"Deleted block type {slug}{suffix}."))
