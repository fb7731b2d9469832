"""Making a failed S3 call say which bucket, key and endpoint it was about.

botocore's messages name the operation and S3's error code, never the bucket or
the key ("An error occurred (NoSuchKey) when calling the GetObject operation: The
specified key does not exist."). :func:`explain` appends them to the message of the
very exception botocore raised, so that ``except ClientError`` and
``exc.response`` work as usual while the message, in a traceback, a log line or the
``failed`` event, says what was missing. It also records an :class:`S3Failure` on
the exception, which the payload hooks turn into ``error_code``, ``status_code``
and the key that failed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from s3transfer.exceptions import (  # type: ignore[import-untyped]
    RetriesExceededError,
)

from blocks.http._redact import scrub_exception

__all__ = [
    "CREDENTIAL_CODES",
    "S3_ERRORS",
    "S3Failure",
    "Where",
    "explain",
    "failure_of",
]

# What the S3 operations let through to explain: botocore's errors, and
# s3transfer's when a download kept failing mid-stream.
S3_ERRORS: tuple[type[BaseException], ...] = (
    ClientError,
    BotoCoreError,
    RetriesExceededError,
)

# Codes that mean the credentials themselves were refused (not a missing right).
CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
        "ExpiredTokenException",
    }
)
_ATTRIBUTE = "_eventblocks_s3_failure"


@dataclass(frozen=True)
class Where:
    """What an S3 operation was about, for its error message.

    Attributes:
        bucket: The bucket called.
        key: The object's key, if one.
        prefix: The folder's prefix, for folder operations.
        to_bucket: The destination bucket of a copy.
        to_key: The destination key of a copy.
    """

    bucket: str
    key: str | None = None
    prefix: str | None = None
    to_bucket: str | None = None
    to_key: str | None = None

    def describe(self) -> str:
        """Return ``bucket 'b', key 'k'`` (and the destination of a copy)."""
        text = f"bucket {self.bucket!r}"
        if self.key is not None:
            text += f", key {self.key!r}"
        elif self.prefix is not None:
            text += f", prefix {self.prefix!r}"
        if self.to_bucket is not None:
            text += f", to bucket {self.to_bucket!r}, key {self.to_key!r}"
        return text


@dataclass(frozen=True)
class S3Failure:
    """What :func:`explain` learnt about a failed S3 call.

    Attributes:
        where: The bucket and key (or prefix) the call was about.
        code: S3's error code (``NoSuchKey``, ``AccessDenied``...), if it gave one.
        status_code: The HTTP status of S3's answer, if it answered.
        endpoint_url: The endpoint that could not be reached, for connection errors.
    """

    where: Where
    code: str | None
    status_code: int | None
    endpoint_url: str | None


def failure_of(exc: BaseException) -> S3Failure | None:
    """Return the failure :func:`explain` recorded on ``exc``, if any."""
    failure = getattr(exc, _ATTRIBUTE, None)
    return failure if isinstance(failure, S3Failure) else None


def _probe_code(client: Any, where: Where) -> str | None:
    """Ask S3 why an object is unreachable, after a HEAD request failed.

    A HEAD answer has no body, so botocore reports only its status ("404", "403").
    A one-byte ranged GET of the same object gets the real code (``NoSuchKey``,
    ``NoSuchBucket``, ``InvalidAccessKeyId``...). It costs one request, on the
    failure path only.
    """
    if client is None or where.key is None:
        return None
    try:
        response = client.get_object(
            Bucket=where.bucket, Key=where.key, Range="bytes=0-0"
        )
    except ClientError as probe:
        code = probe.response.get("Error", {}).get("Code")
        return code if isinstance(code, str) and not code.isdigit() else None
    except Exception:
        return None
    response["Body"].close()
    return None


def _hint(code: str | None, exc: BaseException, credentials: str) -> str:
    """What to check, when the credentials are the likely cause."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            f"; {credentials} found no AWS credentials: give aws_access_key_id and "
            "aws_secret_access_key, or a profile_name, or set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY in the environment"
        )
    if code in CREDENTIAL_CODES:
        return f"; the store refused the keys of {credentials}: check them"
    if code == "AccessDenied":
        return f"; the keys of {credentials} are not allowed this call"
    return ""


def explain(
    exc: BaseException,
    where: Where,
    *,
    client: Any = None,
    credentials: str = "the credentials",
    secrets: Iterable[str] = (),
) -> None:
    """Name the bucket and key in the message of ``exc``, in place.

    The exception stays the same object, with its type, ``response`` and
    traceback; only its message grows, once: ``... does not exist. (bucket 'raw',
    key 'orders.csv')``. Secret values are masked in it.

    Args:
        exc: What botocore or s3transfer raised.
        where: The bucket and key (or prefix) of the call.
        client: The S3 client, to ask for the code that a HEAD request hides.
        credentials: How to name the credentials block in a hint.
        secrets: Values the message must not show.
    """
    if failure_of(exc) is not None:
        return  # an inner step of the same call explained it already
    code: str | None = None
    status: int | None = None
    endpoint: str | None = None
    prefix = ""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") if isinstance(error.get("Code"), str) else None
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code is not None and code.isdigit():
            probed = _probe_code(client, where)
            code = probed if probed is not None else _status_code_name(code)
            if probed is not None:
                prefix = f"{probed}: "
    elif isinstance(exc, BotoCoreError):
        kwargs = getattr(exc, "kwargs", {})
        found = kwargs.get("endpoint_url") if isinstance(kwargs, dict) else None
        endpoint = found if isinstance(found, str) else None
    note = f"{prefix}{where.describe()}{_hint(code, exc, credentials)}"
    try:
        message = str(exc)
    except Exception:
        message = type(exc).__name__
    exc.args = (f"{message} ({note})",)
    scrub_exception(exc, secrets)
    # An exception type with __slots__ takes no attribute: its message says it all.
    with contextlib.suppress(AttributeError):
        setattr(exc, _ATTRIBUTE, S3Failure(where, code, status, endpoint))


def _status_code_name(status: str) -> str:
    """Name a bare HEAD status as S3 would have, when no probe could tell."""
    return {"404": "NotFound", "403": "Forbidden", "400": "BadRequest"}.get(
        status, status
    )
