"""Every EVENTBLOCKS_* variable is read in the settings module and listed in docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from emitters import _settings

ROOT = Path(__file__).resolve().parents[2]
_VARIABLE = re.compile(r"EVENTBLOCKS_[A-Z_]+")
_READS = re.compile(r"os\.environ|os\.getenv|environ\.get|getenv\(")


def _sources() -> list[Path]:
    return sorted(
        [
            *ROOT.joinpath("blocks").rglob("*.py"),
            *ROOT.joinpath("emitters").rglob("*.py"),
        ]
    )


def test_only_the_settings_module_reads_eventblocks_variables() -> None:
    """No other module of the SDK reads the environment for an EVENTBLOCKS_* name."""
    offenders = []
    settings = ROOT / "emitters" / "_settings.py"
    for path in _sources():
        if path == settings:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if _READS.search(line) and "COLUMNS" not in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert offenders == []


def test_every_variable_is_documented_in_one_table() -> None:
    """The Configuration page lists exactly the variables the settings module reads."""
    code = set(_VARIABLE.findall(Path(_settings.__file__).read_text()))
    page = ROOT.joinpath("docs", "configuration.md").read_text()
    table = {
        match
        for line in page.splitlines()
        if line.startswith("| `EVENTBLOCKS_")
        for match in _VARIABLE.findall(line.split("|")[1])
    }
    assert code == table
    mentioned = set()
    for path in _sources():
        mentioned.update(_VARIABLE.findall(path.read_text()))
    assert mentioned <= table


def test_settings_read_the_environment_each_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Values are stripped, empty means unset, and defaults follow the home."""
    monkeypatch.setenv("EVENTBLOCKS_HOME", f"  {tmp_path}  ")
    monkeypatch.setenv("EVENTBLOCKS_DATABASE_URL", " ")
    monkeypatch.delenv("EVENTBLOCKS_FILE_PATH", raising=False)
    monkeypatch.delenv("EVENTBLOCKS_HTTP_SPOOL_DIR", raising=False)
    assert _settings.home() == tmp_path
    assert _settings.database_url() == f"sqlite:///{tmp_path / 'eventblocks.db'}"
    assert _settings.file_path() == tmp_path / "events.jsonl"
    assert _settings.http_spool_dir() == tmp_path / "spool"
    monkeypatch.setenv("EVENTBLOCKS_EVENTS", " OFF ")
    assert _settings.events_off()
    monkeypatch.setenv("EVENTBLOCKS_EVENTS", "on")
    assert not _settings.events_off()
    monkeypatch.delenv("EVENTBLOCKS_FLOW_RUN_ID", raising=False)
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "prefect-run")
    assert _settings.flow_run_id() == "prefect-run"
    monkeypatch.setenv("EVENTBLOCKS_FLOW_RUN_ID", "own-run")
    assert _settings.flow_run_id() == "own-run"
    monkeypatch.setenv("EVENTBLOCKS_EMITTERS", " console,file ")
    assert _settings.emitters_setting() == "console,file"
