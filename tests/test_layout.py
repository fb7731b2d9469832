"""The source layout: packages per family, one seam between them, a complete wheel."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("blocks", "emitters")


def _sources(package: str) -> list[Path]:
    return sorted(
        p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts
    )


def _private_emitters_imports(path: Path) -> list[str]:
    """The private ``emitters`` modules that one source file imports, sorted."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "emitters" and any(p.startswith("_") for p in parts[1:2]):
                found.add(".".join(parts[:2]))
    return sorted(found)


def test_blocks_reaches_emitters_internals_only_through_the_sdk_seam() -> None:
    """No module of blocks imports a private emitters module other than _sdk."""
    offenders = {
        str(path.relative_to(ROOT)): bad
        for path in _sources("blocks")
        if (bad := [m for m in _private_emitters_imports(path) if m != "emitters._sdk"])
    }
    assert offenders == {}


def test_the_seam_check_sees_every_import_form(tmp_path: Path) -> None:
    """The seam check finds private imports in every spelling, and allows _sdk."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import emitters._redact\n"
        "from emitters._engine import prepare\n"
        "from emitters import _model\n"
        "from emitters._sdk import MASK\n"
        "from emitters.sql import SQLEventStore\n"
        "def f():\n    from emitters._pipeline.calls import call_wrapper\n"
    )
    assert _private_emitters_imports(sample) == [
        "emitters._engine",
        "emitters._model",
        "emitters._pipeline",
        "emitters._redact",
        "emitters._sdk",
    ]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_family_of_prefixed_modules_at_the_top(package: str) -> None:
    """No two top-level modules share a prefix, nor shadow a subpackage's name."""
    top = ROOT / package
    modules = [p.stem for p in top.glob("_*.py") if p.stem != "__init__"]
    packages = {
        p.name.lstrip("_") for p in top.iterdir() if (p / "__init__.py").exists()
    }
    prefixes = Counter(m.lstrip("_").split("_")[0] for m in modules if "_" in m[1:])
    families = {prefix for prefix, n in prefixes.items() if n > 1}
    shadowing = {m for m in modules if m[1:].split("_")[0] in packages and "_" in m[1:]}
    assert families == set()
    assert shadowing == set()


def _only_reexports(init: Path) -> list[str]:
    """Statements of an ``__init__.py`` that do more than re-export."""
    tree = ast.parse(init.read_text(encoding="utf-8"))
    extra: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [
            "__all__"
        ]:
            continue
        if isinstance(node, ast.Try) and all(
            isinstance(n, ast.Import | ast.ImportFrom) for n in node.body
        ):
            continue  # the check that names the extra to install
        text = ast.unparse(node)
        if (isinstance(node, ast.For | ast.Delete) and "__module__" in text) or (
            isinstance(node, ast.Delete) and text == "del _exported"
        ):
            continue  # the exported classes name this module as their home
        extra.append(text.splitlines()[0])
    return extra


@pytest.mark.parametrize(
    "init",
    [
        str(p.relative_to(ROOT))
        for package in PACKAGES
        for p in (ROOT / package).rglob("__init__.py")
    ],
)
def test_package_inits_only_reexport(init: str) -> None:
    """Each package's __init__.py re-exports; the code lives in its modules."""
    assert _only_reexports(ROOT / init) == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from a clean copy of the repository, as a user's
    install would (a build folder left in the work tree could hold stale modules)."""
    source = tmp_path_factory.mktemp("source") / "eventblocks"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            ".ci-venv",
            "build",
            "dist",
            "site",
            "__pycache__",
            "*.egg-info",
            ".mypy_cache",
            ".ruff_cache",
            ".pytest_cache",
        ),
    )
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"]
    subprocess.run(
        [*pip, "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("eventblocks-*.whl")
    return built


def test_the_wheel_ships_every_module_and_nothing_else(wheel: Path) -> None:
    """Every module of the source tree is in the wheel; top level is blocks and
    emitters, with the typing markers."""
    names = set(zipfile.ZipFile(wheel).namelist())
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"blocks", "emitters"}
    expected = {
        str(p.relative_to(ROOT)) for package in PACKAGES for p in _sources(package)
    }
    shipped = {n for n in names if n.endswith(".py")}
    assert expected - shipped == set()
    assert shipped - expected == set()
    assert {"blocks/py.typed", "emitters/py.typed"} <= names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert re.search(r"^eventblocks = blocks\._cli:main$", text, re.MULTILINE)
