"""The ``AwsCredentials`` and ``MinIOCredentials`` blocks: keys or a profile, a
region, client options and a role to assume, with one boto3 client per service
made on first use and shared by every thread."""

from __future__ import annotations

from typing import Any, ClassVar, Self

import boto3  # type: ignore[import-untyped]
from botocore import UNSIGNED  # type: ignore[import-untyped]
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
from blocks.aws._clients import AwsClients, ClientCache
from emitters._sdk import check_http_url, protect_logger

__all__ = ["AwsClientParameters", "AwsCredentials", "MinIOCredentials"]

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
        >>> from blocks.aws import AwsClientParameters
        >>> params = AwsClientParameters(
        ...     endpoint_url="http://127.0.0.1:9000",
        ...     config={"connect_timeout": 2, "retries": {"max_attempts": 2}},
        ... )
        >>> kwargs = params.client_kwargs()
        >>> kwargs["endpoint_url"], kwargs["config"].connect_timeout
        ('http://127.0.0.1:9000', 2)

    Attributes:
        endpoint_url: The service's URL, ``http://`` or ``https://``; None for
            AWS's own endpoint of the region.
        verify: Check the server's TLS certificate: True (the default) leaves the
            CA bundle to boto3, which takes ``AWS_CA_BUNDLE`` or ``ca_bundle`` of
            the AWS config file, else its own bundle; False does not check; a
            path checks with that CA bundle.
        verify_cert_path: The path of a CA bundle to check the certificate with
            (Prefect's spelling of ``verify="<path>"``).
        use_ssl: Use TLS when the endpoint is chosen by region.
        api_version: A service API version other than the latest.
        config: Keyword arguments of ``botocore.config.Config``: ``connect_timeout``,
            ``read_timeout``, ``retries``, ``max_pool_connections``,
            ``s3={"addressing_style": "path"}``..., or a ``Config`` itself (kept
            as the options it was given). ``signature_version="unsigned"``
            stands for botocore's ``UNSIGNED``: anonymous requests, for public
            buckets.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    endpoint_url: str | None = None
    verify: bool | str = True
    verify_cert_path: str | None = None
    use_ssl: bool = True
    api_version: str | None = None
    config: dict[str, Any] | None = None

    @field_validator("config", mode="before")
    @classmethod
    def _config_options(cls, value: Any) -> Any:
        if isinstance(value, Config):
            # A Config keeps the options it was given; those are what is saved.
            value = dict(value._user_provided_options)
        if isinstance(value, dict) and value.get("signature_version") is UNSIGNED:
            value = {**value, "signature_version": "unsigned"}
        return value

    @model_validator(mode="after")
    def _one_verify(self) -> Self:
        if self.verify_cert_path is not None:
            if self.verify is False:
                raise ValueError(
                    "verify=False turns certificate checks off, so verify_cert_path "
                    "cannot be used with it: give one or the other"
                )
            if isinstance(self.verify, str) and self.verify != self.verify_cert_path:
                raise ValueError(
                    "verify and verify_cert_path name two CA bundles: give one"
                )
        if isinstance(self.verify, str) and not self.verify:
            raise ValueError("verify must be True, False or a CA bundle's path")
        return self

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
        kwargs: dict[str, Any] = {"use_ssl": self.use_ssl}
        # verify=True is not passed: boto3 then finds the CA bundle itself
        # (AWS_CA_BUNDLE, ca_bundle in the config file), as a plain client does.
        if self.verify is False:
            kwargs["verify"] = False
        elif self.verify_cert_path is not None:
            kwargs["verify"] = self.verify_cert_path
        elif isinstance(self.verify, str):
            kwargs["verify"] = self.verify
        if self.endpoint_url is not None:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.api_version is not None:
            kwargs["api_version"] = self.api_version
        if self.config is not None:
            options = dict(self.config)
            if options.get("signature_version") == "unsigned":
                options["signature_version"] = UNSIGNED
            kwargs["config"] = Config(**options)
        return kwargs


class AwsCredentials(AwsClients, Block):
    """Credentials for AWS, or for an S3-compatible store: keys or a profile,
    optionally a role to assume with them.

    ``get_client("s3")`` (or ``get_s3_client()``) returns a boto3 client made on
    first use and reused, by every thread and every equal block, for every later
    call; ``get_boto3_session()`` returns a new ``boto3.Session``. Give the keys,
    or a ``profile_name``, or neither to let boto3 find credentials itself
    (environment, config files, instance role). With ``assume_role_arn``, those
    credentials assume the role through STS, and the role's temporary
    credentials are assumed again before they expire.

    Equal blocks (same fields, secrets included) are equal and hash alike.

    Secret: ``aws_secret_access_key``, ``aws_session_token`` and the assumed
    role's credentials: masked in ``repr`` and dumps, encrypted when saved,
    never in an event, an error message or a log line.

    Attributes:
        aws_access_key_id: The access key id (not secret: it names the key).
        aws_secret_access_key: The secret access key.
        aws_session_token: The session token of temporary credentials.
        profile_name: A profile of the AWS config files.
        region_name: The region, such as ``eu-west-1``.
        aws_client_parameters: Endpoint, TLS and botocore options of the clients.
        assume_role_arn: The ARN of a role to assume with these credentials.
        assume_role_kwargs: More arguments of STS ``AssumeRole``:
            ``RoleSessionName`` (``"eventblocks"`` by default),
            ``DurationSeconds``, ``ExternalId``, ``Policy``...
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
    assume_role_arn: str | None = None
    assume_role_kwargs: dict[str, Any] = Field(default_factory=dict)

    _cache: ClientCache | None = PrivateAttr(default=None)

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
        if self.assume_role_kwargs and not self.assume_role_arn:
            raise ValueError("assume_role_kwargs needs assume_role_arn")
        if "RoleArn" in self.assume_role_kwargs:
            raise ValueError(
                "assume_role_kwargs must not hold RoleArn: give it as assume_role_arn"
            )
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if not name.startswith("_"):
            # Clients made with the old values must not serve the new ones.
            self._cache = None

    def _base_session(self) -> boto3.Session:
        secret = self.aws_secret_access_key
        token = self.aws_session_token
        return boto3.Session(
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=None if secret is None else secret.get_secret_value(),
            aws_session_token=None if token is None else token.get_secret_value(),
            profile_name=self.profile_name,
            region_name=self.region_name,
        )

    def _role(self) -> tuple[str | None, dict[str, Any]]:
        return self.assume_role_arn, dict(self.assume_role_kwargs)

    def _own_secrets(self) -> list[str]:
        return [
            value.get_secret_value()
            for value in (self.aws_secret_access_key, self.aws_session_token)
            if value is not None
        ]

    __hash__ = AwsClients.__hash__


class MinIOCredentials(AwsClients, Block):
    """Credentials for a MinIO server: its root user (or any access key) and
    password, and its endpoint in ``aws_client_parameters``.

    The same client methods as :class:`AwsCredentials` (``get_client``,
    ``get_s3_client``...), so an ``S3Bucket`` takes either.

    Example:
        >>> from blocks.aws import MinIOCredentials
        >>> minio = MinIOCredentials(
        ...     minio_root_user="minio",
        ...     minio_root_password="minio-password",
        ...     aws_client_parameters={"endpoint_url": "http://127.0.0.1:9000"},
        ... )
        >>> minio.minio_root_password
        SecretStr('**********')

    Secret: ``minio_root_password``, as ``aws_secret_access_key`` is.

    Attributes:
        minio_root_user: The user (the access key id).
        minio_root_password: Its password (the secret access key).
        region_name: The region the server answers for; MinIO's default is
            ``us-east-1``.
        aws_client_parameters: The endpoint (``endpoint_url``), TLS and botocore
            options of the clients.
    """

    block_type_slug: ClassVar[str] = "minio-credentials"

    minio_root_user: str
    minio_root_password: SecretStr
    region_name: str | None = None
    aws_client_parameters: AwsClientParameters = Field(
        default_factory=AwsClientParameters
    )

    _cache: ClientCache | None = PrivateAttr(default=None)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if not name.startswith("_"):
            self._cache = None

    def _base_session(self) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=self.minio_root_user,
            aws_secret_access_key=self.minio_root_password.get_secret_value(),
            region_name=self.region_name,
        )

    def _own_secrets(self) -> list[str]:
        return [self.minio_root_password.get_secret_value()]

    __hash__ = AwsClients.__hash__
