"""Every docstring example in blocks and emitters runs and shows what it claims.

Each module of both packages is imported (all extras are installed for the tests,
so an optional dependency is no excuse for a module that does not import), and
each docstring with ``>>>`` examples runs as a test of its own. An example runs
in a namespace of its own, as a reader would type it: it imports what it uses,
and it does not inherit its module's imports or ``from __future__`` flags.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

from blocks import _registry

PACKAGES = ("blocks", "emitters")


def _modules() -> list[ModuleType]:
    """Every module of both packages, imported (``__main__`` would run the CLI)."""
    modules: list[ModuleType] = []
    for name in PACKAGES:
        package = importlib.import_module(name)
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            if info.name.rpartition(".")[2] != "__main__":
                modules.append(importlib.import_module(info.name))
    return modules


def _examples() -> list[doctest.DocTest]:
    """The docstrings with examples, each once (re-exports are found twice)."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    found: dict[str | None, doctest.DocTest] = {}
    for module in _modules():
        for test in finder.find(module):
            if test.examples:
                found.setdefault(test.docstring, test)
    return sorted(found.values(), key=lambda t: t.name)


EXAMPLES = _examples()


def test_every_module_imports_and_the_examples_are_found() -> None:
    """The walk imported both packages and found the examples of each."""
    names = {test.name.split(".")[0] for test in EXAMPLES}
    assert names == set(PACKAGES)
    assert len(EXAMPLES) >= 10


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """An example sees the SDK's own block types only (not those the test modules
    define), and the types it defines stay out of the other tests' registry."""
    own = {
        slug: cls
        for slug, cls in _registry._types.items()
        if cls.__module__.split(".")[0] == "blocks"
    }
    monkeypatch.setattr(_registry, "_types", own)


@pytest.mark.usefixtures("own_registry")
@pytest.mark.parametrize("test", EXAMPLES, ids=[t.name for t in EXAMPLES])
def test_docstring_example(test: doctest.DocTest) -> None:
    """The example's statements run and print exactly the output it shows."""
    test.globs = {"__name__": f"doctest_{test.name.replace('.', '_')}"}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=True)
    assert runner.failures == 0, "".join(report)
