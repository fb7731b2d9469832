"""The ``AwsCredentials`` block: keys or a profile, a region, and client options,
with one boto3 client per service made on first use and shared by every thread."""

from __future__ import annotations

import inspect
import threading
from typing import Any, ClassVar, Self

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from blocks._block import Block
from blocks._instrument import event_payload, no_events
from emitters._sdk import check_http_url, protect_logger

__all__ = ["AwsClientParameters", "AwsCredentials"]

# botocore and urllib3 log signed requests at DEBUG, session token included: mask
# the registered secrets in what their loggers write (a filter on a parent logger
# does not see its children's records, so each is named).
for _name in (
    "botocore",
    "botocore.auth",
    "botocore.client",
    "botocore.credentials",
    "botocore.endpoint",
    "botocore.hooks",
    "botocore.httpsession",
    "botocore.parsers",
    "botocore.regions",
    "botocore.retryhandler",
    "s3transfer",
    "urllib3.connectionpool",
):
    protect_logger(_name)


class AwsClientParameters(BaseModel):
    """Options for the boto3 clients an ``AwsCredentials`` block makes.

    Set ``endpoint_url`` to talk to an S3-compatible store (MinIO, Ceph, moto) or a
    VPC endpoint instead of AWS itself.

    Example:
        >>> AwsClientParameters(
        ...     endpoint_url="http://127.0.0.1:9000",
        ...     config={"connect_timeout": 2, "retries": {"max_attempts": 2}},
        ... )

    Attributes:
        endpoint_url: The service's URL, ``http://`` or ``https://``; None for
            AWS's own endpoint of the region.
        verify: Check the server's TLS certificate: True, False, or the path of a
            CA bundle to check it with.
        use_ssl: Use TLS when the endpoint is chosen by region.
        api_version: A service API version other than the latest.
        config: Keyword arguments of ``botocore.config.Config``: ``connect_timeout``,
            ``read_timeout``, ``retries``, ``max_pool_connections``,
            ``s3={"addressing_style": "path"}``...
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    endpoint_url: str | None = None
    verify: bool | str = True
    use_ssl: bool = True
    api_version: str | None = None
    config: dict[str, Any] | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _valid_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = check_http_url(value)
        if url.userinfo:
            raise ValueError(
                "must not contain a user name or password; give the keys as "
                "aws_access_key_id and aws_secret_access_key"
            )
        return value

    @field_validator("config")
    @classmethod
    def _valid_config(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                Config(**value)
            except TypeError as exc:
                raise ValueError(
                    f"is not valid for botocore.config.Config: {exc}"
                ) from None
        return value

    def client_kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments of ``boto3.Session.client`` they stand for."""
        kwargs: dict[str, Any] = {"use_ssl": self.use_ssl, "verify": self.verify}
        if self.endpoint_url is not None:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.api_version is not None:
            kwargs["api_version"] = self.api_version
        if self.config is not None:
            kwargs["config"] = Config(**self.config)
        return kwargs


class ClientCache:
    """The boto3 session and clients of one credentials block, made once each.

    boto3 clients are safe to share between threads, but a session is not safe to
    make clients from concurrently: the lock covers that. A copy of the holder
    starts empty, so copies of a block never share clients.
    """

    __slots__ = ("_clients", "_lock", "_session")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: boto3.Session | None = None
        self._clients: dict[str, Any] = {}

    def __copy__(self) -> ClientCache:
        return ClientCache()

    def __deepcopy__(self, memo: dict[int, Any]) -> ClientCache:
        return ClientCache()

    def __reduce__(self) -> tuple[type[ClientCache], tuple[()]]:
        return ClientCache, ()

    def get(self, service: str, credentials: AwsCredentials) -> Any:
        """Return the client for ``service``, making it (and the session) once."""
        client = self._clients.get(service)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                if self._session is None:
                    self._session = credentials._new_session()
                client = self._session.client(
                    service, **credentials.aws_client_parameters.client_kwargs()
                )
                self._clients[service] = client
            return client

    def clear(self) -> None:
        """Forget the session and close the clients; the next call makes new ones."""
        with self._lock:
            clients, self._clients, self._session = self._clients, {}, None
        for client in clients.values():
            client.close()


def _client_payload(args: inspect.BoundArguments, outcome: Any) -> dict[str, Any]:
    detail: dict[str, Any] = {"service": args.arguments["service_name"]}
    meta = getattr(outcome, "meta", None)
    if meta is not None:
        detail["region"] = meta.region_name
        detail["endpoint_url"] = meta.endpoint_url
    return detail


class AwsCredentials(Block):
    """Credentials for AWS, or for an S3-compatible store: keys or a profile.

    ``get_client("s3")`` returns a boto3 client made on first use and reused, by
    every thread, for every later call on this block; ``get_boto3_session()``
    returns a new ``boto3.Session``. Give the keys, or a ``profile_name``, or
    neither to let boto3 find credentials itself (environment, config files,
    instance role).

    Secret: ``aws_secret_access_key`` and ``aws_session_token``: masked in
    ``repr`` and dumps, encrypted when saved, never in an event.

    Attributes:
        aws_access_key_id: The access key id (not secret: it names the key).
        aws_secret_access_key: The secret access key.
        aws_session_token: The session token of temporary credentials.
        profile_name: A profile of the AWS config files.
        region_name: The region, such as ``eu-west-1``.
        aws_client_parameters: Endpoint, TLS and botocore options of the clients.
    """

    block_type_slug: ClassVar[str] = "aws-credentials"

    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    profile_name: str | None = None
    region_name: str | None = None
    aws_client_parameters: AwsClientParameters = Field(
        default_factory=AwsClientParameters
    )

    _cache: ClientCache = PrivateAttr(default_factory=ClientCache)

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> Self:
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError(
                "aws_access_key_id and aws_secret_access_key go together: give both "
                "or neither"
            )
        if self.aws_session_token is not None and self.aws_access_key_id is None:
            raise ValueError(
                "aws_session_token needs aws_access_key_id and aws_secret_access_key"
            )
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if not name.startswith("_"):
            # Clients made with the old values must not serve the new ones.
            self._cache.clear()

    def _new_session(self) -> boto3.Session:
        secret = self.aws_secret_access_key
        token = self.aws_session_token
        return boto3.Session(
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=None if secret is None else secret.get_secret_value(),
            aws_session_token=None if token is None else token.get_secret_value(),
            profile_name=self.profile_name,
            region_name=self.region_name,
        )

    def _secret_values(self) -> list[str]:
        """The secret values an error message must never show."""
        return [
            value.get_secret_value()
            for value in (self.aws_secret_access_key, self.aws_session_token)
            if value is not None
        ]

    def get_boto3_session(self) -> boto3.Session:
        """Return a new ``boto3.Session`` with these credentials and region.

        Raises:
            botocore.exceptions.ProfileNotFound: ``profile_name`` names no profile.
        """
        return self._new_session()

    @event_payload(_client_payload)
    def get_client(self, service_name: str) -> Any:
        """Return the boto3 client for ``service_name`` (``"s3"``, ``"sts"``...).

        The client is made on the first call for that service, with
        ``aws_client_parameters``, and the same object is returned afterwards, to
        any thread: boto3 clients are thread-safe, and reusing one keeps its
        connection pool. Changing a field of the block drops the clients made so
        far.

        Raises:
            botocore.exceptions.ProfileNotFound: ``profile_name`` names no profile.
            botocore.exceptions.UnknownServiceError: No such service.
        """
        return self._cache.get(service_name, self)

    @no_events
    def close(self) -> None:
        """Close the clients made so far and their connections.

        A later ``get_client`` makes new ones. No events: this only releases
        connections.
        """
        self._cache.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
