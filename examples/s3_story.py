"""A flow reads a file from S3, transforms it, writes another back; one day it fails.

Run it from the repository root (it needs the ``aws`` extra and moto's server, both
in the ``dev`` extra)::

    python examples/s3_story.py

The script starts a local S3 endpoint (moto's server on 127.0.0.1), saves an
``AwsCredentials`` document and an ``S3Bucket`` document that uses it, and runs
the flow ``daily-orders`` twice: for June 1st, whose orders file is there, and for
June 2nd, whose file never arrived. Events go to the SQL event store in a
temporary eventblocks home. Then it answers the two questions from the store:

- from the failing run's side, its timeline: which calls it made, in order, and
  that ``read_path`` failed on a missing key;
- from the credentials' side, every run that used them, and which one failed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile

from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from blocks.aws import AwsClientParameters, AwsCredentials, S3Bucket
from emitters import configure, flow_run, flush
from emitters.sql import CallRecord, SQLEventStore

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ORDERS = b"order_id,total\n1001,19.90\n1002,5.00\n1003,42.10\n"


def daily_orders(bucket: S3Bucket, day: str) -> str:
    """The flow: read the day's orders, total them, write the report back."""
    rows = bucket.read_path(f"orders/{day}.csv").decode().splitlines()[1:]
    totals = [float(row.split(",")[1]) for row in rows]
    report = {"day": day, "orders": len(totals), "revenue": round(sum(totals), 2)}
    return bucket.write_path(f"reports/{day}.json", json.dumps(report).encode())


def run_flow(bucket: S3Bucket, day: str) -> str:
    """Run the flow for ``day`` in its own flow run; return the run's id."""
    with flow_run("daily-orders", labels={"day": day}) as run:
        try:
            key = daily_orders(bucket, day)
            print(f"daily-orders {day}: wrote {key}")
        except ClientError as exc:
            print(f"daily-orders {day}: FAILED\n  {type(exc).__name__}: {exc}")
    return run.id


def timeline_line(call: CallRecord, first_failure: bool) -> str:
    """One line of a run's timeline; the first failed call stands out."""
    mark = ">>" if first_failure else "  "
    duration = f"{call.duration_ms:8.1f} ms" if call.duration_ms is not None else ""
    line = f"{mark} {call.block:<22} {call.method:<12} {duration}  {call.outcome}"
    if call.outcome == "failed":
        line += f"\n{'':<4}{call.error_type}: {call.error_message}"
    return line


def main() -> int:
    """Tell the story; return the exit status."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    home = tempfile.TemporaryDirectory()
    os.environ["EVENTBLOCKS_HOME"] = home.name
    store = SQLEventStore()  # the home database
    configure(emitters=[store])
    try:
        credentials = AwsCredentials(
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key=SECRET_KEY,
            region_name="eu-west-1",
            aws_client_parameters=AwsClientParameters(
                endpoint_url=f"http://{host}:{port}"
            ),
        )
        credentials.save("lake")
        client = credentials.get_client("s3")
        client.create_bucket(
            Bucket="shop-data",
            CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
        )
        client.put_object(Bucket="shop-data", Key="orders/2024-06-01.csv", Body=ORDERS)
        S3Bucket(bucket_name="shop-data", credentials=credentials).save("shop")

        bucket = S3Bucket.load("shop")  # as a deployed flow would
        good = run_flow(bucket, "2024-06-01")
        bad = run_flow(bucket, "2024-06-02")
        flush()

        lines = [f"\nTimeline of the failing run {bad}:"]
        calls = store.timeline(bad)
        first = next(c for c in calls if c.outcome == "failed")
        lines += [timeline_line(call, call is first) for call in calls]
        [failed] = store.events(flow_run=bad, failed=True)
        detail = failed.payload
        lines.append(
            f"\nFirst failed call: {first.block} {first.method}: "
            f"{detail['error_code']} for s3://{detail['bucket']}/{detail['key']}"
        )

        lines.append("\nEvery run that used aws-credentials/lake:")
        for use in store.runs_for_block("aws-credentials/lake"):
            if use.flow_run_id is None:
                continue  # the set-up above, outside any flow run
            outcome = f"{use.failures} failed ({use.last_error_type})"
            lines.append(
                f"  {use.flow_run_name} {use.flow_run_id}: {use.calls} calls, "
                f"{outcome if use.failures else 'no failure'}"
            )
        print("\n".join(lines))
        bucket.credentials.close()
        credentials.close()

        events = store.events(limit=1000)
        leaked = [e for e in events if SECRET_KEY in e.model_dump_json()]
        if leaked or any(SECRET_KEY in line for line in lines):
            print("The secret key leaked.", file=sys.stderr)
            return 1
        if first.method != "read_path" or good == bad:
            print("The story did not go as told.", file=sys.stderr)
            return 1
        return 0
    finally:
        configure()
        server.stop()
        home.cleanup()


if __name__ == "__main__":
    sys.exit(main())
