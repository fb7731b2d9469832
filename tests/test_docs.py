"""Every Python code block in the docs and the README runs without error.

Each fenced ``python`` block runs as a program of its own, in a fresh interpreter,
so blocks must be complete. A block whose first line is the comment ``# not run``
is a fragment (a signature, code that needs a scheduler) and is skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = "# not run"
_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)")


@dataclass(frozen=True)
class Snippet:
    """One fenced Python block: where it is and its code."""

    path: Path
    line: int
    code: str

    @property
    def id(self) -> str:
        """The test id: the file relative to the repository, and the fence's line."""
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def closes(line: str, fence: str) -> bool:
    """Return True if ``line`` closes a block opened with ``fence``."""
    text = line.strip()
    return text.startswith(fence) and not text.strip(fence[0])


def extract_snippets(path: Path) -> list[Snippet]:
    """Return the fenced ``python`` blocks of a Markdown file, in order."""
    snippets: list[Snippet] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not closes(lines[i], fence):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line)
            i += 1
        i += 1
        if match["lang"] == "python":
            snippets.append(Snippet(path, start + 1, "\n".join(body) + "\n"))
    return snippets


SNIPPETS = [snippet for source in SOURCES for snippet in extract_snippets(source)]
RUNNABLE = [s for s in SNIPPETS if s.code.lstrip().splitlines()[0].strip() != NOT_RUN]


def clean_environment() -> dict[str, str]:
    """Return this process's environment without eventblocks or Prefect settings."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EVENTBLOCKS_", "PREFECT__", "AIRFLOW_CTX_"))
    }


def test_snippets_are_found() -> None:
    """The extractor finds the README's and the docs' Python blocks."""
    files = {s.path.name for s in SNIPPETS}
    assert {"README.md", "index.md", "events.md", "writing-blocks.md"} <= files


def test_fragments_are_few() -> None:
    """At most one block in five is a fragment marked ``# not run``."""
    skipped = len(SNIPPETS) - len(RUNNABLE)
    assert skipped * 5 <= len(SNIPPETS), [s.id for s in SNIPPETS if s not in RUNNABLE]


def test_extractor_handles_fences(tmp_path: Path) -> None:
    """Only python fences are extracted, with their line and their marker."""
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n```bash\necho hi\n```\n\n```python\nx = 1\n```\n\n"
        "- item\n\n  ```python\n  # not run\n  y = 2\n  ```\n",
        encoding="utf-8",
    )
    found = extract_snippets(page)
    assert [(s.line, s.code) for s in found] == [
        (7, "x = 1\n"),
        (13, "# not run\ny = 2\n"),
    ]


@pytest.mark.parametrize("snippet", RUNNABLE, ids=[s.id for s in RUNNABLE])
def test_snippet_runs(snippet: Snippet, tmp_path: Path) -> None:
    """The code block runs to completion in a fresh interpreter."""
    script = tmp_path / "snippet.py"
    script.write_text(snippet.code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=clean_environment(),
        check=False,
    )
    assert result.returncode == 0, (
        f"{snippet.id} failed:\n{result.stdout}\n{result.stderr}"
    )
