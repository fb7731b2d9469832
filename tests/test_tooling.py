"""CI runs the Makefile's targets, all of them; the pre-commit hooks download
nothing."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _make_all() -> list[str]:
    """The targets of the Makefile's ``all``, in order."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^all:(.*)$", text, re.MULTILINE)
    assert match is not None, "the Makefile has no 'all' target"
    return match[1].split()


def test_ci_runs_exactly_the_makefile_targets() -> None:
    """.ci/run loops over the targets of ``make all``, in the same order."""
    targets = _make_all()
    assert targets == ["lint", "format", "types", "tests", "docs", "wheel", "bench"]
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    loops = re.findall(r"^for target in (.*); do$", run, re.MULTILINE)
    assert [loop.split() for loop in loops] == [targets]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in targets:
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target


def test_pre_commit_hooks_are_local_and_use_the_venv() -> None:
    """Every hook is a local one run with the venv's ruff: nothing to download."""
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert {repo["repo"] for repo in config["repos"]} == {"local"}
    assert {hook["id"] for hook in hooks} == {"ruff-check", "ruff-format"}
    for hook in hooks:
        assert hook["language"] == "system"
        assert hook["entry"].startswith(".venv/bin/ruff ")
