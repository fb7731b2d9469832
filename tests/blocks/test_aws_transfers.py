"""S3Bucket's transfers against moto's threaded server on 127.0.0.1: multipart
objects, folders with nested paths, the progress bar, async twins, and the run
context in boto3's transfer threads."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from blocks import Block
from blocks.aws import AwsCredentials, S3Bucket
from emitters import Event, current_run, flow_run
from emitters.testing import capture_events

BUCKET = "raw-data"
MIB = 1024 * 1024
# boto3 moves objects from 8 MiB on in 8 MiB parts: this one goes in two.
BIG = 9 * MIB


@pytest.fixture(scope="module")
def big() -> bytes:
    """Nine MiB of random bytes."""
    return os.urandom(BIG)


@pytest.fixture
def bucket(
    clean_aws: None, make_credentials: Callable[..., AwsCredentials], moto_url: str
) -> Iterator[S3Bucket]:
    """The bucket raw-data on an emptied server, with its credentials."""
    with make_credentials(moto_url, aws_access_key_id="AKIATRANSFERS") as creds:
        creds.get_client("s3").create_bucket(Bucket=BUCKET)
        yield S3Bucket(bucket_name=BUCKET, credentials=creds)


def on_request(bucket: S3Bucket, operation: str, handler: Callable[[], None]) -> Any:
    """Call ``handler`` before each ``operation`` request of the bucket's client.

    Returns a function that unregisters it.
    """
    events = bucket.credentials.get_client("s3").meta.events
    name = f"before-send.s3.{operation}"

    def hook(**kwargs: Any) -> None:
        handler()

    events.register(name, hook)
    return lambda: events.unregister(name, hook)


def outcome(events: list[Event], prefix: str = "block.s3-bucket.") -> Event:
    """Return the single outcome event of the bucket's call."""
    [event] = [
        e
        for e in events
        if e.event.startswith(prefix) and not e.event.endswith(".started")
    ]
    return event


def make_tree(root: Path) -> dict[str, bytes]:
    """Write a small folder tree with nested paths; return relative path -> bytes."""
    files = {
        "a.txt": b"alpha\n",
        "sub/b.csv": b"id,total\n1,9.5\n",
        "sub/deeper/c.bin": os.urandom(70_000),
        "sub/deeper/empty.txt": b"",
    }
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    """Return relative path -> bytes for every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file()
    }


# -- multipart -------------------------------------------------------------------------


def test_large_objects_go_in_parts_both_ways(
    bucket: S3Bucket, big: bytes, tmp_path: Path
) -> None:
    """A 9 MiB write is a two-part upload; downloads return every byte."""
    parts: list[int] = []
    undo = on_request(bucket, "UploadPart", lambda: parts.append(1))
    try:
        with capture_events() as events:
            bucket.write_path("big.bin", big)
    finally:
        undo()
    assert len(parts) == 2
    head = bucket.credentials.get_client("s3").head_object(Bucket=BUCKET, Key="big.bin")
    assert head["ETag"].strip('"').endswith("-2")
    assert outcome(events).payload["bytes"] == BIG
    with capture_events() as events:
        path = bucket.download_object_to_path("big.bin", tmp_path / "big.bin")
    assert path.read_bytes() == big
    assert outcome(events).payload["bytes"] == BIG
    buffer = io.BytesIO()
    bucket.download_object_to_file_object("big.bin", buffer)
    assert buffer.getvalue() == big
    assert bucket.read_path("big.bin") == big


def test_large_uploads_from_files_and_streams(
    bucket: S3Bucket, big: bytes, tmp_path: Path, moto_url: str
) -> None:
    """upload_from_path, upload_from_file_object and stream_from move 9 MiB whole."""
    source = tmp_path / "big.bin"
    source.write_bytes(big)
    bucket.upload_from_path(source, "a.bin")
    bucket.upload_from_file_object(io.BytesIO(big), "b.bin")
    other = S3Bucket(bucket_name="copies", credentials=bucket.credentials)
    bucket.credentials.get_client("s3").create_bucket(Bucket="copies")
    with capture_events() as events:
        other.stream_from(bucket, "b.bin")
    assert outcome(events).payload["bytes"] == BIG
    for target, key in ((bucket, "a.bin"), (bucket, "b.bin"), (other, "b.bin")):
        assert target.read_path(key) == big
    with capture_events() as events:
        bucket.copy_object("a.bin", "c.bin")
    assert outcome(events).payload["bytes"] == BIG
    assert bucket.read_path("c.bin") == big


# -- the run context in transfer threads -----------------------------------------------


class Marker(Block):
    """A block that a botocore hook calls from a transfer thread."""

    def mark(self) -> str:
        """Return the current thread's name."""
        return threading.current_thread().name


def test_transfer_threads_keep_the_run_and_the_caller(
    bucket: S3Bucket, big: bytes
) -> None:
    """Code in boto3's transfer threads sees the flow run and the calling block."""
    seen: list[tuple[str | None, str]] = []
    marker = Marker()

    def record() -> None:
        run = current_run()
        seen.append((run.id if run else None, marker.mark()))

    undo = on_request(bucket, "UploadPart", record)
    try:
        with flow_run("nightly") as run, capture_events() as events:
            bucket.write_path("big.bin", big)
    finally:
        undo()
    assert len(seen) == 2
    assert all(run_id == run.id for run_id, _ in seen)
    assert all(name != threading.current_thread().name for _, name in seen)
    started = events[0]
    assert started.event == "block.s3-bucket.write_path.started"
    marks = [e for e in events if e.event == "block.marker.mark.started"]
    assert len(marks) == 2
    for event in marks:
        assert event.related_by_role("flow-run")[0].id == f"flow-run.{run.id}"
        assert event.related_by_role("caller")[0].id == f"event.{started.id}"


# -- folders ---------------------------------------------------------------------------


def test_folders_round_trip_with_nested_paths(bucket: S3Bucket, tmp_path: Path) -> None:
    """upload_from_folder then download_folder_to_path rebuild the same tree."""
    files = make_tree(tmp_path / "src")
    with capture_events() as events:
        prefix = bucket.upload_from_folder(tmp_path / "src", "backup/2024")
    assert prefix == "backup/2024/"
    keys = sorted(o["Key"] for o in bucket.list_objects("backup"))
    assert keys == sorted(f"backup/2024/{name}" for name in files)
    payload = outcome(events).payload
    assert payload == {
        "duration_ms": payload["duration_ms"],
        "bucket": BUCKET,
        "prefix": "backup/2024/",
        "bytes": sum(len(data) for data in files.values()),
        "objects": len(files),
    }
    bucket.write_path("backup/2024/marker/", b"")  # a folder marker: skipped
    with capture_events() as events:
        target = bucket.download_folder_to_path("backup/2024", tmp_path / "out")
    assert target == tmp_path / "out"
    assert read_tree(target) == files
    payload = outcome(events).payload
    assert payload["objects"] == len(files)
    assert payload["bytes"] == sum(len(data) for data in files.values())


def test_folder_defaults_use_bucket_folder_and_cwd(
    bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without destinations, uploads go to bucket_folder and downloads to cwd."""
    files = make_tree(tmp_path / "src")
    scoped = S3Bucket(
        bucket_name=BUCKET, credentials=bucket.credentials, bucket_folder="lake"
    )
    assert scoped.upload_from_folder(tmp_path / "src") == "lake/"
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert scoped.download_folder_to_path() == tmp_path / "cwd"
    assert read_tree(tmp_path / "cwd") == files


def test_folder_errors(bucket: S3Bucket, tmp_path: Path) -> None:
    """A missing local folder, and a key that would leave the target, are refused."""
    with pytest.raises(NotADirectoryError, match="no folder"):
        bucket.upload_from_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with capture_events() as events:
        assert bucket.upload_from_folder(tmp_path / "empty", "none") == "none/"
    assert outcome(events).payload["objects"] == 0
    bucket.write_path("in/ok.txt", b"ok")
    bucket.write_path("in/../escape.txt", b"x")
    with pytest.raises(ValueError, match="would leave the folder"):
        bucket.download_folder_to_path("in", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # checked before any download


def test_a_folder_upload_to_a_missing_bucket_names_the_key(
    bucket: S3Bucket, tmp_path: Path
) -> None:
    """The first failed file of a folder transfer names its key in the event."""
    make_tree(tmp_path / "src")
    ghost = S3Bucket(bucket_name="no-such-bucket", credentials=bucket.credentials)
    with capture_events() as events, pytest.raises(ClientError) as caught:
        ghost.upload_from_folder(tmp_path / "src", "up")
    assert "bucket 'no-such-bucket', key 'up/a.txt'" in str(caught.value)
    payload = outcome(events).payload
    assert payload["error_code"] == "NoSuchBucket"
    assert payload["prefix"] == "up/"
    assert payload["key"] == "up/a.txt"


def test_no_progress_bar_without_a_terminal(
    bucket: S3Bucket, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Folder transfers print nothing when stderr is not a terminal."""
    make_tree(tmp_path / "src")
    bucket.upload_from_folder(tmp_path / "src")
    bucket.download_folder_to_path("", tmp_path / "out")
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        """Claim to be a terminal."""
        return True


def test_a_progress_bar_on_a_terminal(
    bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal, folder transfers draw a bar counting bytes and files."""
    files = make_tree(tmp_path / "src")
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    bucket.upload_from_folder(tmp_path / "src", "up")
    uploaded = terminal.getvalue()
    bucket.download_folder_to_path("up", tmp_path / "out")
    drawn = terminal.getvalue()[len(uploaded) :]
    assert f"{len(files)}/{len(files)} files" in uploaded
    assert "s3://raw-data/up/" in uploaded
    assert f"{len(files)}/{len(files)} files" in drawn


# -- async twins -----------------------------------------------------------------------

TWINS: list[tuple[str, Callable[[Path], tuple[Any, ...]]]] = [
    ("read_path", lambda tmp: ("seed.txt",)),
    ("write_path", lambda tmp: ("w.txt", b"w")),
    ("list_objects", lambda tmp: ()),
    ("download_object_to_path", lambda tmp: ("seed.txt", tmp / "d.txt")),
    ("download_object_to_file_object", lambda tmp: ("seed.txt", io.BytesIO())),
    ("download_folder_to_path", lambda tmp: ("", tmp / "folder")),
    ("upload_from_path", lambda tmp: (tmp / "local.txt", "u.txt")),
    ("upload_from_file_object", lambda tmp: (io.BytesIO(b"f"), "f.txt")),
    ("upload_from_folder", lambda tmp: (tmp / "tree", "tree")),
    ("copy_object", lambda tmp: ("seed.txt", "copy.txt")),
    ("move_object", lambda tmp: ("seed.txt", "moved.txt")),
    ("delete_objects", lambda tmp: (["seed.txt"],)),
]


@pytest.mark.parametrize(("name", "arguments"), TWINS, ids=[n for n, _ in TWINS])
async def test_each_async_twin_runs_off_the_loop_in_the_run(
    name: str,
    arguments: Callable[[Path], tuple[Any, ...]],
    bucket: S3Bucket,
    tmp_path: Path,
) -> None:
    """Each twin does its work in another thread, with the run and its own events."""
    bucket.write_path("seed.txt", b"seed")
    (tmp_path / "local.txt").write_bytes(b"local")
    make_tree(tmp_path / "tree")
    loop_thread = threading.get_ident()
    threads: list[int] = []
    undo = on_request(bucket, "*", lambda: threads.append(threading.get_ident()))
    try:
        with flow_run("async-etl") as run, capture_events() as events:
            await getattr(bucket, f"a{name}")(*arguments(tmp_path))
    finally:
        undo()
    assert threads
    assert loop_thread not in threads
    bucket_events = [e.event for e in events if e.event.startswith("block.s3-bucket")]
    assert bucket_events == [
        f"block.s3-bucket.a{name}.started",
        f"block.s3-bucket.a{name}.succeeded",
    ]
    started = events[0]
    for event in events:
        assert event.related_by_role("flow-run")[0].id == f"flow-run.{run.id}"
    credentials_events = [e for e in events if e.event.startswith("block.aws-cred")]
    assert credentials_events
    for event in credentials_events:
        assert event.related_by_role("caller")[0].id == f"event.{started.id}"
    assert outcome(events).payload["bucket"] == BUCKET


async def test_astream_from_and_its_payload(bucket: S3Bucket) -> None:
    """astream_from copies from another bucket and records the source."""
    bucket.credentials.get_client("s3").create_bucket(Bucket="copies")
    other = S3Bucket(bucket_name="copies", credentials=bucket.credentials)
    bucket.write_path("s.txt", b"stream")
    with capture_events() as events:
        assert await other.astream_from(bucket, "s.txt") == "s.txt"
    payload = outcome(events).payload
    assert payload["source_bucket"] == BUCKET
    assert payload["bytes"] == 6
    assert other.read_path("s.txt") == b"stream"


async def test_the_loop_keeps_running_during_a_large_transfer(
    bucket: S3Bucket, big: bytes
) -> None:
    """Other tasks keep running while an async twin uploads 9 MiB."""
    ticks = 0
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    beat = asyncio.create_task(heartbeat())
    await bucket.awrite_path("big.bin", big)
    done.set()
    await beat
    assert ticks > 1


async def test_async_failures_match_the_sync_ones(bucket: S3Bucket) -> None:
    """An async twin raises botocore's exception and records its code."""
    with capture_events() as events, pytest.raises(ClientError) as caught:
        await bucket.aread_path("missing.csv")
    assert caught.value.response["Error"]["Code"] == "NoSuchKey"
    payload = outcome(events).payload
    assert payload["error_code"] == "NoSuchKey"
    assert payload["error"]["type"] == "botocore.errorfactory.NoSuchKey"
    assert payload["key"] == "missing.csv"


async def test_concurrent_twins_keep_their_own_payloads(bucket: S3Bucket) -> None:
    """Twins awaited together each record their own key and bytes."""
    for i in range(5):
        bucket.write_path(f"k{i}.txt", b"x" * (i + 1))
    with capture_events() as events:
        results = await asyncio.gather(
            *(bucket.aread_path(f"k{i}.txt") for i in range(5))
        )
    assert results == [b"x" * (i + 1) for i in range(5)]
    outcomes = [e for e in events if e.event == "block.s3-bucket.aread_path.succeeded"]
    assert sorted((e.payload["key"], e.payload["bytes"]) for e in outcomes) == [
        (f"k{i}.txt", i + 1) for i in range(5)
    ]
