"""The import rules that docs/architecture.md states hold in the source tree."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONNECTORS = ("blocks.system", "blocks.http", "blocks.sql", "blocks.aws")
SINKS = ("emitters.sql", "emitters.file", "emitters.http", "emitters.otel")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _graph(package: str) -> dict[str, set[str]]:
    """Module name -> the names it imports, for every module of ``package``."""
    return {
        _module_name(path): _imports(path)
        for path in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in packages)


def test_emitters_never_imports_blocks() -> None:
    """No module of emitters imports blocks, in any spelling."""
    offenders = {
        module: sorted(n for n in names if _within(n, ("blocks",)))
        for module, names in _graph("emitters").items()
    }
    assert {m: n for m, n in offenders.items() if n} == {}


def test_the_command_line_is_a_leaf() -> None:
    """Only the CLI itself and ``python -m blocks`` import blocks._cli."""
    importers = {
        module
        for module, names in _graph("blocks").items()
        if any(_within(n, ("blocks._cli",)) for n in names)
    }
    assert {m for m in importers if not _within(m, ("blocks._cli",))} == {
        "blocks.__main__"
    }


@pytest.mark.parametrize("connector", CONNECTORS)
def test_connectors_reach_neither_the_store_nor_the_cli(connector: str) -> None:
    """A connector builds on the block machinery, not on documents or the CLI."""
    graph = _graph("blocks")
    reached = {
        name
        for module, names in graph.items()
        if _within(module, (connector,))
        for name in names
        if _within(name, ("blocks._documents", "blocks._cli"))
    }
    assert reached == set()


def test_importing_the_packages_loads_no_sink_connector_or_cli() -> None:
    """``import emitters`` loads no sink package; ``import blocks`` no connector and
    not the CLI: each is imported only by the code that uses it."""
    code = (
        "import sys, emitters, blocks\n"
        "print('\\n'.join(m for m in sys.modules "
        "if m.startswith(('emitters', 'blocks'))))\n"
    )
    out = _python_output(code)
    assert "emitters._pipeline" in out  # the check sees what was loaded
    loaded = {m for m in out if _within(m, (*SINKS, *CONNECTORS, "blocks._cli"))}
    assert loaded == set()


def test_importing_emitters_alone_loads_no_database_library() -> None:
    """A program that only emits events (and sends them anywhere but a
    database) does not load SQLAlchemy, which the default database URL and the
    SQL event store load when they are first used."""
    code = (
        "import sys, emitters\n"
        "before = 'sqlalchemy' in sys.modules\n"
        "from emitters._settings import database_url\n"
        "database_url()\n"
        "print(before, 'sqlalchemy' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "EVENTBLOCKS_DATABASE_URL"}
    assert _python_output(code, env) == ["False", "True"]


def _python_output(code: str, env: dict[str, str] | None = None) -> list[str]:
    """The words a new interpreter prints running ``code`` in the project."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
        env=env,
    ).stdout.split()
