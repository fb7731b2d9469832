"""The ``S3Bucket`` block: read, write, list, transfer, copy and delete objects."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath, PurePosixPath
from typing import Any, BinaryIO, ClassVar

from pydantic import Field, field_validator
from s3transfer.manager import TransferConfig  # type: ignore[import-untyped]

from blocks._block import Block
from blocks._instrument import event_payload
from blocks.aws import _s3_ops as ops
from blocks.aws._credentials import AwsCredentials, MinIOCredentials
from blocks.aws._s3_ops import Site
from blocks.aws._s3_payload import arun_tallied, run_tallied, s3_payload
from blocks.aws._transfer import Tally
from emitters import register_secret

__all__ = ["S3Bucket"]

_OBJECT = s3_payload()
_FOLDER = s3_payload(counts_objects=True)
_LISTING = s3_payload(moves_bytes=False, counts_objects=True)

PathLike = str | os.PathLike[str]


_TRANSFER_KWARGS = ("Config", "ExtraArgs")
# ExtraArgs whose values are keys: registered as secrets, so no log shows them.
_SECRET_ARGS = ("SSECustomerKey", "CopySourceSSECustomerKey", "SSEKMSEncryptionContext")


def _transfer_kwargs(kwargs: dict[str, Any], method: str) -> dict[str, Any]:
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


class S3Bucket(Block):
    """An S3 bucket (or a bucket of an S3-compatible store), optionally a folder
    of it.

    Every path is a key relative to ``bucket_folder``. Each method has an async
    twin prefixed ``a`` (``aread_path``...) that runs it in a worker thread, so
    the event loop goes on, with the same run context and the same events.
    Transfers go through boto3's transfer manager: objects from 8 MiB on move in
    parts, on several threads.

    Each call's outcome event records ``bucket``, the ``key`` or ``prefix``, and
    ``bytes`` and ``objects`` moved; a failure adds S3's ``error_code``
    (``NoSuchKey``, ``AccessDenied``...) and the HTTP ``status_code``. Errors are
    botocore's own exceptions, their messages naming the bucket and the key. The
    credentials' ``get_client`` emits its own events, and once the credentials
    are saved, every event of the bucket names their document (role
    ``nested-block``).

    Attributes:
        bucket_name: The bucket's name.
        credentials: The ``AwsCredentials`` or ``MinIOCredentials`` block to
            reach it with.
        bucket_folder: A folder of the bucket that every path is relative to.
    """

    block_type_slug: ClassVar[str] = "s3-bucket"

    bucket_name: str
    credentials: AwsCredentials | MinIOCredentials = Field(
        default_factory=AwsCredentials
    )
    bucket_folder: str = ""

    @field_validator("bucket_name")
    @classmethod
    def _valid_bucket_name(cls, value: str) -> str:
        if not value or "/" in value or value != value.strip():
            raise ValueError(
                "must be a bucket name, without '/' or spaces; put folders in "
                "bucket_folder"
            )
        return value

    @field_validator("bucket_folder")
    @classmethod
    def _clean_folder(cls, value: str) -> str:
        return value.strip("/")

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
        if isinstance(to_bucket, S3Bucket):
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

    # -- objects -------------------------------------------------------------------

    @event_payload(_OBJECT)
    def read_path(self, path: PathLike) -> bytes:
        """Return the content of the object at ``path``.

        Raises:
            botocore.exceptions.ClientError: S3 refused: ``NoSuchKey``,
                ``NoSuchBucket``, ``AccessDenied``... (botocore raises the
                subclasses ``client.exceptions.NoSuchKey``...); the message names
                the bucket and the key.
            botocore.exceptions.BotoCoreError: The endpoint could not be reached
                (``EndpointConnectionError``, ``ConnectTimeoutError``), or no
                credentials were found (``NoCredentialsError``).
        """
        return run_tallied(self._read_path, path)

    @event_payload(_OBJECT)
    async def aread_path(self, path: PathLike) -> bytes:
        """Return the content of the object at ``path``; see :meth:`read_path`."""
        return await arun_tallied(self._read_path, path)

    @event_payload(_OBJECT)
    def write_path(self, path: PathLike, content: bytes) -> str:
        """Store ``content`` as the object at ``path``; return its key.

        Raises:
            TypeError: ``content`` is not bytes.
            botocore.exceptions.ClientError: S3 refused; see :meth:`read_path`.
        """
        return run_tallied(self._write_path, path, content)

    @event_payload(_OBJECT)
    async def awrite_path(self, path: PathLike, content: bytes) -> str:
        """Store ``content`` as the object at ``path``; see :meth:`write_path`."""
        return await arun_tallied(self._write_path, path, content)

    @event_payload(_LISTING)
    def list_objects(
        self,
        folder: PathLike = "",
        delimiter: str = "",
        page_size: int | None = None,
        max_items: int | None = None,
        jmespath_query: str | None = None,
        *,
        prefix: str | None = None,
    ) -> list[Any]:
        """Return the objects under ``folder`` (or whose keys start with
        ``prefix``), as S3 lists them.

        Each is a dict with ``Key`` (the full key, ``bucket_folder`` included),
        ``Size``, ``LastModified`` and ``ETag``.

        Args:
            folder: A folder of ``bucket_folder``; empty for all of it.
            delimiter: ``"/"`` to list only the folder's own objects, not those
                of its subfolders.
            page_size: Objects per request (S3's default: 1000).
            max_items: Stop after this many objects.
            jmespath_query: A JMESPath expression run on each page of
                ``ListObjectsV2`` (boto3's ``PageIterator.search``); what it
                selects is returned instead, such as
                ``"Contents[?Size > `100`][]"``.
            prefix: A raw key prefix within ``bucket_folder``, no ``/`` added:
                ``"orders/2024-"`` finds ``orders/2024-06-01.csv``. Not with
                ``folder``.

        Raises:
            ValueError: Both ``folder`` and ``prefix``.
            jmespath.exceptions.ParseError: ``jmespath_query`` is not JMESPath.
        """
        return run_tallied(
            self._list_objects,
            folder,
            delimiter,
            page_size,
            max_items,
            jmespath_query,
            prefix,
        )

    @event_payload(_LISTING)
    async def alist_objects(
        self,
        folder: PathLike = "",
        delimiter: str = "",
        page_size: int | None = None,
        max_items: int | None = None,
        jmespath_query: str | None = None,
        *,
        prefix: str | None = None,
    ) -> list[Any]:
        """Return the objects under ``folder``; see :meth:`list_objects`."""
        return await arun_tallied(
            self._list_objects,
            folder,
            delimiter,
            page_size,
            max_items,
            jmespath_query,
            prefix,
        )

    @event_payload(_OBJECT)
    def download_object_to_path(
        self,
        from_path: PathLike,
        to_path: PathLike | None = None,
        **download_kwargs: Any,
    ) -> Path:
        """Download the object at ``from_path`` to a local file; return its
        absolute path.

        Args:
            from_path: The object's path in the bucket.
            to_path: The local file (its folders are made); by default the key's
                last part, in the current directory.
            **download_kwargs: As boto3's transfers take them: ``ExtraArgs`` (S3
                arguments such as ``VersionId``,
                ``SSECustomerKey``) and ``Config`` (a
                ``boto3.s3.transfer.TransferConfig``).

        Raises:
            TypeError: A keyword argument other than ``ExtraArgs`` or ``Config``.
            ValueError: An ``ExtraArgs`` name s3transfer does not allow here.
        """
        transfer = _transfer_kwargs(download_kwargs, "download_object_to_path")
        return run_tallied(self._download_object_to_path, from_path, to_path, transfer)

    @event_payload(_OBJECT)
    async def adownload_object_to_path(
        self,
        from_path: PathLike,
        to_path: PathLike | None = None,
        **download_kwargs: Any,
    ) -> Path:
        """Download an object to a local file; see :meth:`download_object_to_path`."""
        transfer = _transfer_kwargs(download_kwargs, "adownload_object_to_path")
        return await arun_tallied(
            self._download_object_to_path, from_path, to_path, transfer
        )

    @event_payload(_OBJECT)
    def download_object_to_file_object(
        self, from_path: PathLike, to_file_object: BinaryIO, **download_kwargs: Any
    ) -> BinaryIO:
        """Write the object at ``from_path`` into a binary file object; return it.

        ``download_kwargs``: see :meth:`download_object_to_path`.
        """
        transfer = _transfer_kwargs(download_kwargs, "download_object_to_file_object")
        return run_tallied(
            self._download_object_to_file_object, from_path, to_file_object, transfer
        )

    @event_payload(_OBJECT)
    async def adownload_object_to_file_object(
        self, from_path: PathLike, to_file_object: BinaryIO, **download_kwargs: Any
    ) -> BinaryIO:
        """Write an object into a binary file object; see
        :meth:`download_object_to_file_object`."""
        transfer = _transfer_kwargs(download_kwargs, "adownload_object_to_file_object")
        return await arun_tallied(
            self._download_object_to_file_object, from_path, to_file_object, transfer
        )

    @event_payload(_OBJECT)
    def upload_from_path(
        self, from_path: PathLike, to_path: PathLike | None = None, **upload_kwargs: Any
    ) -> str:
        """Upload a local file to ``to_path`` (by default its name); return the key.

        Args:
            from_path: The local file.
            to_path: The object's path in the bucket.
            **upload_kwargs: As boto3's transfers take them: ``ExtraArgs`` (S3
                arguments such as ``ContentType``,
                ``ServerSideEncryption``, ``ACL``, ``Metadata``) and ``Config`` (a
                ``boto3.s3.transfer.TransferConfig``).

        Raises:
            FileNotFoundError: No file at ``from_path``.
            TypeError: A keyword argument other than ``ExtraArgs`` or ``Config``.
            ValueError: An ``ExtraArgs`` name s3transfer does not allow here.
        """
        transfer = _transfer_kwargs(upload_kwargs, "upload_from_path")
        return run_tallied(self._upload_from_path, from_path, to_path, transfer)

    @event_payload(_OBJECT)
    async def aupload_from_path(
        self, from_path: PathLike, to_path: PathLike | None = None, **upload_kwargs: Any
    ) -> str:
        """Upload a local file; see :meth:`upload_from_path`."""
        transfer = _transfer_kwargs(upload_kwargs, "aupload_from_path")
        return await arun_tallied(self._upload_from_path, from_path, to_path, transfer)

    @event_payload(_OBJECT)
    def upload_from_file_object(
        self, from_file_object: BinaryIO, to_path: PathLike, **upload_kwargs: Any
    ) -> str:
        """Upload what a readable binary file object holds; return the key.

        ``upload_kwargs``: see :meth:`upload_from_path`.
        """
        transfer = _transfer_kwargs(upload_kwargs, "upload_from_file_object")
        return run_tallied(
            self._upload_from_file_object, from_file_object, to_path, transfer
        )

    @event_payload(_OBJECT)
    async def aupload_from_file_object(
        self, from_file_object: BinaryIO, to_path: PathLike, **upload_kwargs: Any
    ) -> str:
        """Upload a binary file object; see :meth:`upload_from_file_object`."""
        transfer = _transfer_kwargs(upload_kwargs, "aupload_from_file_object")
        return await arun_tallied(
            self._upload_from_file_object, from_file_object, to_path, transfer
        )

    # -- folders -------------------------------------------------------------------

    @event_payload(_FOLDER)
    def download_folder_to_path(
        self,
        from_folder: PathLike = "",
        to_folder: PathLike | None = None,
        **download_kwargs: Any,
    ) -> Path:
        """Download every object under ``from_folder`` to the same paths locally.

        A progress bar shows on stderr when it is a terminal. Keys ending with
        ``/`` are skipped; a key whose path would leave ``to_folder`` (``..``) is
        a ``ValueError``, raised before anything is downloaded.

        Args:
            from_folder: A folder of ``bucket_folder``; empty for all of it.
            to_folder: The local folder; by default the current directory.
            **download_kwargs: As boto3's transfers take them: ``ExtraArgs`` (S3
                arguments such as ``VersionId``,
                ``SSECustomerKey``) and ``Config`` (a
                ``boto3.s3.transfer.TransferConfig``).
        """
        transfer = _transfer_kwargs(download_kwargs, "download_folder_to_path")
        return run_tallied(
            self._download_folder_to_path, from_folder, to_folder, transfer
        )

    @event_payload(_FOLDER)
    async def adownload_folder_to_path(
        self,
        from_folder: PathLike = "",
        to_folder: PathLike | None = None,
        **download_kwargs: Any,
    ) -> Path:
        """Download a folder; see :meth:`download_folder_to_path`."""
        transfer = _transfer_kwargs(download_kwargs, "adownload_folder_to_path")
        return await arun_tallied(
            self._download_folder_to_path, from_folder, to_folder, transfer
        )

    @event_payload(_FOLDER)
    def upload_from_folder(
        self,
        from_folder: PathLike,
        to_folder: PathLike | None = None,
        **upload_kwargs: Any,
    ) -> str:
        """Upload every file under a local folder, subfolders included; return
        the prefix they were put under.

        A progress bar shows on stderr when it is a terminal.

        Args:
            from_folder: The local folder.
            to_folder: A folder of ``bucket_folder``; by default ``bucket_folder``.
            **upload_kwargs: As boto3's transfers take them: ``ExtraArgs`` (S3
                arguments such as ``ContentType``,
                ``ServerSideEncryption``, ``ACL``, ``Metadata``) and ``Config`` (a
                ``boto3.s3.transfer.TransferConfig``).

        Raises:
            NotADirectoryError: No folder at ``from_folder``.
        """
        transfer = _transfer_kwargs(upload_kwargs, "upload_from_folder")
        return run_tallied(self._upload_from_folder, from_folder, to_folder, transfer)

    @event_payload(_FOLDER)
    async def aupload_from_folder(
        self,
        from_folder: PathLike,
        to_folder: PathLike | None = None,
        **upload_kwargs: Any,
    ) -> str:
        """Upload a local folder; see :meth:`upload_from_folder`."""
        transfer = _transfer_kwargs(upload_kwargs, "aupload_from_folder")
        return await arun_tallied(
            self._upload_from_folder, from_folder, to_folder, transfer
        )

    # -- copies and deletes --------------------------------------------------------

    @event_payload(_OBJECT)
    def copy_object(
        self,
        from_path: PathLike,
        to_path: PathLike,
        to_bucket: S3Bucket | str | None = None,
        **copy_kwargs: Any,
    ) -> str:
        """Copy an object, on the server side, within this bucket or to another;
        return the new key.

        Raises:
            ValueError: The destination is the object itself.
            botocore.exceptions.ClientError: S3 refused; see :meth:`read_path`.

        Args:
            from_path: The object's path in this bucket.
            to_path: Its new path: in ``to_bucket``'s ``bucket_folder`` when
                ``to_bucket`` is an ``S3Bucket``, a plain key when it is a name.
            to_bucket: Another bucket on the same store, reached with these
                credentials; by default this one.
            **copy_kwargs: ``ExtraArgs`` (``MetadataDirective``,
                ``ContentType``, ``ServerSideEncryption``...) and ``Config``,
                as boto3's ``copy`` takes them.
        """
        transfer = _transfer_kwargs(copy_kwargs, "copy_object")
        return run_tallied(self._copy_object, from_path, to_path, to_bucket, transfer)

    @event_payload(_OBJECT)
    async def acopy_object(
        self,
        from_path: PathLike,
        to_path: PathLike,
        to_bucket: S3Bucket | str | None = None,
        **copy_kwargs: Any,
    ) -> str:
        """Copy an object; see :meth:`copy_object`."""
        transfer = _transfer_kwargs(copy_kwargs, "acopy_object")
        return await arun_tallied(
            self._copy_object, from_path, to_path, to_bucket, transfer
        )

    @event_payload(_OBJECT)
    def move_object(
        self,
        from_path: PathLike,
        to_path: PathLike,
        to_bucket: S3Bucket | str | None = None,
    ) -> str:
        """Copy an object as :meth:`copy_object` does, then delete the original;
        return the new key."""
        return run_tallied(self._move_object, from_path, to_path, to_bucket)

    @event_payload(_OBJECT)
    async def amove_object(
        self,
        from_path: PathLike,
        to_path: PathLike,
        to_bucket: S3Bucket | str | None = None,
    ) -> str:
        """Move an object; see :meth:`move_object`."""
        return await arun_tallied(self._move_object, from_path, to_path, to_bucket)

    @event_payload(_LISTING)
    def delete_objects(self, paths: Iterable[PathLike]) -> list[str]:
        """Delete the objects at ``paths``; return the keys deleted.

        A missing object is no error, as in S3. Keys go a thousand per request.

        Raises:
            TypeError: ``paths`` is one path rather than a list of them.
            botocore.exceptions.ClientError: S3 refused some keys; it has the
                first refusal's code, and its message names that key and counts
                the others. The keys that could be deleted were.
        """
        return run_tallied(self._delete_objects, paths)

    @event_payload(_LISTING)
    async def adelete_objects(self, paths: Iterable[PathLike]) -> list[str]:
        """Delete objects; see :meth:`delete_objects`."""
        return await arun_tallied(self._delete_objects, paths)

    @event_payload(_OBJECT)
    def stream_from(
        self,
        bucket: S3Bucket,
        from_path: PathLike,
        to_path: PathLike | None = None,
        **upload_kwargs: Any,
    ) -> str:
        """Stream an object of another bucket into this one; return the new key.

        The other bucket may be on another store, with other credentials: the
        content flows through this process in parts, never whole in memory.

        Args:
            bucket: The bucket to read from.
            from_path: The object's path in that bucket.
            to_path: Its path in this bucket; by default the key's last part.
            **upload_kwargs: As boto3's transfers take them: ``ExtraArgs`` (S3
                arguments such as ``ContentType``,
                ``ServerSideEncryption``, ``ACL``, ``Metadata``) and ``Config`` (a
                ``boto3.s3.transfer.TransferConfig``).
        """
        transfer = _transfer_kwargs(upload_kwargs, "stream_from")
        return run_tallied(self._stream_from, bucket, from_path, to_path, transfer)

    @event_payload(_OBJECT)
    async def astream_from(
        self,
        bucket: S3Bucket,
        from_path: PathLike,
        to_path: PathLike | None = None,
        **upload_kwargs: Any,
    ) -> str:
        """Stream an object of another bucket here; see :meth:`stream_from`."""
        transfer = _transfer_kwargs(upload_kwargs, "astream_from")
        return await arun_tallied(
            self._stream_from, bucket, from_path, to_path, transfer
        )
