"""prefect-aws and prefect-sqlalchemy code, moved over with its imports changed.

Run it from the repository root (it needs the ``aws`` extra and moto's server, both
in the ``dev`` extra)::

    python examples/from_prefect.py

It starts a local S3 endpoint (moto's server on 127.0.0.1), then:

- assumes a role with ``AwsCredentials(assume_role_arn=...)`` and reaches S3 with
  ``get_client(client_type=ClientType.S3)``;
- uploads a report with ``ExtraArgs`` (content type, server-side encryption) and
  lists it by raw key prefix and with a JMESPath query;
- loads a SQLite table through ``SqlAlchemyConnector(connection_info=...)`` and
  runs 100 parameterised ``fetch_all`` calls on one connector, without
  ``reset_connections()``: each result gives its connection back when read.

The events go to the console; no secret appears in them.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from moto.server import ThreadedMotoServer

from blocks.aws import AwsCredentials, ClientType, S3Bucket
from blocks.sql import SqlAlchemyConnector
from emitters.testing import capture_events

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def main() -> None:
    """Run the S3 part, then the SQL part, and check what the events hold."""
    home = Path(tempfile.mkdtemp())
    os.environ.setdefault("EVENTBLOCKS_HOME", str(home))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        with capture_events() as events:
            credentials = AwsCredentials(
                aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                aws_secret_access_key=SECRET_KEY,
                region_name="us-east-1",
                assume_role_arn="arn:aws:iam::123456789012:role/reporter",
                aws_client_parameters={"endpoint_url": f"http://{host}:{port}"},
            )
            s3 = credentials.get_client(client_type=ClientType.S3)
            s3.create_bucket(Bucket="reports")
            bucket = S3Bucket(bucket_name="reports", credentials=credentials)
            report = home / "daily.csv"
            report.write_bytes(b"day,total\n2024-06-01,42\n")
            bucket.upload_from_path(
                report,
                "2024/daily-06-01.csv",
                ExtraArgs={"ContentType": "text/csv", "ServerSideEncryption": "AES256"},
            )
            head = s3.head_object(Bucket="reports", Key="2024/daily-06-01.csv")
            print("uploaded:", head["ContentType"], head["ServerSideEncryption"])
            print(
                "by prefix:",
                [o["Key"] for o in bucket.list_objects(prefix="2024/daily-")],
            )
            print("by query:", bucket.list_objects(jmespath_query="Contents[].Size"))
            credentials.close()

            database = home / "shop.db"
            with SqlAlchemyConnector(connection_info=f"sqlite:///{database}") as db:
                db.execute("CREATE TABLE customers (id INTEGER, name VARCHAR(20))")
                db.execute_many(
                    "INSERT INTO customers (id, name) VALUES (:id, :name)",
                    [{"id": i, "name": f"customer {i}"} for i in range(100)],
                )
                names = [
                    db.fetch_all("SELECT name FROM customers WHERE id = :id", {"id": i})
                    for i in range(100)
                ]
                print(
                    "fetched:",
                    len(names),
                    "results; held connections:",
                    db.get_engine().pool.checkedout(),
                )
        failed = [e.event for e in events if e.event.endswith(".failed")]
        assert not failed, failed
        assert all(SECRET_KEY not in e.model_dump_json() for e in events)
        role = [e for e in events if e.payload.get("assume_role_arn")]
        print("events:", len(events), "; naming the role:", len(role))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
