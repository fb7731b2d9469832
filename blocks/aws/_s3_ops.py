"""The S3 operations behind ``S3Bucket``'s methods, on one boto3 client.

Each operation takes a :class:`Site` (the client, the bucket and how to explain a
failure) and a :class:`~blocks.aws._transfer.Tally` that it fills with the bytes
and objects it moved. Transfers go through s3transfer, as boto3's
``upload_file``/``download_file`` do, so large objects move in parts on several
threads; failures raise botocore's own exceptions, their messages naming the
bucket and the key (see :mod:`blocks.aws._errors`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from blocks.aws._errors import S3_ERRORS, Where, explain
from blocks.aws._transfer import (
    Tally,
    TallySubscriber,
    folder_progress,
    transfer_manager,
)

__all__ = [
    "Site",
    "copy",
    "delete",
    "delete_one",
    "download_file",
    "download_fileobj",
    "download_folder",
    "list_objects",
    "read",
    "stream",
    "upload_file",
    "upload_fileobj",
    "upload_folder",
    "write",
]

_DELETE_BATCH = 1000  # S3's limit of keys per DeleteObjects request


@dataclass(frozen=True)
class Site:
    """One bucket as the operations see it.

    Attributes:
        client: The boto3 S3 client.
        bucket: The bucket's name.
        credentials: How to name the credentials in a hint (``aws-credentials/prod``).
        secrets: Values no error message may show.
        extra_args: S3 arguments of the transfers (``ExtraArgs``: ``ContentType``,
            ``ServerSideEncryption``, ``ACL``, ``VersionId``...).
        config: The ``TransferConfig`` of the transfers; boto3's by default.
    """

    client: Any
    bucket: str
    credentials: str
    secrets: tuple[str, ...]
    extra_args: dict[str, Any] | None = None
    config: Any = None

    def manager(self) -> Any:
        """A transfer manager for this site's client and transfer config."""
        return transfer_manager(self.client, self.config)

    @contextmanager
    def failing(self, where: Where) -> Iterator[None]:
        """Explain any S3 error raised inside with ``where``, then let it go."""
        try:
            yield
        except S3_ERRORS as exc:
            explain(
                exc,
                where,
                client=self.client,
                credentials=self.credentials,
                secrets=self.secrets,
            )
            raise

    def at(self, key: str | None = None, prefix: str | None = None) -> Where:
        """Return the ``Where`` of ``key`` (or ``prefix``) in this bucket."""
        return Where(self.bucket, key=key, prefix=prefix)


def read(site: Site, key: str, tally: Tally) -> bytes:
    """Return the object's content."""
    with site.failing(site.at(key)):
        response = site.client.get_object(Bucket=site.bucket, Key=key)
        with closing(response["Body"]) as body:
            data: bytes = body.read()
    tally.add_bytes(len(data))
    tally.add_object()
    return data


def upload_fileobj(site: Site, fileobj: BinaryIO, key: str, tally: Tally) -> None:
    """Upload a readable binary file object's content (in parts when large)."""
    with site.failing(site.at(key)), site.manager() as manager:
        future = manager.upload(
            fileobj,
            site.bucket,
            key,
            extra_args=site.extra_args,
            subscribers=[TallySubscriber(tally)],
        )
        future.result()
    tally.add_object()


def write(site: Site, key: str, content: bytes, tally: Tally) -> None:
    """Store ``content`` as the object (in parts when large)."""
    upload_fileobj(site, io.BytesIO(content), key, tally)


def list_objects(
    site: Site,
    prefix: str,
    delimiter: str = "",
    page_size: int | None = None,
    max_items: int | None = None,
    jmespath_query: str | None = None,
) -> list[Any]:
    """Return the objects under ``prefix``, as ``ListObjectsV2`` describes them,
    or what ``jmespath_query`` selects of each page."""
    pagination: dict[str, int] = {}
    if page_size is not None:
        pagination["PageSize"] = page_size
    if max_items is not None:
        pagination["MaxItems"] = max_items
    objects: list[Any] = []
    with site.failing(site.at(prefix=prefix)):
        pages = site.client.get_paginator("list_objects_v2").paginate(
            Bucket=site.bucket,
            Prefix=prefix,
            Delimiter=delimiter,
            PaginationConfig=pagination,
        )
        if jmespath_query is not None:
            objects.extend(
                item for item in pages.search(jmespath_query) if item is not None
            )
            return objects
        for page in pages:
            objects.extend(page.get("Contents", []))
    return objects


def download_fileobj(site: Site, key: str, fileobj: BinaryIO, tally: Tally) -> None:
    """Write the object's content into a writable binary file object."""
    with site.failing(site.at(key)), site.manager() as manager:
        future = manager.download(
            site.bucket,
            key,
            fileobj,
            extra_args=site.extra_args,
            subscribers=[TallySubscriber(tally)],
        )
        future.result()
    tally.add_object()


def download_file(site: Site, key: str, path: Path, tally: Tally) -> None:
    """Download the object to ``path``, through a temporary file beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with site.failing(site.at(key)), site.manager() as manager:
        future = manager.download(
            site.bucket,
            key,
            str(path),
            extra_args=site.extra_args,
            subscribers=[TallySubscriber(tally)],
        )
        future.result()
    tally.add_object()


def upload_file(site: Site, path: Path, key: str, tally: Tally) -> None:
    """Upload the local file at ``path`` (in parts when large)."""
    if not path.is_file():
        raise FileNotFoundError(f"There is no file at {str(path)!r} to upload.")
    with site.failing(site.at(key)), site.manager() as manager:
        future = manager.upload(
            str(path),
            site.bucket,
            key,
            extra_args=site.extra_args,
            subscribers=[TallySubscriber(tally)],
        )
        future.result()
    tally.add_object()


def _local_path(folder: Path, prefix: str, key: str) -> Path:
    """Where the object ``key`` goes under ``folder``, never outside it."""
    relative = PurePosixPath(key[len(prefix) :])
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ValueError(
            f"The key {key!r} cannot be downloaded under {str(folder)!r}: its path "
            "would leave the folder. Download it with download_object_to_path."
        )
    return folder.joinpath(*relative.parts)


def download_folder(site: Site, prefix: str, folder: Path, tally: Tally) -> None:
    """Download every object under ``prefix`` to the same paths under ``folder``.

    Keys ending with ``/`` (folder markers) are skipped. Every local path is
    checked before anything is downloaded.
    """
    listing = [
        item
        for item in list_objects(site, prefix)
        if not str(item["Key"]).endswith("/")
    ]
    targets = [(item, _local_path(folder, prefix, item["Key"])) for item in listing]
    total = sum(int(item.get("Size", 0)) for item in listing)
    description = f"s3://{site.bucket}/{prefix} -> {folder.name or folder}"
    with (
        folder_progress(description, total, len(targets)) as progress,
        site.manager() as manager,
    ):
        futures = []
        for item, path in targets:
            path.parent.mkdir(parents=True, exist_ok=True)
            subscriber = TallySubscriber(
                tally, size=int(item.get("Size", 0)), progress=progress
            )
            future = manager.download(
                site.bucket,
                item["Key"],
                str(path),
                extra_args=site.extra_args,
                subscribers=[subscriber],
            )
            futures.append((item["Key"], future))
        _wait_all(site, futures, tally, progress)


def _wait_all(
    site: Site,
    futures: Sequence[tuple[str, Any]],
    tally: Tally,
    progress: Any,
) -> None:
    """Wait for each transfer in turn; the first failure names its key."""
    for key, future in futures:
        with site.failing(site.at(key)):
            future.result()
        tally.add_object()
        if progress is not None:
            progress.file_done()


def upload_folder(site: Site, folder: Path, prefix: str, tally: Tally) -> None:
    """Upload every file under ``folder`` (recursively) to ``prefix`` + its path."""
    if not folder.is_dir():
        raise NotADirectoryError(f"There is no folder at {str(folder)!r} to upload.")
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    sizes = [path.stat().st_size for path in files]
    description = f"{folder.name or folder} -> s3://{site.bucket}/{prefix}"
    with (
        folder_progress(description, sum(sizes), len(files)) as progress,
        site.manager() as manager,
    ):
        futures = []
        for path, size in zip(files, sizes, strict=True):
            key = prefix + path.relative_to(folder).as_posix()
            subscriber = TallySubscriber(tally, size=size, progress=progress)
            future = manager.upload(
                str(path),
                site.bucket,
                key,
                extra_args=site.extra_args,
                subscribers=[subscriber],
            )
            futures.append((key, future))
        _wait_all(site, futures, tally, progress)


def copy(site: Site, key: str, to_bucket: str, to_key: str, tally: Tally) -> None:
    """Copy the object to ``to_bucket``/``to_key`` on the server side."""
    where = Where(site.bucket, key=key, to_bucket=to_bucket, to_key=to_key)
    with site.failing(where), site.manager() as manager:
        future = manager.copy(
            {"Bucket": site.bucket, "Key": key},
            to_bucket,
            to_key,
            extra_args=site.extra_args,
            subscribers=[TallySubscriber(tally)],
        )
        future.result()
    tally.add_object()


def delete_one(site: Site, key: str) -> None:
    """Delete one object (a missing one is no error, as in S3)."""
    with site.failing(site.at(key)):
        site.client.delete_object(Bucket=site.bucket, Key=key)


def delete(site: Site, keys: Sequence[str], tally: Tally) -> list[str]:
    """Delete ``keys``, a thousand per request; return the keys deleted.

    Raises:
        botocore.exceptions.ClientError: S3 refused some keys; made from the
            first refusal (its code and key), after every batch was tried.
    """
    deleted: list[str] = []
    refused: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    for start in range(0, len(keys), _DELETE_BATCH):
        batch = list(keys[start : start + _DELETE_BATCH])
        with site.failing(site.at()):
            response = site.client.delete_objects(
                Bucket=site.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
        errors = response.get("Errors", [])
        failed = {str(error.get("Key")) for error in errors}
        refused.extend(errors)
        deleted.extend(k for k in batch if k not in failed)
        tally.add_object(len(batch) - len(failed))
        metadata = response.get("ResponseMetadata", {})
    if refused:
        first = refused[0]
        exc = ClientError(
            {
                "Error": {
                    "Code": str(first.get("Code", "Unknown")),
                    "Message": f"{first.get('Message', 'refused')}; "
                    f"{len(refused)} of {len(keys)} keys were not deleted",
                },
                "ResponseMetadata": metadata,
            },
            "DeleteObjects",
        )
        with site.failing(site.at(str(first.get("Key")))):
            raise exc
    return deleted


def stream(site: Site, source: Site, source_key: str, key: str, tally: Tally) -> None:
    """Stream an object of another bucket (any endpoint, any credentials) here.

    The content passes through this process in parts, never whole in memory.
    """
    with source.failing(source.at(source_key)):
        response = source.client.get_object(Bucket=source.bucket, Key=source_key)
    # A failure from here on may be the source's stream or this bucket: name both.
    where = Where(source.bucket, key=source_key, to_bucket=site.bucket, to_key=key)
    with (
        closing(response["Body"]) as body,
        site.failing(where),
        site.manager() as manager,
    ):
        subscriber = TallySubscriber(tally, size=response.get("ContentLength"))
        future = manager.upload(
            body,
            site.bucket,
            key,
            extra_args=site.extra_args,
            subscribers=[subscriber],
        )
        future.result()
    tally.add_object()
