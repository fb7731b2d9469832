"""The work behind ``S3Bucket``'s methods: keys, the bucket's site, the
keyword arguments of transfers, and one implementation per method, called with
the call's tally on the caller's thread or a worker thread."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

from s3transfer.manager import TransferConfig  # type: ignore[import-untyped]

from blocks.aws import _s3_ops as ops
from blocks.aws._s3_ops import Site
from blocks.aws._transfer import Tally
from emitters import register_secret

if TYPE_CHECKING:
    from blocks.aws._credentials import AwsCredentials, MinIOCredentials
    from blocks.aws._s3 import S3Bucket

__all__ = ["BucketWork", "PathLike", "transfer_kwargs"]

PathLike = str | os.PathLike[str]

_TRANSFER_KWARGS = ("Config", "ExtraArgs")
# ExtraArgs whose values are keys: registered as secrets, so no log shows them.
_SECRET_ARGS = ("SSECustomerKey", "CopySourceSSECustomerKey", "SSEKMSEncryptionContext")


def transfer_kwargs(kwargs: dict[str, Any], method: str) -> dict[str, Any]:
    """Check the keyword arguments of a transfer, as boto3's take them."""
    unknown = sorted(set(kwargs) - set(_TRANSFER_KWARGS))
    if unknown:
        raise TypeError(
            f"{method} takes ExtraArgs and Config as keyword arguments, as boto3's "
            f"transfers do, not {', '.join(unknown)}"
        )
    extra = kwargs.get("ExtraArgs")
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise TypeError(
                f"{method}: ExtraArgs must be a dict of S3 arguments, such as "
                "{'ContentType': 'text/csv'}"
            )
        for name in _SECRET_ARGS:
            value = extra.get(name)
            if isinstance(value, str | bytes):
                register_secret(
                    value if isinstance(value, str) else value.decode("latin-1")
                )
    config = kwargs.get("Config")
    if config is not None and not isinstance(config, TransferConfig):
        raise TypeError(
            f"{method}: Config must be a boto3.s3.transfer.TransferConfig, not "
            f"{type(config).__name__}"
        )
    return dict(kwargs)


def _join(folder: str, path: str) -> str:
    path = path.lstrip("/")
    return f"{folder}/{path}" if folder and path else folder or path


class BucketWork:
    """The implementations of ``S3Bucket``'s methods (a mixin of it)."""

    bucket_name: str
    bucket_folder: str
    credentials: AwsCredentials | MinIOCredentials

    # -- keys and the client -------------------------------------------------------

    def _key(self, path: PathLike) -> str:
        # A string is the key as given (a trailing "/" included); a local path
        # object is turned into its POSIX form.
        text = path.as_posix() if isinstance(path, PurePath) else os.fspath(path)
        if not text.strip("/"):
            raise ValueError(
                f"An object of bucket {self.bucket_name!r} needs a key, not {text!r}."
            )
        return _join(self.bucket_folder, text)

    def _prefix(self, folder: PathLike) -> str:
        joined = _join(self.bucket_folder, os.fspath(folder).strip("/"))
        return f"{joined}/" if joined else ""

    def _site(self, transfer: Mapping[str, Any] | None = None) -> Site:
        credentials = self.credentials
        name = credentials.document_name
        transfer = transfer or {}
        return Site(
            client=credentials.get_client("s3"),
            extra_args=transfer.get("ExtraArgs"),
            config=transfer.get("Config"),
            bucket=self.bucket_name,
            credentials=f"{credentials.block_type_slug}/{name}"
            if name
            else f"the {type(credentials).__name__}",
            secrets=tuple(credentials._secret_values()),
        )

    def _about(
        self, tally: Tally, transfer: Mapping[str, Any] | None = None, **detail: Any
    ) -> None:
        tally.detail = {"bucket": self.bucket_name, **detail}
        extra = (transfer or {}).get("ExtraArgs")
        if extra:
            # The names only: SSECustomerKey's value is a key.
            tally.detail["extra_args"] = sorted(extra)

    # -- implementations (called on the caller's thread or a worker thread) --------

    def _read_path(self, tally: Tally, path: PathLike) -> bytes:
        key = self._key(path)
        self._about(tally, key=key)
        return ops.read(self._site(), key, tally)

    def _write_path(self, tally: Tally, path: PathLike, content: bytes) -> str:
        key = self._key(path)
        self._about(tally, key=key)
        if not isinstance(content, bytes | bytearray | memoryview):
            raise TypeError(
                f"write_path takes bytes, not {type(content).__name__}; encode text "
                "first, as in content.encode()"
            )
        ops.write(self._site(), key, bytes(content), tally)
        return key

    def _list_objects(
        self,
        tally: Tally,
        folder: PathLike,
        delimiter: str,
        page_size: int | None,
        max_items: int | None,
        jmespath_query: str | None = None,
        prefix: str | None = None,
    ) -> list[Any]:
        if prefix is not None:
            if os.fspath(folder):
                raise ValueError(
                    "list_objects takes a folder or a key prefix, not both: "
                    f"folder={os.fspath(folder)!r}, prefix={prefix!r}"
                )
            # A raw prefix: keys that start with it, "a/2024-" finds "a/2024-01.csv".
            prefix = _join(self.bucket_folder, prefix.lstrip("/"))
            if self.bucket_folder and prefix == self.bucket_folder:
                prefix += "/"
        else:
            prefix = self._prefix(folder)
        self._about(tally, prefix=prefix)
        if jmespath_query is not None:
            tally.detail["jmespath_query"] = jmespath_query
        site = self._site()
        objects = ops.list_objects(
            site, prefix, delimiter, page_size, max_items, jmespath_query
        )
        tally.add_object(len(objects))
        return objects

    def _download_object_to_path(
        self,
        tally: Tally,
        from_path: PathLike,
        to_path: PathLike | None,
        transfer: Mapping[str, Any],
    ) -> Path:
        key = self._key(from_path)
        self._about(tally, transfer, key=key)
        target = Path(PurePosixPath(key).name if to_path is None else to_path)
        ops.download_file(self._site(transfer), key, target, tally)
        return target.absolute()

    def _download_object_to_file_object(
        self,
        tally: Tally,
        from_path: PathLike,
        to_file_object: BinaryIO,
        transfer: Mapping[str, Any],
    ) -> BinaryIO:
        key = self._key(from_path)
        self._about(tally, transfer, key=key)
        ops.download_fileobj(self._site(transfer), key, to_file_object, tally)
        return to_file_object

    def _download_folder_to_path(
        self,
        tally: Tally,
        from_folder: PathLike,
        to_folder: PathLike | None,
        transfer: Mapping[str, Any],
    ) -> Path:
        prefix = self._prefix(from_folder)
        self._about(tally, transfer, prefix=prefix)
        target = Path.cwd() if to_folder is None else Path(to_folder)
        ops.download_folder(self._site(transfer), prefix, target, tally)
        return target

    def _upload_from_path(
        self,
        tally: Tally,
        from_path: PathLike,
        to_path: PathLike | None,
        transfer: Mapping[str, Any],
    ) -> str:
        source = Path(from_path)
        key = self._key(source.name if to_path is None else to_path)
        self._about(tally, transfer, key=key)
        ops.upload_file(self._site(transfer), source, key, tally)
        return key

    def _upload_from_file_object(
        self,
        tally: Tally,
        from_file_object: BinaryIO,
        to_path: PathLike,
        transfer: Mapping[str, Any],
    ) -> str:
        key = self._key(to_path)
        self._about(tally, transfer, key=key)
        ops.upload_fileobj(self._site(transfer), from_file_object, key, tally)
        return key

    def _upload_from_folder(
        self,
        tally: Tally,
        from_folder: PathLike,
        to_folder: PathLike | None,
        transfer: Mapping[str, Any],
    ) -> str:
        prefix = self._prefix("" if to_folder is None else to_folder)
        self._about(tally, transfer, prefix=prefix)
        ops.upload_folder(self._site(transfer), Path(from_folder), prefix, tally)
        return prefix

    def _destination(
        self, to_path: PathLike, to_bucket: S3Bucket | str | None
    ) -> tuple[str, str]:
        if not isinstance(to_bucket, str | None):
            return to_bucket.bucket_name, to_bucket._key(to_path)
        if to_bucket is None:
            return self.bucket_name, self._key(to_path)
        return to_bucket, _join("", os.fspath(to_path))

    def _copy_object(
        self,
        tally: Tally,
        from_path: PathLike,
        to_path: PathLike,
        to_bucket: S3Bucket | str | None,
        transfer: Mapping[str, Any] | None = None,
    ) -> str:
        key = self._key(from_path)
        bucket, to_key = self._destination(to_path, to_bucket)
        self._about(tally, transfer, key=key, to_bucket=bucket, to_key=to_key)
        if (bucket, to_key) == (self.bucket_name, key):
            raise ValueError(
                f"The object {key!r} of bucket {bucket!r} cannot be copied or moved "
                "onto itself."
            )
        ops.copy(self._site(transfer), key, bucket, to_key, tally)
        return to_key

    def _move_object(
        self,
        tally: Tally,
        from_path: PathLike,
        to_path: PathLike,
        to_bucket: S3Bucket | str | None,
    ) -> str:
        to_key = self._copy_object(tally, from_path, to_path, to_bucket)
        ops.delete_one(self._site(), tally.detail["key"])
        return to_key

    def _delete_objects(self, tally: Tally, paths: Iterable[PathLike]) -> list[str]:
        if isinstance(paths, str | bytes | os.PathLike):
            raise TypeError(
                "delete_objects takes a list of paths, not one path: "
                "delete_objects([path])"
            )
        keys = [self._key(path) for path in paths]
        self._about(tally, keys=len(keys))
        return ops.delete(self._site(), keys, tally)

    def _stream_from(
        self,
        tally: Tally,
        bucket: S3Bucket,
        from_path: PathLike,
        to_path: PathLike | None,
        transfer: Mapping[str, Any],
    ) -> str:
        source_key = bucket._key(from_path)
        key = self._key(PurePosixPath(source_key).name if to_path is None else to_path)
        self._about(
            tally,
            transfer,
            key=key,
            source_bucket=bucket.bucket_name,
            source_key=source_key,
        )
        ops.stream(self._site(transfer), bucket._site(), source_key, key, tally)
        return key
