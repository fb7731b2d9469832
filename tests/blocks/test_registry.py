"""The block type registry: slugs, redefinitions, entry points and stored paths."""

import importlib
import sys
import textwrap
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import blocks._registry
from blocks import (
    Block,
    BlockDefinitionError,
    BlockNotFoundError,
    DocumentStore,
    block_class,
    is_instrumented,
    register_file,
    registered_types,
)
from blocks._registry import class_path
from emitters.testing import capture_events


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Let each test add and remove types without touching the process's registry."""
    monkeypatch.setattr(blocks._registry, "_types", dict(blocks._registry._types))
    monkeypatch.setattr(
        blocks._registry, "_file_modules", dict(blocks._registry._file_modules)
    )
    modules_before = set(sys.modules)
    yield
    for name in set(sys.modules) - modules_before:
        if name.startswith(("regmod_", "fakepkg_", "eventblocks_file_")):
            del sys.modules[name]


def unique_slug(prefix: str) -> str:
    """Return a slug no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def write_module(path: Path, class_name: str, slug: str) -> Path:
    """Write a module defining one block class with ``slug`` and one field."""
    path.write_text(
        textwrap.dedent(
            f'''
            """A module with one block type, written by a test."""

            from typing import ClassVar

            from blocks import Block


            class {class_name}(Block):
                """A block type defined in a file."""

                block_type_slug: ClassVar[str] = {slug!r}

                host: str = "localhost"
                port: int = 5432
            '''
        ),
        encoding="utf-8",
    )
    return path


def test_slug_claimed_by_two_modules_names_both_classes(tmp_path: Path) -> None:
    """A second module claiming a slug raises BlockDefinitionError naming both."""
    slug = unique_slug("reg-clash")
    first = write_module(tmp_path / "first_types.py", "FirstThing", slug)
    second = write_module(tmp_path / "second_types.py", "SecondThing", slug)
    [registered] = register_file(first)

    with pytest.raises(BlockDefinitionError) as info:
        register_file(second)

    message = str(info.value)
    assert f"file:{first.resolve()}:FirstThing" in message
    assert f"file:{second.resolve()}:SecondThing" in message
    assert repr(slug) in message
    assert block_class(slug) is registered


def test_redefinition_in_the_same_module_replaces_the_class() -> None:
    """Defining a class again in the same module (a re-run cell) replaces it."""
    slug = unique_slug("reg-redefined")

    class Redefined(Block):
        block_type_slug: ClassVar[str] = slug
        host: str = "a"

    first = Redefined

    class Redefined(Block):  # type: ignore[no-redef]
        block_type_slug: ClassVar[str] = slug
        host: str = "b"
        port: int = 1

    assert Redefined is not first
    assert block_class(slug) is Redefined
    assert registered_types()[slug] is Redefined


def test_block_class_finds_a_type_through_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A type named in the eventblocks.blocks entry points is imported on demand."""
    write_module(tmp_path / "fakepkg_blocks.py", "FakeThing", "fake-thing")
    dist_info = tmp_path / "fakepkg-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fakepkg\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        "[eventblocks.blocks]\nthing = fakepkg_blocks\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(blocks._registry, "_entry_points_loaded", False)
    assert "fake-thing" not in registered_types()
    assert "fakepkg_blocks" not in sys.modules

    cls = block_class("fake-thing")

    assert cls.__module__ == "fakepkg_blocks"
    assert cls.__name__ == "FakeThing"
    assert cls(host="db").port == 5432


@pytest.mark.parametrize("how", ["module", "file"])
def test_block_class_imports_the_class_path_saved_with_the_type(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Block.load imports a type that is unknown here from its stored class path."""
    slug = unique_slug("reg-stored")
    module_name = f"regmod_{uuid.uuid4().hex[:10]}"
    path = write_module(tmp_path / f"{module_name}.py", "StoredThing", slug)
    if how == "module":
        monkeypatch.syspath_prepend(str(tmp_path))
        original = importlib.import_module(module_name).StoredThing
    else:
        [original] = register_file(path)
    store = DocumentStore(f"sqlite:///{tmp_path / 'store.db'}")
    document_id = original(host="db", port=6543).save("prod", store=store)
    # Forget the class, as a fresh process that never imported it would.
    del blocks._registry._types[slug]
    del sys.modules[original.__module__]
    assert slug not in registered_types()

    loaded = Block.load(f"{slug}/prod", store=store)

    cls = type(loaded)
    assert cls is not original
    assert cls.__name__ == "StoredThing"
    assert cls.block_type_slug == slug
    assert (loaded.host, loaded.port) == ("db", 6543)
    assert loaded.document_id == document_id
    assert registered_types()[slug] is cls


def test_stored_class_path_that_cannot_be_imported_is_a_clear_error(
    tmp_path: Path,
) -> None:
    """A stored type whose module is gone raises BlockNotFoundError naming it."""
    slug = unique_slug("reg-vanished")
    module_name = f"regmod_{uuid.uuid4().hex[:10]}"
    path = write_module(tmp_path / f"{module_name}.py", "GoneThing", slug)
    [original] = register_file(path)
    store = DocumentStore(f"sqlite:///{tmp_path / 'store.db'}")
    original().save("prod", store=store)
    del blocks._registry._types[slug]
    del sys.modules[original.__module__]
    path.unlink()

    with pytest.raises(BlockNotFoundError) as info:
        Block.load(f"{slug}/prod", store=store)

    message = str(info.value)
    assert f"file:{path.resolve()}:GoneThing" in message
    assert "eventblocks register" in message


def test_unknown_slug_lists_close_matches() -> None:
    """An unknown slug raises BlockNotFoundError suggesting registered slugs."""
    slug = unique_slug("reg-weather-station")

    class WeatherStation(Block):
        block_type_slug: ClassVar[str] = slug

    typo = slug.replace("weather", "waether")

    with pytest.raises(BlockNotFoundError) as info:
        block_class(typo)

    message = str(info.value)
    assert repr(typo) in message
    assert f"Did you mean {slug!r}" in message


def test_unknown_slug_suggests_types_stored_in_the_database(tmp_path: Path) -> None:
    """With a store, close matches include types only the database knows."""
    slug = unique_slug("reg-rain-gauge")
    [original] = register_file(write_module(tmp_path / "gauges.py", "Gauge", slug))
    store = DocumentStore(f"sqlite:///{tmp_path / 'store.db'}")
    original().save("prod", store=store)
    del blocks._registry._types[slug]
    typo = slug.replace("rain", "rian")

    with pytest.raises(BlockNotFoundError, match=f"Did you mean {slug!r}"):
        block_class(typo, store)


def recreate_by_value(module: str, name: str, attributes: dict[str, Any]) -> type:
    """Re-create a block class as cloudpickle does: an empty class of ``module``,
    then its attributes set one by one."""
    cls = types.new_class(
        name, (Block,), exec_body=lambda ns: ns.update(__module__=module)
    )
    for key, value in attributes.items():
        setattr(cls, key, value)
    return cls


def test_the_main_module_under_its_two_names_is_one_module() -> None:
    """A class of __mp_main__ and one of __main__ with one slug do not clash; the
    later one is the type, and its path names __main__."""
    slug = unique_slug("reg-main")
    spawned = recreate_by_value("__mp_main__", "Thing", {"block_type_slug": slug})
    by_value = recreate_by_value("__main__", "Thing", {"block_type_slug": slug})

    assert block_class(slug) is by_value
    assert class_path(spawned) == class_path(by_value) == "__main__:Thing"


def test_a_class_filled_in_after_its_definition_records_and_registers() -> None:
    """Methods and a slug set on a block class after its definition take effect:
    the methods record calls, the type moves to its slug."""
    slug = unique_slug("reg-late")

    def query(self: Any, sql: str) -> str:
        return sql

    cls = recreate_by_value(
        "__main__", "Late", {"block_type_slug": slug, "query": query}
    )

    assert block_class(slug) is cls
    assert [s for s, c in registered_types().items() if c is cls] == [slug]
    assert is_instrumented(cls.query)
    with capture_events() as events:
        assert cls().query("select 1") == "select 1"
    assert [e.event for e in events] == [
        f"block.{slug}.query.started",
        f"block.{slug}.query.succeeded",
    ]


def test_events_enabled_set_late_removes_the_recording() -> None:
    """events_enabled = False set after the definition uninstalls the wrappers."""

    def query(self: Any) -> None:
        return None

    cls = recreate_by_value(
        "__main__", "Quiet", {"block_type_slug": unique_slug("reg-quiet")}
    )
    cls.query = query  # type: ignore[attr-defined]
    assert is_instrumented(cls.query)  # type: ignore[attr-defined]
    cls.events_enabled = False  # type: ignore[attr-defined]
    assert not is_instrumented(cls.query)  # type: ignore[attr-defined]


def test_a_bad_slug_set_late_is_refused() -> None:
    """A block_type_slug set after the definition is checked like one in the body."""
    cls = recreate_by_value("__main__", "Odd", {})
    with pytest.raises(BlockDefinitionError, match="block_type_slug"):
        cls.block_type_slug = "Not A Slug"  # type: ignore[attr-defined]
    assert cls.block_type_slug == "odd"  # type: ignore[attr-defined]
    assert block_class("odd") is cls


def test_main_and_another_module_still_clash() -> None:
    """A __main__ class and a class of another module claiming its slug clash."""
    slug = unique_slug("reg-clash")
    recreate_by_value("__main__", "Thing", {"block_type_slug": slug})
    with pytest.raises(BlockDefinitionError, match="both claim"):
        recreate_by_value("regmod_other", "Thing", {"block_type_slug": slug})


def test_a_clashing_slug_set_late_is_refused_and_undone() -> None:
    """A slug set late that another module's type has raises and is not kept."""
    slug = unique_slug("reg-taken")
    recreate_by_value("regmod_owner", "Owner", {"block_type_slug": slug})
    cls = recreate_by_value("__main__", "Taker", {})
    with pytest.raises(BlockDefinitionError, match="both claim"):
        cls.block_type_slug = slug  # type: ignore[attr-defined]
    assert cls.block_type_slug == "taker"  # type: ignore[attr-defined]
    assert block_class("taker") is cls
