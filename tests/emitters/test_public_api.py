"""The public surface: curated ``__all__``, docstrings, distribution and layering."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import types
from pathlib import Path

import pytest

import emitters

ROOT = Path(emitters.__file__).resolve().parent.parent
PACKAGES = ["emitters", "blocks"]
IMPORTS_BLOCKS = re.compile(r"^\s*(import\s+blocks\b|from\s+blocks\b)", re.MULTILINE)


def _public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_sorted_and_unique(package: str) -> None:
    """The package's __all__ is sorted and has no duplicates."""
    module = importlib.import_module(package)
    names = list(module.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_exactly_the_public_names(package: str) -> None:
    """__all__ equals the set of public, non-module names in the package."""
    module = importlib.import_module(package)
    assert set(module.__all__) == _public_names(module)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_export_has_a_docstring(package: str) -> None:
    """Every object in __all__ carries its own non-empty docstring."""
    module = importlib.import_module(package)
    missing = [
        name
        for name in module.__all__
        if not (getattr(module, name).__doc__ or "").strip()
    ]
    assert missing == []


def test_emitters_exports_the_design_names() -> None:
    """The event layer exports the names its documentation promises."""
    promised = {
        "Event",
        "Resource",
        "RelatedResource",
        "emit_event",
        "flow_run",
        "task_run",
        "current_run",
        "configure",
        "flush",
        "shutdown",
        "stats",
        "Emitter",
        "MemoryEmitter",
        "ConsoleEmitter",
    }
    assert promised <= set(emitters.__all__)
    testing = importlib.import_module("emitters.testing")
    assert callable(testing.capture_events)
    assert (testing.capture_events.__doc__ or "").strip()


def test_distribution_top_level_names_are_blocks_and_emitters() -> None:
    """The installed eventblocks distribution provides exactly blocks and emitters."""
    dist = importlib.metadata.distribution("eventblocks")
    top_level = dist.read_text("top_level.txt")
    if top_level is not None:
        names = {line.strip() for line in top_level.splitlines() if line.strip()}
    else:  # a wheel without top_level.txt: derive the names from its files
        names = {
            f.parts[0].removesuffix(".py")
            for f in dist.files or ()
            if f.suffix == ".py"
            and ".." not in f.parts
            and "__editable__" not in str(f)
        }
    assert names == {"blocks", "emitters"}


def test_emitters_never_imports_blocks() -> None:
    """No emitters source file imports the blocks package."""
    pattern = IMPORTS_BLOCKS
    sources = sorted((ROOT / "emitters").rglob("*.py"))
    assert sources, "no emitters sources found"
    offenders = [
        str(path.relative_to(ROOT))
        for path in sources
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_import_scanner_would_catch_an_import_of_blocks() -> None:
    """The layering check's pattern matches the import forms it must forbid."""
    pattern = IMPORTS_BLOCKS
    assert pattern.search("import blocks\n")
    assert pattern.search("x = 1\n    from blocks._block import Block\n")
    assert pattern.search("from blocks import Block")
    assert not pattern.search("import blocksmith\nfrom emitters import x\n")


SUBMODULES = [
    "emitters.sql",
    "emitters.file",
    "emitters.http",
    "emitters.nats",
    "emitters.otel",
    "emitters.prefect",
    "emitters.testing",
    "blocks.system",
    "blocks.http",
    "blocks.sql",
    "blocks.aws",
]


@pytest.mark.parametrize("name", SUBMODULES)
def test_public_submodules_curate_a_documented_all(name: str) -> None:
    """Each public submodule has a sorted __all__ of documented names it defines."""
    module = importlib.import_module(name)
    names = list(module.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))
    undocumented = [n for n in names if not (getattr(module, n).__doc__ or "").strip()]
    assert undocumented == []


def test_the_design_sink_names_live_where_promised() -> None:
    """FileEmitter, SQLEventStore and HttpEmitter import from their own modules."""
    assert importlib.import_module("emitters.sql").SQLEventStore.__name__ == (
        "SQLEventStore"
    )
    assert importlib.import_module("emitters.file").FileEmitter.__name__ == (
        "FileEmitter"
    )
    assert importlib.import_module("emitters.http").HttpEmitter.__name__ == (
        "HttpEmitter"
    )
