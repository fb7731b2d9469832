"""Sink plug-ins: names found through entry points, and the declared capabilities."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from blocks import Block
from emitters import Emitter, Event, MemoryEmitter, configure, flow_run, flush
from emitters._emitter import LiveCall, LiveCallHook
from emitters._pipeline import pipeline
from emitters._pipeline.record import (
    KIND_CALL,
    Call,
    call_method,
    call_otel_context,
    call_run,
    call_source,
    new_call,
)

PLUGIN = '''
import json, os
from emitters import Emitter

class Recorder(Emitter):
    """Appends each event name to the file named by RECORDER_PATH."""

    def emit_batch(self, events):
        with open(os.environ["RECORDER_PATH"], "a") as out:
            for event in events:
                out.write(json.dumps(event.event) + "\\n")

def not_a_sink():
    return object()
'''

ENTRY_POINTS = """
[eventblocks.emitters]
recorder = acme_sink:Recorder
bogus = acme_sink:not_a_sink
broken = acme_sink_missing:Sink
"""

SCRIPT = """
from emitters import emit_event, flush, stats
emit_event("acme.step", {"id": "acme.1"})
assert flush(10)
print(sorted(stats()["delivered"]))
"""


@pytest.fixture
def third_party(tmp_path: Path) -> Path:
    """A third-party package installed as a real distribution: module + dist-info."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "acme_sink.py").write_text(PLUGIN)
    info = site / "acme_sink-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-sink\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return site


def _run(site: Path, names: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), *sys.path]),
        "EVENTBLOCKS_EMITTERS": names,
        "RECORDER_PATH": str(tmp_path / "recorded.txt"),
    }
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_third_party_sink_is_named_in_the_environment(
    third_party: Path, tmp_path: Path
) -> None:
    """A package that declares an eventblocks.emitters entry point adds a name."""
    done = _run(third_party, "recorder,console", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['ConsoleEmitter', 'Recorder']"
    lines = (tmp_path / "recorded.txt").read_text().splitlines()
    assert [json.loads(line) for line in lines] == ["acme.step"]


def test_a_plugin_that_cannot_be_made_is_skipped_with_a_warning(
    third_party: Path, tmp_path: Path
) -> None:
    """A factory that fails to import, or returns no Emitter, is named and skipped."""
    done = _run(third_party, "broken,bogus,console", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['ConsoleEmitter']"
    assert "'broken', which cannot be used: No module named 'acme_sink_missing'" in (
        done.stderr
    )
    assert "'bogus', whose factory acme_sink:not_a_sink returned object" in done.stderr


def test_the_built_in_sinks_are_entry_points() -> None:
    """eventblocks declares its own sinks in the same group a plug-in uses."""
    found = pipeline.sink_factories()
    assert {"sql", "console", "file", "http", "otel"} <= set(found)
    assert found["sql"].value == "emitters.sql:SQLEventStore"


class PluginProbe(Block):
    """A block whose calls the tests observe."""

    def query(self, sql: str) -> str:
        if sql == "boom":
            raise ValueError("no such table")
        return sql

    async def aquery(self, sql: str) -> str:
        return sql


class _Seen:
    def __init__(self) -> None:
        self.started: list[tuple[str, int, bool]] = []
        self.ended: list[tuple[tuple[str, str] | None, int]] = []


class _LiveEnd:
    def __init__(self, seen: _Seen) -> None:
        self.seen = seen

    def end(
        self, error: tuple[str, str] | None, extra: Mapping[str, Any] | None
    ) -> None:
        self.seen.ended.append((error, threading.get_ident()))


class _Hook:
    def __init__(self, seen: _Seen) -> None:
        self.seen = seen

    def start(self, call: Call, current: bool) -> LiveCall | None:
        self.seen.started.append((call_method(call), threading.get_ident(), current))
        return _LiveEnd(self.seen)


class LiveSink(MemoryEmitter):
    """A sink that declares the live-calls capability."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = _Seen()

    def live_calls(self) -> LiveCallHook | None:
        return _Hook(self.seen)


def test_live_calls_are_seen_on_the_callers_thread() -> None:
    """A sink's live_calls() hook sees each call start and end in the caller."""
    sink = LiveSink()
    configure(emitters=[sink])
    me = threading.get_ident()
    PluginProbe().query("select 1")
    with pytest.raises(ValueError, match="no such table"):
        PluginProbe().query("boom")
    assert flush(10)
    assert sink.seen.started == [("query", me, True), ("query", me, True)]
    assert sink.seen.ended == [(None, me), (("ValueError", "no such table"), me)]
    assert [e.event for e in sink.events][-1] == "block.plugin-probe.query.failed"


def test_a_sink_without_the_capability_sees_no_live_calls() -> None:
    """By default an Emitter declares neither capability."""
    sink = MemoryEmitter()
    assert sink.live_calls() is None
    assert Emitter.join_batches_up_to == 0
    configure(emitters=[sink])
    assert pipeline.STATE.live is None


def test_objects_that_are_not_emitters_are_refused() -> None:
    """configure names emit_batch and the Emitter base for a duck-typed sink."""

    class Duck:
        def emit_batch(self, events: Sequence[Event]) -> None:
            pass

    with pytest.raises(TypeError, match=r"emitters\.Emitter .*emit_batch"):
        configure(emitters=[Duck()])  # type: ignore[list-item]


async def test_every_wrapper_queues_the_one_call_layout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sync wrapper's written-out record has new_call's layout, as the async
    wrapper's does."""
    configure(emitters=[MemoryEmitter()])
    queued: list[Any] = []
    real = pipeline.STATE.append
    monkeypatch.setattr(
        pipeline.STATE, "append", lambda record: (queued.append(record), real(record))
    )
    block = PluginProbe()
    with flow_run("layout") as run:
        block.query("a")
        await block.aquery("b")
    calls = [r for r in queued if r[0] == KIND_CALL]
    assert len(calls) == 2
    reference = new_call(block, "query", None, None, None, 0)
    for call, method in zip(calls, ["query", "aquery"], strict=True):
        assert len(call) == len(reference)
        assert call_source(call) is block
        assert call_method(call) == method
        context = call_run(call)
        assert context is not None
        assert context.flow is not None
        assert context.flow.id == run.id
        assert call_otel_context(call) is None or isinstance(
            call_otel_context(call), Mapping
        )
    assert flush(10)
