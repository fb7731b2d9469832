"""The S3 story from the event store: a run's timeline shows the failed read_path,
and the credentials' side lists every run that used them; plus the example."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from blocks.aws import AwsCredentials, S3Bucket
from emitters import flow_run, flush
from emitters.sql import SQLEventStore

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def shop(
    clean_aws: None, make_credentials: Callable[..., AwsCredentials], moto_url: str
) -> Iterator[S3Bucket]:
    """The saved bucket s3-bucket/shop, on saved credentials aws-credentials/lake."""
    with make_credentials(moto_url, aws_access_key_id="AKIASTORY") as creds:
        creds.save("lake")
        creds.get_client("s3").create_bucket(Bucket="shop-data")
        S3Bucket(bucket_name="shop-data", credentials=creds).save("shop")
    bucket = S3Bucket.load("shop")
    with bucket.credentials:
        yield bucket


def daily(bucket: S3Bucket, day: str) -> str:
    """Run the story's flow for ``day``; return the run's id."""
    with flow_run("daily-orders") as run:
        try:
            data = bucket.read_path(f"orders/{day}.csv")
            bucket.write_path(f"reports/{day}.txt", str(len(data)).encode())
        except ClientError:
            pass
    return run.id


def test_the_failing_runs_timeline_shows_the_missing_key(
    shop: S3Bucket, store: SQLEventStore
) -> None:
    """The timeline's first failure is read_path, with botocore's type and the key."""
    shop.write_path("orders/2024-06-01.csv", b"id\n1\n")
    good = daily(shop, "2024-06-01")
    bad = daily(shop, "2024-06-02")
    flush()
    calls = store.timeline(bad)
    assert [(c.block, c.method, c.outcome) for c in calls] == [
        ("s3-bucket/shop", "read_path", "failed"),
        ("aws-credentials/lake", "get_client", "succeeded"),
    ]
    failed = calls[0]
    assert failed.error_type == "botocore.errorfactory.NoSuchKey"
    assert failed.error_message is not None
    assert "key 'orders/2024-06-02.csv'" in failed.error_message
    assert [c.outcome for c in store.timeline(good)] == ["succeeded"] * 4
    [event] = store.events(flow_run=bad, failed=True)
    assert event.payload["error_code"] == "NoSuchKey"
    assert event.payload["bucket"] == "shop-data"
    assert event.payload["key"] == "orders/2024-06-02.csv"


def test_the_credentials_side_lists_every_run(
    shop: S3Bucket, store: SQLEventStore
) -> None:
    """runs_for_block on the credentials counts the bucket's calls and failures."""
    shop.write_path("orders/2024-06-01.csv", b"id\n1\n")
    flush()
    good = daily(shop, "2024-06-01")
    bad = daily(shop, "2024-06-02")
    flush()
    runs = {
        r.flow_run_id: r
        for r in store.runs_for_block("aws-credentials/lake")
        if r.flow_run_id is not None
    }
    assert set(runs) == {good, bad}
    assert runs[good].failures == 0
    # Two bucket calls and the two get_client calls they made.
    assert runs[good].calls == 4
    assert runs[bad].calls == 2
    assert runs[bad].failures == 1
    assert runs[bad].last_error_type == "botocore.errorfactory.NoSuchKey"
    assert runs[bad].flow_run_name == "daily-orders"


def test_the_story_example_tells_it() -> None:
    """examples/s3_story.py ends with the failed read_path and both runs listed."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EVENTBLOCKS_", "AWS_"))
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "s3_story.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "daily-orders 2024-06-01: wrote reports/2024-06-01.json" in out
    timeline = out.split("Timeline of the failing run", 1)[1]
    assert ">> s3-bucket/shop         read_path" in timeline
    assert "botocore.errorfactory.NoSuchKey" in timeline
    assert (
        "First failed call: s3-bucket/shop read_path: NoSuchKey for "
        "s3://shop-data/orders/2024-06-02.csv"
    ) in out
    runs = out.split("Every run that used aws-credentials/lake:", 1)[1]
    assert "4 calls, no failure" in runs
    assert "2 calls, 1 failed (botocore.errorfactory.NoSuchKey)" in runs
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert secret not in out
    assert secret not in result.stderr
