"""The ``S3Bucket`` block: read, write, list, transfer, copy and delete objects."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from pydantic import Field, field_validator

from blocks._block import Block
from blocks._instrument import event_payload
from blocks.aws._credentials import AwsCredentials, MinIOCredentials
from blocks.aws._s3_payload import arun_tallied, run_tallied, s3_payload
from blocks.aws._s3_work import BucketWork, PathLike, transfer_kwargs

__all__ = ["S3Bucket"]

_OBJECT = s3_payload()
_FOLDER = s3_payload(counts_objects=True)
_LISTING = s3_payload(moves_bytes=False, counts_objects=True)


class S3Bucket(BucketWork, Block):
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
        transfer = transfer_kwargs(download_kwargs, "download_object_to_path")
        return run_tallied(self._download_object_to_path, from_path, to_path, transfer)

    @event_payload(_OBJECT)
    async def adownload_object_to_path(
        self,
        from_path: PathLike,
        to_path: PathLike | None = None,
        **download_kwargs: Any,
    ) -> Path:
        """Download an object to a local file; see :meth:`download_object_to_path`."""
        transfer = transfer_kwargs(download_kwargs, "adownload_object_to_path")
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
        transfer = transfer_kwargs(download_kwargs, "download_object_to_file_object")
        return run_tallied(
            self._download_object_to_file_object, from_path, to_file_object, transfer
        )

    @event_payload(_OBJECT)
    async def adownload_object_to_file_object(
        self, from_path: PathLike, to_file_object: BinaryIO, **download_kwargs: Any
    ) -> BinaryIO:
        """Write an object into a binary file object; see
        :meth:`download_object_to_file_object`."""
        transfer = transfer_kwargs(download_kwargs, "adownload_object_to_file_object")
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
        transfer = transfer_kwargs(upload_kwargs, "upload_from_path")
        return run_tallied(self._upload_from_path, from_path, to_path, transfer)

    @event_payload(_OBJECT)
    async def aupload_from_path(
        self, from_path: PathLike, to_path: PathLike | None = None, **upload_kwargs: Any
    ) -> str:
        """Upload a local file; see :meth:`upload_from_path`."""
        transfer = transfer_kwargs(upload_kwargs, "aupload_from_path")
        return await arun_tallied(self._upload_from_path, from_path, to_path, transfer)

    @event_payload(_OBJECT)
    def upload_from_file_object(
        self, from_file_object: BinaryIO, to_path: PathLike, **upload_kwargs: Any
    ) -> str:
        """Upload what a readable binary file object holds; return the key.

        ``upload_kwargs``: see :meth:`upload_from_path`.
        """
        transfer = transfer_kwargs(upload_kwargs, "upload_from_file_object")
        return run_tallied(
            self._upload_from_file_object, from_file_object, to_path, transfer
        )

    @event_payload(_OBJECT)
    async def aupload_from_file_object(
        self, from_file_object: BinaryIO, to_path: PathLike, **upload_kwargs: Any
    ) -> str:
        """Upload a binary file object; see :meth:`upload_from_file_object`."""
        transfer = transfer_kwargs(upload_kwargs, "aupload_from_file_object")
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
        transfer = transfer_kwargs(download_kwargs, "download_folder_to_path")
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
        transfer = transfer_kwargs(download_kwargs, "adownload_folder_to_path")
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
        transfer = transfer_kwargs(upload_kwargs, "upload_from_folder")
        return run_tallied(self._upload_from_folder, from_folder, to_folder, transfer)

    @event_payload(_FOLDER)
    async def aupload_from_folder(
        self,
        from_folder: PathLike,
        to_folder: PathLike | None = None,
        **upload_kwargs: Any,
    ) -> str:
        """Upload a local folder; see :meth:`upload_from_folder`."""
        transfer = transfer_kwargs(upload_kwargs, "aupload_from_folder")
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
        transfer = transfer_kwargs(copy_kwargs, "copy_object")
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
        transfer = transfer_kwargs(copy_kwargs, "acopy_object")
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
        transfer = transfer_kwargs(upload_kwargs, "stream_from")
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
        transfer = transfer_kwargs(upload_kwargs, "astream_from")
        return await arun_tallied(
            self._stream_from, bucket, from_path, to_path, transfer
        )
