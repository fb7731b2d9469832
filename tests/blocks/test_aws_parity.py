"""What a prefect-aws user finds in the AWS blocks, against moto's threaded server:
get_client spellings, shared clients of equal blocks, role assumption, MinIO
credentials, unsigned requests, transfer ExtraArgs and listing options."""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from blocks import BlockValidationError, DocumentStore
from blocks.aws import (
    AwsClientParameters,
    AwsCredentials,
    ClientType,
    MinIOCredentials,
    S3Bucket,
)
from emitters import Event
from emitters.testing import capture_events

BUCKET = "parity"
ROLE = "arn:aws:iam::123456789012:role/reader"

# Each test starts on an emptied server, with the machine's AWS settings hidden.
pytestmark = pytest.mark.usefixtures("clean_aws")


@pytest.fixture
def bucket(
    make_credentials: Callable[..., AwsCredentials], moto_url: str
) -> Iterator[S3Bucket]:
    """A bucket on the server, its clients closed afterwards."""
    with make_credentials(moto_url) as creds:
        creds.get_s3_client().create_bucket(Bucket=BUCKET)
        yield S3Bucket(bucket_name=BUCKET, credentials=creds)


def nowhere(value: str, events: list[Event]) -> bool:
    """True if ``value`` appears in no event's JSON."""
    return all(value not in e.model_dump_json() for e in events)


def outcomes(events: list[Event], method: str) -> list[Event]:
    """The succeeded or failed events of ``method``."""
    return [
        e
        for e in events
        if e.event.split(".")[-2] == method and not e.event.endswith(".started")
    ]


# -- clients -------------------------------------------------------------------------


def test_get_client_spellings(
    make_credentials: Callable[..., AwsCredentials], moto_url: str
) -> None:
    """get_client by name, by ClientType, as client_type=, get_s3_client() and
    get_secrets_manager_client() give the same clients, each call an event."""
    with make_credentials(moto_url) as creds, capture_events() as events:
        s3 = creds.get_s3_client()
        assert creds.get_client("s3") is s3
        assert creds.get_client(ClientType.S3) is s3
        assert creds.get_client(client_type="s3") is s3
        assert creds.get_client(client_type=ClientType.S3) is s3
        manager = creds.get_secrets_manager_client()
        assert creds.get_client(ClientType.SECRETS_MANAGER) is manager
        manager.create_secret(Name="db", SecretString="hunter2")
        value = manager.get_secret_value(SecretId="db")["SecretString"]
        assert value == "hunter2"
        with pytest.raises(ValueError, match="once"):
            creds.get_client()
        with pytest.raises(ValueError, match="once"):
            creds.get_client("s3", client_type="s3")
    services = [e.payload.get("service") for e in outcomes(events, "get_s3_client")]
    assert services == ["s3"]
    [manager_event] = outcomes(events, "get_secrets_manager_client")
    assert manager_event.payload["service"] == "secretsmanager"
    assert manager_event.payload["endpoint_url"] == moto_url
    named = [e.payload["service"] for e in outcomes(events, "get_client")]
    assert named[:4] == ["s3"] * 4


def test_equal_blocks_hash_alike_and_share_clients(
    make_credentials: Callable[..., AwsCredentials], moto_url: str
) -> None:
    """Equal credentials are equal, hash alike and share a client; other values
    or a changed field make other clients."""
    secret = secrets.token_hex(16)
    one = make_credentials(
        moto_url, aws_access_key_id="AKIAONE", aws_secret_access_key=secret
    )
    two = make_credentials(
        moto_url, aws_access_key_id="AKIAONE", aws_secret_access_key=secret
    )
    other = make_credentials(moto_url, aws_access_key_id="AKIAONE")
    assert one == two
    assert hash(one) == hash(two)
    assert one != other
    assert len({one, two, other}) == 2
    assert one.get_s3_client() is two.get_s3_client()
    assert other.get_s3_client() is not one.get_s3_client()
    shared = one.get_s3_client()
    two.region_name = "eu-west-1"
    assert two != one
    assert two.get_s3_client() is not shared
    assert two.get_s3_client().meta.region_name == "eu-west-1"
    assert one.get_s3_client() is shared
    for creds in (one, two, other):
        creds.close()
    minio = MinIOCredentials(minio_root_user="u", minio_root_password=secret)
    assert hash(minio) == hash(
        MinIOCredentials(minio_root_user="u", minio_root_password=secret)
    )


# -- role assumption -----------------------------------------------------------------


def test_assumed_role_reaches_s3_and_stays_secret(
    make_credentials: Callable[..., AwsCredentials],
    moto_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """assume_role_arn makes clients with the role's credentials (from moto's
    STS); the assumed secret is in no event, error or log line."""
    creds = make_credentials(
        moto_url, assume_role_arn=ROLE, assume_role_kwargs={"ExternalId": "x-1"}
    )
    caplog.set_level(logging.DEBUG, logger="botocore")
    with creds, capture_events() as events:
        s3 = creds.get_s3_client()
        frozen = s3._request_signer._credentials.get_frozen_credentials()
        assert frozen.access_key.startswith("ASIA")
        assert frozen.access_key != creds.aws_access_key_id
        bucket = S3Bucket(bucket_name=BUCKET, credentials=creds)
        s3.create_bucket(Bucket=BUCKET)
        bucket.write_path("a.txt", b"role")
        assert bucket.read_path("a.txt") == b"role"
        with pytest.raises(ClientError, match="NoSuchKey") as caught:
            bucket.read_path("missing.txt")
    assumed = [frozen.secret_key, frozen.token]
    for value in assumed:
        assert nowhere(value, events)
        assert value not in str(caught.value)
        assert value not in caplog.text
        assert value in creds._secret_values()
    [event] = outcomes(events, "get_s3_client")
    assert event.payload["assume_role_arn"] == ROLE
    assert "botocore" in caplog.text  # the logs were captured, masked


def test_assumed_role_is_refreshed_before_expiry(
    make_credentials: Callable[..., AwsCredentials], moto_url: str
) -> None:
    """Credentials that expire within 15 minutes are assumed again when used;
    those of an hour are kept."""
    short = make_credentials(
        moto_url, assume_role_arn=ROLE, assume_role_kwargs={"DurationSeconds": 900}
    )
    session = short.get_boto3_session()
    first = session.get_credentials().get_frozen_credentials().access_key
    second = session.get_credentials().get_frozen_credentials().access_key
    assert first != second
    long = make_credentials(
        moto_url, assume_role_arn=ROLE, assume_role_kwargs={"DurationSeconds": 3600}
    )
    session = long.get_boto3_session()
    first = session.get_credentials().get_frozen_credentials().access_key
    assert session.get_credentials().get_frozen_credentials().access_key == first
    long.get_s3_client().list_buckets()  # the S3 client signs with the role


def test_role_fields_are_checked() -> None:
    """assume_role_kwargs needs assume_role_arn and must not repeat RoleArn."""
    with pytest.raises(BlockValidationError, match="needs assume_role_arn"):
        AwsCredentials(assume_role_kwargs={"DurationSeconds": 900})
    with pytest.raises(BlockValidationError, match="RoleArn"):
        AwsCredentials(assume_role_arn=ROLE, assume_role_kwargs={"RoleArn": ROLE})


# -- MinIO credentials ---------------------------------------------------------------


def test_minio_credentials_drive_a_bucket(
    moto_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """MinIOCredentials reach an S3-compatible endpoint; the password shows
    nowhere (events, errors, logs), and the block saves and loads as a document."""
    password = secrets.token_hex(16)
    caplog.set_level(logging.DEBUG, logger="botocore")
    minio = MinIOCredentials(
        minio_root_user="minio",
        minio_root_password=password,
        region_name="us-east-1",
        aws_client_parameters={"endpoint_url": moto_url},
    )
    with capture_events() as events:
        minio.get_s3_client().create_bucket(Bucket=BUCKET)
        bucket = S3Bucket(bucket_name=BUCKET, credentials=minio)
        bucket.write_path("m.txt", b"minio")
        assert bucket.read_path("m.txt") == b"minio"
        with pytest.raises(ClientError, match="NoSuchKey") as caught:
            bucket.read_path("missing.txt")
    assert password not in repr(minio)
    assert password not in minio.model_dump_json()
    assert password not in str(caught.value)
    assert nowhere(password, events)
    assert "botocore" in caplog.text
    assert password not in caplog.text
    assert "minio-credentials" in " ".join(e.event for e in events)
    store = DocumentStore(f"sqlite:///{tmp_path / 'docs.db'}")
    bucket.save("lake", store=store)
    loaded = S3Bucket.load("lake", store=store)
    assert isinstance(loaded.credentials, MinIOCredentials)
    assert loaded.credentials == minio
    assert loaded.read_path("m.txt") == b"minio"
    minio.close()
    loaded.credentials.close()
    with pytest.raises(BlockValidationError, match="minio_root_password"):
        MinIOCredentials(minio_root_user="minio")


# -- config, unsigned requests -------------------------------------------------------


def test_unsigned_config_sends_no_signature(
    make_credentials: Callable[..., AwsCredentials], moto_url: str, tmp_path: Path
) -> None:
    """signature_version="unsigned" (or a Config with UNSIGNED) sends anonymous
    requests, and a block holding it saves and loads as a document."""
    with make_credentials(moto_url) as signed:
        signed.get_s3_client().create_bucket(Bucket=BUCKET)
        signed.get_s3_client().put_object(
            Bucket=BUCKET, Key="open.txt", Body=b"hi", ACL="public-read"
        )
    parameters = AwsClientParameters(
        endpoint_url=moto_url,
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )
    assert parameters.config == {
        "signature_version": "unsigned",
        "retries": {"max_attempts": 1},
    }
    public = S3Bucket(
        bucket_name=BUCKET,
        credentials=AwsCredentials(
            region_name="us-east-1", aws_client_parameters=parameters
        ),
    )
    store = DocumentStore(f"sqlite:///{tmp_path / 'docs.db'}")
    public.save("public", store=store)
    loaded = S3Bucket.load("public", store=store)
    headers: list[dict[str, str]] = []
    client = loaded.credentials.get_s3_client()
    client.meta.events.register(
        "before-send.s3.*", lambda request, **_: headers.append(dict(request.headers))
    )
    assert loaded.read_path("open.txt") == b"hi"
    assert headers
    assert all("Authorization" not in h for h in headers)
    loaded.credentials.close()
    with make_credentials(moto_url) as signed:
        seen: list[dict[str, str]] = []
        signed.get_s3_client().meta.events.register(
            "before-send.s3.*", lambda request, **_: seen.append(dict(request.headers))
        )
        signed.get_s3_client().list_buckets()
        assert "Authorization" in seen[0]  # the check above can fail


def test_config_must_fit_botocore() -> None:
    """A config botocore refuses is a validation error naming the field."""
    with pytest.raises(ValueError, match=r"botocore\.config\.Config"):
        AwsClientParameters(config={"no_such_option": 1})


# -- transfers with ExtraArgs ---------------------------------------------------------


def test_upload_extra_args(bucket: S3Bucket, tmp_path: Path) -> None:
    """ExtraArgs reach S3 on every upload: content type, encryption, ACL,
    metadata; the events name the arguments, not their values."""
    client = bucket.credentials.get_s3_client()
    source = tmp_path / "o.csv"
    source.write_bytes(b"a,b\n")
    extra = {
        "ContentType": "text/csv",
        "ServerSideEncryption": "AES256",
        "ACL": "public-read",
        "Metadata": {"origin": "nightly"},
    }
    with capture_events() as events:
        bucket.upload_from_path(source, "p.csv", ExtraArgs=extra)
        bucket.upload_from_file_object(io.BytesIO(b"x"), "f.csv", ExtraArgs=extra)
        folder = tmp_path / "folder"
        folder.mkdir()
        (folder / "g.csv").write_bytes(b"g")
        bucket.upload_from_folder(folder, "up", ExtraArgs={"ContentType": "text/csv"})
        bucket.stream_from(
            bucket, "p.csv", "s.csv", ExtraArgs={"ContentType": "text/x"}
        )
        bucket.copy_object(
            "p.csv",
            "c.csv",
            ExtraArgs={"MetadataDirective": "REPLACE", "ContentType": "text/plain"},
        )
    for key in ("p.csv", "f.csv"):
        head = client.head_object(Bucket=BUCKET, Key=key)
        assert head["ContentType"] == "text/csv"
        assert head["ServerSideEncryption"] == "AES256"
        assert head["Metadata"] == {"origin": "nightly"}
        grants = client.get_object_acl(Bucket=BUCKET, Key=key)["Grants"]
        assert any(
            g["Grantee"].get("URI", "").endswith("/AllUsers")
            and g["Permission"] == "READ"
            for g in grants
        )
    assert (
        client.head_object(Bucket=BUCKET, Key="up/g.csv")["ContentType"] == "text/csv"
    )
    assert client.head_object(Bucket=BUCKET, Key="s.csv")["ContentType"] == "text/x"
    assert client.head_object(Bucket=BUCKET, Key="c.csv")["ContentType"] == "text/plain"
    [upload] = outcomes(events, "upload_from_path")
    assert upload.payload["extra_args"] == [
        "ACL",
        "ContentType",
        "Metadata",
        "ServerSideEncryption",
    ]
    assert nowhere("nightly", events)


def test_download_extra_args_and_transfer_config(
    bucket: S3Bucket, tmp_path: Path
) -> None:
    """ExtraArgs={"VersionId": ...} downloads an older version; Config is a
    TransferConfig; the path returned is absolute."""
    client = bucket.credentials.get_s3_client()
    client.put_bucket_versioning(
        Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    first = client.put_object(Bucket=BUCKET, Key="v.txt", Body=b"one")["VersionId"]
    client.put_object(Bucket=BUCKET, Key="v.txt", Body=b"two")
    path = bucket.download_object_to_path(
        "v.txt",
        tmp_path / "old.txt",
        ExtraArgs={"VersionId": first},
        Config=TransferConfig(max_concurrency=2),
    )
    assert path.is_absolute()
    assert path.read_bytes() == b"one"
    sink = io.BytesIO()
    bucket.download_object_to_file_object("v.txt", sink, ExtraArgs={"VersionId": first})
    assert sink.getvalue() == b"one"
    assert bucket.read_path("v.txt") == b"two"


async def test_async_twins_take_transfer_kwargs(
    bucket: S3Bucket, tmp_path: Path
) -> None:
    """The async twins pass ExtraArgs too."""
    source = tmp_path / "a.json"
    source.write_bytes(b"{}")
    await bucket.aupload_from_path(
        source, "a.json", ExtraArgs={"ContentType": "application/json"}
    )
    head = bucket.credentials.get_s3_client().head_object(Bucket=BUCKET, Key="a.json")
    assert head["ContentType"] == "application/json"
    target = await bucket.adownload_object_to_path("a.json", tmp_path / "b.json")
    assert target.is_absolute()
    assert target.read_bytes() == b"{}"


def test_transfer_kwargs_are_checked(bucket: S3Bucket, tmp_path: Path) -> None:
    """Unknown keyword arguments, bad ExtraArgs and a bad Config are clear errors,
    and nothing is written."""
    source = tmp_path / "o.csv"
    source.write_bytes(b"x")
    with pytest.raises(TypeError, match="ExtraArgs and Config"):
        bucket.upload_from_path(source, "o.csv", ContentType="text/csv")
    with pytest.raises(TypeError, match="ExtraArgs must be a dict"):
        bucket.upload_from_path(source, "o.csv", ExtraArgs="text/csv")
    with pytest.raises(TypeError, match="TransferConfig"):
        bucket.upload_from_path(source, "o.csv", Config={"max_concurrency": 2})
    with pytest.raises(ValueError, match="NotAnArgument"):
        bucket.upload_from_path(source, "o.csv", ExtraArgs={"NotAnArgument": 1})
    assert bucket.list_objects() == []


def test_customer_key_stays_secret(
    bucket: S3Bucket, caplog: pytest.LogCaptureFixture
) -> None:
    """An SSE-C key given in ExtraArgs is in no event and no log line."""
    key = secrets.token_hex(16)  # 32 characters: an AES-256 key
    caplog.set_level(logging.DEBUG, logger="botocore")
    with capture_events() as events:
        bucket.upload_from_file_object(
            io.BytesIO(b"secret data"),
            "c.bin",
            ExtraArgs={"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key},
        )
    assert nowhere(key, events)
    assert key not in caplog.text
    [event] = outcomes(events, "upload_from_file_object")
    assert event.payload["extra_args"] == ["SSECustomerAlgorithm", "SSECustomerKey"]


# -- listing -------------------------------------------------------------------------


def test_list_objects_by_prefix_and_jmespath(moto_url: str, bucket: S3Bucket) -> None:
    """prefix= lists by raw key prefix (inside bucket_folder), jmespath_query
    selects from each page; both in the event."""
    for key, body in (
        ("data/2024-01.csv", b"1"),
        ("data/2024-02.csv", b"22"),
        ("data/2025-01.csv", b"333"),
        ("data/2024/x.csv", b"4444"),
    ):
        bucket.write_path(key, body)
    keys = [o["Key"] for o in bucket.list_objects(prefix="data/2024-")]
    assert keys == ["data/2024-01.csv", "data/2024-02.csv"]
    assert [o["Key"] for o in bucket.list_objects("data/2024")] == ["data/2024/x.csv"]
    folder = S3Bucket(
        bucket_name=BUCKET, credentials=bucket.credentials, bucket_folder="data"
    )
    assert [o["Key"] for o in folder.list_objects(prefix="2025")] == [
        "data/2025-01.csv"
    ]
    with capture_events() as events:
        big = bucket.list_objects(jmespath_query="Contents[?Size > `2`].Key")
    assert sorted(big) == ["data/2024/x.csv", "data/2025-01.csv"]
    [event] = outcomes(events, "list_objects")
    assert event.payload["jmespath_query"] == "Contents[?Size > `2`].Key"
    assert event.payload["objects"] == 2
    assert event.payload["prefix"] == ""
    with pytest.raises(ValueError, match="not both"):
        bucket.list_objects("data", prefix="data/2024-")
