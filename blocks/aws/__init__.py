"""AWS blocks on boto3: credentials, and S3 buckets observable call by call.

:class:`AwsCredentials` holds keys (the secret ones as ``SecretStr``) or a profile,
a region, a role to assume and client options (``endpoint_url`` for S3-compatible
stores such as MinIO, Ceph or moto); :class:`MinIOCredentials` holds a MinIO
server's user and password. ``get_client("s3")`` (or ``get_client(ClientType.S3)``,
``get_s3_client()``) returns one client per service, reused across threads.
:class:`S3Bucket` reads, writes, lists, transfers, copies and deletes objects, each
method with an async twin; its events record the bucket, the key, the bytes moved
and, on failure, S3's error code. :class:`EcsTaskObserver` turns ECS task state
changes, routed by EventBridge to SQS, into events related to flow runs.

Needs the ``aws`` extra: ``pip install 'eventblocks[aws]'``.

Example:
    >>> from blocks.aws import AwsCredentials, S3Bucket
    >>> bucket = S3Bucket(bucket_name="raw-data", credentials=AwsCredentials())
    >>> bucket.read_path("orders/2024-06-01.csv")  # doctest: +SKIP
"""

try:
    import boto3  # type: ignore[import-untyped]  # noqa: F401
    import botocore  # type: ignore[import-untyped]  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "blocks.aws needs boto3, which is not installed: pip install 'eventblocks[aws]'"
    ) from exc

from blocks.aws._clients import ClientType
from blocks.aws._credentials import (
    AwsClientParameters,
    AwsCredentials,
    MinIOCredentials,
)
from blocks.aws._ecs_observer import EcsTaskObserver
from blocks.aws._s3 import S3Bucket

__all__ = [
    "AwsClientParameters",
    "AwsCredentials",
    "ClientType",
    "EcsTaskObserver",
    "MinIOCredentials",
    "S3Bucket",
]

# This module is their public home: `eventblocks register -m blocks.aws` finds the
# types defined here, and saved documents record it as their import path.
for _exported in (
    AwsClientParameters,
    AwsCredentials,
    ClientType,
    EcsTaskObserver,
    MinIOCredentials,
    S3Bucket,
):
    _exported.__module__ = __name__
del _exported
