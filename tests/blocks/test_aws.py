"""AwsCredentials and S3Bucket against moto's threaded server on 127.0.0.1: the
credentials, every object method, events, secrets and errors.

Folder transfers, multipart transfers, async twins and the run context in
transfer threads are in test_aws_transfers.py.
"""

from __future__ import annotations

import io
import re
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
)

from blocks import BlockValidationError, event_payload, is_instrumented
from blocks.aws import AwsClientParameters, AwsCredentials, S3Bucket
from emitters import Event, flow_run
from emitters.testing import capture_events

BUCKET = "raw-data"


# -- the server ----------------------------------------------------------------------

# Each test starts on an emptied server, with the machine's AWS settings hidden.
pytestmark = pytest.mark.usefixtures("clean_aws")


@pytest.fixture
def credentials(
    make_credentials: Callable[..., AwsCredentials], moto_url: str
) -> Iterator[AwsCredentials]:
    """Credentials for the server, their clients closed afterwards."""
    with make_credentials(moto_url) as creds:
        yield creds


@pytest.fixture
def bucket(credentials: AwsCredentials) -> S3Bucket:
    """The bucket raw-data, made on the server."""
    credentials.get_client("s3").create_bucket(Bucket=BUCKET)
    return S3Bucket(bucket_name=BUCKET, credentials=credentials)


def put(bucket: S3Bucket, key: str, body: bytes) -> None:
    """Store an object directly, without the block."""
    bucket.credentials.get_client("s3").put_object(
        Bucket=bucket.bucket_name, Key=key, Body=body
    )


def get(bucket: S3Bucket, key: str) -> bytes:
    """Read an object directly, without the block."""
    client = bucket.credentials.get_client("s3")
    body: bytes = client.get_object(Bucket=bucket.bucket_name, Key=key)["Body"].read()
    return body


def outcome(events: list[Event], prefix: str = "block.s3-bucket.") -> Event:
    """Return the single outcome event of the bucket's call."""
    [event] = [
        e
        for e in events
        if e.event.startswith(prefix) and not e.event.endswith(".started")
    ]
    return event


def nowhere(value: str, events: list[Event]) -> bool:
    """True if ``value`` appears in no event's JSON."""
    return all(value not in e.model_dump_json() for e in events)


def qualified(exc: BaseException) -> str:
    """The exception's class as the events name it."""
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


# -- the module ----------------------------------------------------------------------


def test_import_without_boto3_names_the_extra() -> None:
    """Importing blocks.aws without boto3 raises ImportError naming the extra."""
    code = (
        "import sys; sys.modules['boto3'] = None\n"
        "try:\n"
        "    import blocks.aws\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('imported')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "pip install 'eventblocks[aws]'" in out.stdout


def test_public_names_and_slugs() -> None:
    """The module exports its blocks under their contract slugs and module."""
    import blocks.aws

    assert blocks.aws.__all__ == [
        "AwsClientParameters",
        "AwsCredentials",
        "ClientType",
        "EcsTaskObserver",
        "MinIOCredentials",
        "S3Bucket",
    ]
    assert AwsCredentials.block_type_slug == "aws-credentials"
    assert blocks.aws.MinIOCredentials.block_type_slug == "minio-credentials"
    assert blocks.aws.MinIOCredentials.__module__ == "blocks.aws"
    assert is_instrumented(AwsCredentials.get_s3_client)
    assert is_instrumented(AwsCredentials.get_secrets_manager_client)
    assert S3Bucket.block_type_slug == "s3-bucket"
    assert S3Bucket.__module__ == "blocks.aws"
    assert is_instrumented(S3Bucket.read_path)
    assert is_instrumented(S3Bucket.aread_path)
    assert is_instrumented(AwsCredentials.get_client)
    assert not is_instrumented(AwsCredentials.close)


# -- credentials ---------------------------------------------------------------------


def test_secrets_never_show(
    make_credentials: Callable[..., AwsCredentials], moto_url: str
) -> None:
    """The secret key and token are masked in repr, dumps and every event."""
    secret, token = secrets.token_hex(16), secrets.token_hex(24)
    with (
        make_credentials(
            moto_url, aws_secret_access_key=secret, aws_session_token=token
        ) as creds,
        capture_events() as events,
    ):
        creds.get_client("s3").create_bucket(Bucket=BUCKET)
        s3 = S3Bucket(bucket_name=BUCKET, credentials=creds)
        s3.write_path("a.txt", b"a")
        with pytest.raises(ClientError) as caught:
            s3.read_path("missing.txt")
    for value in (secret, token):
        assert value not in repr(creds)
        assert value not in repr(s3)
        assert value not in creds.model_dump_json()
        assert value not in str(caught.value)
        assert nowhere(value, events)
    assert creds.aws_secret_access_key is not None
    assert creds.aws_secret_access_key.get_secret_value() == secret


def test_keys_go_in_pairs() -> None:
    """A key id without its secret (or the reverse) is invalid, with no echo."""
    secret = secrets.token_hex(16)
    with pytest.raises(BlockValidationError, match="go together") as caught:
        AwsCredentials(aws_secret_access_key=secret)
    assert secret not in str(caught.value)
    with pytest.raises(BlockValidationError, match="go together"):
        AwsCredentials(aws_access_key_id="AKIAEXAMPLE")
    with pytest.raises(BlockValidationError, match="aws_session_token needs"):
        AwsCredentials(aws_session_token=secrets.token_hex(8))


def test_client_parameters_are_checked() -> None:
    """endpoint_url must be http(s) without user info; config must fit botocore."""
    with pytest.raises(ValueError, match="http:// or https://"):
        AwsClientParameters(endpoint_url="127.0.0.1:9000")
    with pytest.raises(ValueError, match="user name or password"):
        AwsClientParameters(endpoint_url="http://user:pw@127.0.0.1:9000")
    with pytest.raises(ValueError, match=r"botocore\.config\.Config"):
        AwsClientParameters(config={"connect_timeoutt": 1})
    params = AwsClientParameters(
        endpoint_url="http://127.0.0.1:9000",
        verify=False,
        config={"connect_timeout": 2, "s3": {"addressing_style": "path"}},
    )
    kwargs = params.client_kwargs()
    assert kwargs["endpoint_url"] == "http://127.0.0.1:9000"
    assert kwargs["verify"] is False
    assert kwargs["config"].connect_timeout == 2


def test_get_client_is_made_once_and_shared_by_threads(
    credentials: AwsCredentials,
) -> None:
    """Threads asking at once for the s3 client all get the one same client."""
    barrier = threading.Barrier(8)
    clients: list[Any] = []

    def ask() -> None:
        barrier.wait()
        clients.append(credentials.get_client("s3"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(clients) == 8
    assert all(client is clients[0] for client in clients)
    assert credentials.get_client("s3") is clients[0]
    assert credentials.get_client("sts") is not clients[0]
    assert (
        clients[0].meta.endpoint_url == credentials.aws_client_parameters.endpoint_url
    )


def test_get_client_records_its_calls(credentials: AwsCredentials) -> None:
    """get_client emits its own events with the service, region and endpoint."""
    with capture_events() as events:
        credentials.get_client("s3")
    assert [e.event for e in events] == [
        "block.aws-credentials.get_client.started",
        "block.aws-credentials.get_client.succeeded",
    ]
    payload = events[1].payload
    assert payload["service"] == "s3"
    assert payload["region"] == "us-east-1"
    assert payload["endpoint_url"] == credentials.aws_client_parameters.endpoint_url


def test_changing_a_field_drops_the_clients(credentials: AwsCredentials) -> None:
    """A new region (or any field) makes later calls use a new client."""
    first = credentials.get_client("s3")
    credentials.region_name = "eu-west-1"
    second = credentials.get_client("s3")
    assert second is not first
    assert second.meta.region_name == "eu-west-1"


def test_get_boto3_session_carries_the_fields(credentials: AwsCredentials) -> None:
    """get_boto3_session returns a new session with these keys and region."""
    session = credentials.get_boto3_session()
    assert session is not credentials.get_boto3_session()
    found = session.get_credentials()
    assert found.access_key == credentials.aws_access_key_id
    assert credentials.aws_secret_access_key is not None
    assert found.secret_key == credentials.aws_secret_access_key.get_secret_value()
    assert session.region_name == "us-east-1"


def test_a_profile_is_read_from_the_config_files(moto_url: str, tmp_path: Path) -> None:
    """profile_name picks keys and region from the AWS files; a missing one fails."""
    key_id, secret = "AKIAPROFILE", secrets.token_hex(16)
    (tmp_path / "aws-config").write_text("[profile etl]\nregion = eu-central-1\n")
    (tmp_path / "aws-creds").write_text(
        f"[etl]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
    )
    creds = AwsCredentials(
        profile_name="etl",
        aws_client_parameters=AwsClientParameters(endpoint_url=moto_url),
    )
    with creds:
        session = creds.get_boto3_session()
        assert session.region_name == "eu-central-1"
        assert session.get_credentials().access_key == key_id
        creds.get_client("s3").create_bucket(
            Bucket=BUCKET,
            CreateBucketConfiguration={"LocationConstraint": "eu-central-1"},
        )
        assert S3Bucket(bucket_name=BUCKET, credentials=creds).list_objects() == []
    with pytest.raises(ProfileNotFound):
        AwsCredentials(profile_name="nope").get_client("s3")


def test_saved_credentials_keep_their_secrets_and_parameters(
    make_credentials: Callable[..., AwsCredentials], moto_url: str
) -> None:
    """Saved and loaded, the credentials are equal, secrets and options included."""
    creds = make_credentials(
        moto_url,
        aws_session_token=secrets.token_hex(8),
        aws_client_parameters=AwsClientParameters(
            endpoint_url=moto_url, config={"retries": {"max_attempts": 2}}
        ),
    )
    creds.save("lake")
    loaded = AwsCredentials.load("lake")
    assert loaded.model_dump() == creds.model_dump()
    assert loaded.aws_session_token is not None
    assert creds.aws_session_token is not None
    assert (
        loaded.aws_session_token.get_secret_value()
        == creds.aws_session_token.get_secret_value()
    )


# -- objects ---------------------------------------------------------------------------


def test_write_and_read_a_path(bucket: S3Bucket) -> None:
    """write_path stores bytes and read_path returns them; the events say so."""
    with capture_events() as events:
        key = bucket.write_path("orders/2024.csv", b"id,total\n1,9.5\n")
        data = bucket.read_path("orders/2024.csv")
    assert key == "orders/2024.csv"
    assert data == b"id,total\n1,9.5\n"
    assert get(bucket, "orders/2024.csv") == data
    names = [e.event for e in events]
    assert names == [
        "block.s3-bucket.write_path.started",
        "block.aws-credentials.get_client.started",
        "block.aws-credentials.get_client.succeeded",
        "block.s3-bucket.write_path.succeeded",
        "block.s3-bucket.read_path.started",
        "block.aws-credentials.get_client.started",
        "block.aws-credentials.get_client.succeeded",
        "block.s3-bucket.read_path.succeeded",
    ]
    for outcome_event in (events[3], events[7]):
        payload = outcome_event.payload
        assert payload["bucket"] == BUCKET
        assert payload["key"] == "orders/2024.csv"
        assert payload["bytes"] == len(data)
    caller = events[1].related_by_role("caller")[0]
    assert caller.id == f"event.{events[0].id}"


def test_bucket_folder_prefixes_every_key(credentials: AwsCredentials) -> None:
    """Paths are relative to bucket_folder, whose slashes do not matter."""
    credentials.get_client("s3").create_bucket(Bucket=BUCKET)
    s3 = S3Bucket(bucket_name=BUCKET, credentials=credentials, bucket_folder="/in/")
    assert s3.bucket_folder == "in"
    with capture_events() as events:
        key = s3.write_path("/a/b.txt", b"x")
    assert key == "in/a/b.txt"
    assert outcome(events).payload["key"] == "in/a/b.txt"
    assert [o["Key"] for o in s3.list_objects()] == ["in/a/b.txt"]
    assert s3.read_path("a/b.txt") == b"x"


def test_bad_paths_and_content_are_refused(bucket: S3Bucket) -> None:
    """An empty key, text content and a bad bucket name are clear errors."""
    with capture_events() as events, pytest.raises(ValueError, match="needs a key"):
        bucket.read_path("")
    payload = outcome(events).payload
    assert payload["bucket"] == BUCKET
    assert payload["error"]["type"] == "ValueError"
    assert "key" not in payload
    with pytest.raises(TypeError, match=r"content\.encode\(\)"):
        bucket.write_path("a.txt", "text")  # type: ignore[arg-type]
    with pytest.raises(BlockValidationError, match="bucket_name"):
        S3Bucket(bucket_name="raw/in")


def test_list_objects_folder_delimiter_and_limits(bucket: S3Bucket) -> None:
    """list_objects filters by folder, stops at a delimiter, pages and caps."""
    for key in ("in/a.csv", "in/b.csv", "in/sub/c.csv", "inbox/d.csv", "out/e.csv"):
        put(bucket, key, b"12345")
    with capture_events() as events:
        listed = bucket.list_objects("in")
    assert [o["Key"] for o in listed] == ["in/a.csv", "in/b.csv", "in/sub/c.csv"]
    assert listed[0]["Size"] == 5
    payload = outcome(events).payload
    assert payload["prefix"] == "in/"
    assert payload["objects"] == 3
    assert "bytes" not in payload
    shallow = bucket.list_objects("in", delimiter="/")
    assert [o["Key"] for o in shallow] == ["in/a.csv", "in/b.csv"]
    assert len(bucket.list_objects(page_size=1)) == 5
    assert len(bucket.list_objects(max_items=2)) == 2


def test_download_object_to_path(
    bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The object lands in the file given (folders made), or its name in cwd."""
    put(bucket, "in/orders.csv", b"a,b\n")
    with capture_events() as events:
        path = bucket.download_object_to_path("in/orders.csv", tmp_path / "x" / "o.csv")
    assert path == tmp_path / "x" / "o.csv"
    assert path.read_bytes() == b"a,b\n"
    assert outcome(events).payload["bytes"] == 4
    monkeypatch.chdir(tmp_path)
    assert bucket.download_object_to_path("in/orders.csv") == tmp_path / "orders.csv"
    assert (tmp_path / "orders.csv").read_bytes() == b"a,b\n"


def test_download_object_to_file_object(bucket: S3Bucket) -> None:
    """The object's bytes are written into the file object, which is returned."""
    put(bucket, "k.bin", bytes(range(256)))
    buffer = io.BytesIO()
    with capture_events() as events:
        returned = bucket.download_object_to_file_object("k.bin", buffer)
    assert returned is buffer
    assert buffer.getvalue() == bytes(range(256))
    assert outcome(events).payload["bytes"] == 256


def test_upload_from_path(bucket: S3Bucket, tmp_path: Path) -> None:
    """A local file is uploaded under its name or the path given."""
    source = tmp_path / "report.json"
    source.write_bytes(b'{"ok": true}')
    with capture_events() as events:
        assert bucket.upload_from_path(source) == "report.json"
    assert bucket.upload_from_path(source, "out/r.json") == "out/r.json"
    assert get(bucket, "out/r.json") == b'{"ok": true}'
    payload = outcome(events).payload
    assert payload["key"] == "report.json"
    assert payload["bytes"] == len(b'{"ok": true}')
    with pytest.raises(FileNotFoundError, match="no file at"):
        bucket.upload_from_path(tmp_path / "missing.json")


def test_upload_from_file_object(bucket: S3Bucket) -> None:
    """A file object's content is uploaded to the path given."""
    with capture_events() as events:
        key = bucket.upload_from_file_object(io.BytesIO(b"streamed"), "s.txt")
    assert key == "s.txt"
    assert get(bucket, "s.txt") == b"streamed"
    assert outcome(events).payload["bytes"] == 8


def test_copy_object_within_and_across_buckets(bucket: S3Bucket) -> None:
    """copy_object copies in place, to a bucket block's folder, or to a name."""
    put(bucket, "a.txt", b"copy me")
    client = bucket.credentials.get_client("s3")
    client.create_bucket(Bucket="archive")
    archive = S3Bucket(
        bucket_name="archive", credentials=bucket.credentials, bucket_folder="2024"
    )
    with capture_events() as events:
        assert bucket.copy_object("a.txt", "b.txt") == "b.txt"
    assert bucket.copy_object("a.txt", "c.txt", to_bucket=archive) == "2024/c.txt"
    assert bucket.copy_object("a.txt", "d.txt", to_bucket="archive") == "d.txt"
    assert get(bucket, "b.txt") == b"copy me"
    assert archive.read_path("c.txt") == b"copy me"
    assert client.get_object(Bucket="archive", Key="d.txt")["Body"].read() == b"copy me"
    payload = outcome(events).payload
    assert payload["key"] == "a.txt"
    assert payload["to_bucket"] == BUCKET
    assert payload["to_key"] == "b.txt"
    assert payload["bytes"] == 7
    assert get(bucket, "a.txt") == b"copy me"


def test_move_object_removes_the_original(bucket: S3Bucket) -> None:
    """move_object copies then deletes the source; onto itself is a ValueError."""
    put(bucket, "a.txt", b"move me")
    with capture_events() as events:
        assert bucket.move_object("a.txt", "done/a.txt") == "done/a.txt"
    assert [o["Key"] for o in bucket.list_objects()] == ["done/a.txt"]
    assert outcome(events).payload["to_key"] == "done/a.txt"
    with pytest.raises(ValueError, match="onto itself"):
        bucket.move_object("done/a.txt", "done/a.txt")
    assert get(bucket, "done/a.txt") == b"move me"


def test_delete_objects(bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    """delete_objects deletes in batches, missing keys included; one path is a
    TypeError."""
    from blocks.aws import _s3_ops

    monkeypatch.setattr(_s3_ops, "_DELETE_BATCH", 2)
    for name in ("a", "b", "c", "keep"):
        put(bucket, f"{name}.txt", b"x")
    with capture_events() as events:
        deleted = bucket.delete_objects(["a.txt", "b.txt", "c.txt", "ghost.txt"])
    assert deleted == ["a.txt", "b.txt", "c.txt", "ghost.txt"]
    assert [o["Key"] for o in bucket.list_objects()] == ["keep.txt"]
    payload = outcome(events).payload
    assert payload["objects"] == 4
    assert payload["keys"] == 4
    with pytest.raises(TypeError, match="list of paths"):
        bucket.delete_objects("keep.txt")
    assert bucket.delete_objects([]) == []


class RefusingStore(BaseHTTPRequestHandler):
    """An S3 endpoint whose DeleteObjects refuses every key under locked/.

    moto deletes whatever it is asked to, so this stand-in gives S3's answer to
    keys that a policy or an object lock protects.
    """

    def do_POST(self) -> None:
        """Answer DeleteObjects: an Error element for each locked key."""
        body = self.rfile.read(int(self.headers["Content-Length"]))
        keys = re.findall(r"<Key>([^<]+)</Key>", body.decode())
        errors = "".join(
            f"<Error><Key>{key}</Key><Code>AccessDenied</Code>"
            "<Message>Access Denied</Message></Error>"
            for key in keys
            if key.startswith("locked/")
        )
        reply = (
            '<?xml version="1.0" encoding="UTF-8"?><DeleteResult '
            f'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{errors}</DeleteResult>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""


def test_delete_objects_reports_refused_keys(
    make_credentials: Callable[..., AwsCredentials],
) -> None:
    """Keys S3 refuses raise a ClientError naming the first; the rest are deleted."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), RefusingStore)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        with make_credentials(endpoint) as creds, capture_events() as events:
            s3 = S3Bucket(bucket_name=BUCKET, credentials=creds)
            with pytest.raises(ClientError) as caught:
                s3.delete_objects(["a.txt", "locked/b.txt", "locked/c.txt", "d.txt"])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    exc = caught.value
    assert exc.response["Error"]["Code"] == "AccessDenied"
    assert "2 of 4 keys were not deleted" in str(exc)
    assert f"bucket '{BUCKET}', key 'locked/b.txt'" in str(exc)
    payload = outcome(events).payload
    assert payload["error"]["type"] == "botocore.exceptions.ClientError"
    assert payload["error_code"] == "AccessDenied"
    assert payload["key"] == "locked/b.txt"
    assert payload["objects"] == 2


def test_stream_from_another_bucket_and_store(
    make_credentials: Callable[..., AwsCredentials], bucket: S3Bucket, moto_url: str
) -> None:
    """stream_from copies an object from a bucket with other credentials."""
    with make_credentials(moto_url) as other:
        other.get_client("s3").create_bucket(Bucket="landing")
        source = S3Bucket(bucket_name="landing", credentials=other, bucket_folder="in")
        source.write_path("day/1.csv", b"1,2,3\n")
        with capture_events() as events:
            key = bucket.stream_from(source, "day/1.csv")
        assert bucket.stream_from(source, "day/1.csv", "copies/1.csv") == "copies/1.csv"
    assert key == "1.csv"
    assert get(bucket, "1.csv") == b"1,2,3\n"
    payload = outcome(events).payload
    assert payload["source_bucket"] == "landing"
    assert payload["source_key"] == "in/day/1.csv"
    assert payload["bytes"] == 6
    # Both credentials blocks made a client, each recorded as its own call.
    made = [e for e in events if e.event.endswith("get_client.succeeded")]
    assert len(made) == 2


# -- failures --------------------------------------------------------------------------


class ProbeBucket(S3Bucket):
    """A bucket whose own method records the outcome its payload hook sees."""

    block_type_slug: ClassVar[str] = "probe-bucket"
    seen: ClassVar[list[Any]] = []

    @event_payload(lambda args, outcome: ProbeBucket.seen.append(outcome))
    def fetch(self, path: str) -> bytes:
        """Read ``path``."""
        return self.read_path(path)


def test_a_missing_key_names_bucket_and_key(bucket: S3Bucket) -> None:
    """read_path on a missing key raises botocore's NoSuchKey, naming the key."""
    with capture_events() as events, pytest.raises(ClientError) as caught:
        bucket.read_path("in/missing.csv")
    exc = caught.value
    assert exc.response["Error"]["Code"] == "NoSuchKey"
    assert isinstance(exc, bucket.credentials.get_client("s3").exceptions.NoSuchKey)
    assert "NoSuchKey" in str(exc)
    assert f"bucket '{BUCKET}', key 'in/missing.csv'" in str(exc)
    event = outcome(events)
    assert event.event == "block.s3-bucket.read_path.failed"
    assert event.payload["error"] == {"type": qualified(exc), "message": str(exc)}
    assert event.payload["error"]["type"] == "botocore.errorfactory.NoSuchKey"
    assert event.payload["error_code"] == "NoSuchKey"
    assert event.payload["status_code"] == 404
    assert event.payload["key"] == "in/missing.csv"


def test_the_caller_gets_botocores_very_exception(credentials: AwsCredentials) -> None:
    """The exception the payload hook saw is the object the caller catches."""
    credentials.get_client("s3").create_bucket(Bucket=BUCKET)
    ProbeBucket.seen.clear()
    probe = ProbeBucket(bucket_name=BUCKET, credentials=credentials)
    with pytest.raises(ClientError) as caught:
        probe.fetch("missing")
    assert ProbeBucket.seen == [caught.value]
    assert ProbeBucket.seen[0] is caught.value


@pytest.mark.parametrize("method", ["download_object_to_path", "copy_object"])
def test_a_missing_key_behind_a_head_request_gets_its_code(
    method: str, bucket: S3Bucket, tmp_path: Path
) -> None:
    """Downloads and copies (HEAD first) still report NoSuchKey, not a bare 404."""
    target = (tmp_path / "x") if method.startswith("download") else "copy.txt"
    with capture_events() as events, pytest.raises(ClientError) as caught:
        getattr(bucket, method)("gone.txt", target)
    assert caught.value.response["Error"]["Code"] == "404"  # botocore's, untouched
    assert f"NoSuchKey: bucket '{BUCKET}', key 'gone.txt'" in str(caught.value)
    payload = outcome(events).payload
    assert payload["error_code"] == "NoSuchKey"
    assert payload["error"]["type"] == "botocore.exceptions.ClientError"
    assert not (tmp_path / "x").exists()


def test_a_missing_bucket_is_named(credentials: AwsCredentials, tmp_path: Path) -> None:
    """Reads, listings, uploads and downloads of a missing bucket say NoSuchBucket."""
    ghost = S3Bucket(bucket_name="no-such-bucket", credentials=credentials)
    source = tmp_path / "f.txt"
    source.write_bytes(b"f")
    calls = [
        lambda: ghost.read_path("a.txt"),
        lambda: ghost.list_objects("in"),
        lambda: ghost.upload_from_path(source),
        lambda: ghost.download_object_to_path("a.txt", tmp_path / "a.txt"),
    ]
    for call in calls:
        with capture_events() as events, pytest.raises(ClientError) as caught:
            call()
        assert "bucket 'no-such-bucket'" in str(caught.value)
        assert outcome(events).payload["error_code"] == "NoSuchBucket"


def test_an_unreachable_endpoint_is_named(
    make_credentials: Callable[..., AwsCredentials], tmp_path: Path
) -> None:
    """A refused connection raises EndpointConnectionError naming the endpoint."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    creds = make_credentials(
        endpoint,
        aws_client_parameters=AwsClientParameters(
            endpoint_url=endpoint,
            config={"connect_timeout": 1, "retries": {"max_attempts": 1}},
        ),
    )
    s3 = S3Bucket(bucket_name=BUCKET, credentials=creds)
    with creds, capture_events() as events:
        with pytest.raises(EndpointConnectionError) as caught:
            s3.read_path("a.txt")
        with pytest.raises(EndpointConnectionError):
            s3.upload_from_file_object(io.BytesIO(b"x"), "a.txt")
    message = str(caught.value)
    assert endpoint in message
    assert f"bucket '{BUCKET}', key 'a.txt'" in message
    failed = [e for e in events if e.event.endswith(".failed")]
    assert len(failed) == 2
    for event in failed:
        assert event.payload["error"]["type"] == (
            "botocore.exceptions.EndpointConnectionError"
        )
        assert event.payload["endpoint_url"].startswith(endpoint)
        assert "error_code" not in event.payload


def test_no_credentials_at_all_says_what_to_set(moto_url: str) -> None:
    """Without keys, profile or environment, the error names the fix."""
    creds = AwsCredentials(
        region_name="us-east-1",
        aws_client_parameters=AwsClientParameters(endpoint_url=moto_url),
    )
    s3 = S3Bucket(bucket_name=BUCKET, credentials=creds)
    with creds, capture_events() as events, pytest.raises(NoCredentialsError) as c:
        s3.read_path("a.txt")
    assert "aws_access_key_id" in str(c.value)
    assert "bucket 'raw-data', key 'a.txt'" in str(c.value)
    assert outcome(events).payload["error"]["type"] == (
        "botocore.exceptions.NoCredentialsError"
    )


# -- wrong credentials (moto's IAM authentication) -------------------------------------


@pytest.fixture
def iam_user(moto_url: str, credentials: AwsCredentials) -> Iterator[dict[str, str]]:
    """Turn moto's authentication on, with an IAM user allowed only to read.

    moto lets the first requests after ``/moto-api/reset-auth`` through unchecked:
    they make the bucket, the object, the user, its key and its policy.
    """
    httpx.post(f"{moto_url}/moto-api/reset-auth", content=b"6").raise_for_status()
    try:
        s3 = credentials.get_client("s3")
        iam = credentials.get_client("iam")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="a.txt", Body=b"a")
        iam.create_user(UserName="reader")
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        policy = (
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
            '"Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}]}'
        )
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=policy)
        iam.get_user(UserName="reader")  # the sixth: from here on, requests are checked
        yield {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        httpx.post(f"{moto_url}/moto-api/reset-auth", content=b"inf")


@pytest.mark.parametrize(
    ("which", "code"),
    [
        ("unknown key", "InvalidAccessKeyId"),
        ("wrong secret", "SignatureDoesNotMatch"),
    ],
)
def test_wrong_credentials_are_named_and_never_shown(
    make_credentials: Callable[..., AwsCredentials],
    which: str,
    code: str,
    iam_user: dict[str, str],
    moto_url: str,
    tmp_path: Path,
) -> None:
    """Refused keys raise ClientError with S3's code and a hint, no secret shown."""
    secret = secrets.token_hex(16)
    key_id = "AKIAUNKNOWN0000000" if which == "unknown key" else iam_user["id"]
    with make_credentials(
        moto_url, aws_access_key_id=key_id, aws_secret_access_key=secret
    ) as creds:
        creds.save("stale")
        s3 = S3Bucket(bucket_name=BUCKET, credentials=creds)
        with capture_events() as events:
            with pytest.raises(ClientError) as read:
                s3.read_path("a.txt")
            with pytest.raises(ClientError) as download:
                s3.download_object_to_path("a.txt", tmp_path / "a.txt")
    for caught in (read, download):
        message = str(caught.value)
        assert "aws-credentials/stale" in message
        assert f"bucket '{BUCKET}', key 'a.txt'" in message
        assert secret not in message
    assert read.value.response["Error"]["Code"] == code
    failed = [e for e in events if e.event.endswith(".failed")]
    assert [e.payload["error_code"] for e in failed] == [code, code]
    assert nowhere(secret, events)


def test_a_refused_action_is_access_denied(
    make_credentials: Callable[..., AwsCredentials],
    iam_user: dict[str, str],
    moto_url: str,
) -> None:
    """Valid keys without the right raise AccessDenied, and reading still works."""
    with make_credentials(
        moto_url,
        aws_access_key_id=iam_user["id"],
        aws_secret_access_key=iam_user["secret"],
    ) as creds:
        s3 = S3Bucket(bucket_name=BUCKET, credentials=creds)
        assert s3.read_path("a.txt") == b"a"
        with capture_events() as events, pytest.raises(ClientError) as caught:
            s3.write_path("b.txt", b"b")
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    assert "not allowed" in str(caught.value)
    assert outcome(events).payload["error_code"] == "AccessDenied"
    assert iam_user["secret"] not in str(caught.value)


# -- documents -------------------------------------------------------------------------


def test_saved_bucket_events_name_the_credentials_document(
    make_credentials: Callable[..., AwsCredentials], moto_url: str
) -> None:
    """A loaded bucket's events relate its credentials document as nested-block."""
    with make_credentials(moto_url) as creds:
        creds.get_client("s3").create_bucket(Bucket=BUCKET)
        creds_id = creds.save("lake")
        S3Bucket(bucket_name=BUCKET, credentials=creds).save("raw")
    s3 = S3Bucket.load("raw")
    with s3.credentials, flow_run("etl") as run, capture_events() as events:
        s3.write_path("a.txt", b"a")
        with pytest.raises(ClientError):
            s3.read_path("missing.txt")
    assert s3.credentials.document_id == creds_id
    for event in events:
        assert event.related_by_role("flow-run")[0].id == f"flow-run.{run.id}"
        if event.event.startswith("block.s3-bucket."):
            [nested] = event.related_by_role("nested-block")
            assert nested.id == f"block-document.{creds_id}"
            assert nested.labels["field"] == "credentials"
        else:
            assert event.resource.id == f"block-document.{creds_id}"
    assert outcome(events[4:]).event == "block.s3-bucket.read_path.failed"
