"""The boto3 clients of a credentials block: one per service, made on first use,
shared by every thread and by every equal block, and refreshed role credentials.

A credentials block (``AwsCredentials``, ``MinIOCredentials``) hashes by what it
holds: two equal blocks find the same :class:`ClientCache` and so the same
clients, the way Prefect's cached clients are shared.
"""

from __future__ import annotations

import inspect
import re
import threading
import weakref
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self

import boto3  # type: ignore[import-untyped]
from botocore.credentials import RefreshableCredentials  # type: ignore[import-untyped]
from botocore.session import get_session  # type: ignore[import-untyped]

from blocks._instrument import event_payload, no_events
from blocks._secrets import fingerprint
from emitters import register_secret

if TYPE_CHECKING:
    from blocks.aws._credentials import AwsClientParameters

__all__ = [
    "AwsClients",
    "ClientCache",
    "ClientType",
    "assumed_role_session",
    "client_payload",
]

DEFAULT_ROLE_SESSION_NAME = "eventblocks"


class ClientType(StrEnum):
    """The AWS services Prefect names as client types; any service name works too."""

    S3 = "s3"
    ECS = "ecs"
    BATCH = "batch"
    SECRETS_MANAGER = "secretsmanager"
    STS = "sts"


class ClientCache:
    """The boto3 session and clients of one set of credentials, made once each.

    boto3 clients are safe to share between threads, but a session is not safe to
    make clients from concurrently: the lock covers that.
    """

    __slots__ = ("__weakref__", "_clients", "_lock", "_secrets", "_session")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: boto3.Session | None = None
        self._clients: dict[str, Any] = {}
        self._secrets: list[str] = []

    def get(self, service: str, credentials: AwsClients) -> Any:
        """Return the client for ``service``, making it (and the session) once."""
        client = self._clients.get(service)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                if self._session is None:
                    self._session = credentials._new_session(self._secrets)
                client = self._session.client(
                    service, **credentials.aws_client_parameters.client_kwargs()
                )
                self._clients[service] = client
            return client

    @property
    def secrets(self) -> list[str]:
        """Secret values learnt while making clients (assumed-role credentials)."""
        return list(self._secrets)

    def clear(self) -> None:
        """Forget the session and close the clients; the next call makes new ones."""
        with self._lock:
            clients, self._clients, self._session = self._clients, {}, None
        for client in clients.values():
            client.close()


# Equal blocks share their clients: the cache is found by the blocks' fingerprint
# and lives as long as a block holds it.
_SHARED: weakref.WeakValueDictionary[str, ClientCache] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def client_payload(
    service: str | None = None,
) -> Callable[[inspect.BoundArguments, Any], dict[str, Any]]:
    """Return the payload hook of a client method (``service``: its fixed one)."""

    def payload(args: inspect.BoundArguments, outcome: Any) -> dict[str, Any]:
        arguments = args.arguments
        named = arguments.get("service_name") or arguments.get("client_type")
        detail: dict[str, Any] = {"service": str(named) if named else service}
        role, _ = arguments["self"]._role()
        if role:
            detail["assume_role_arn"] = role
        meta = getattr(outcome, "meta", None)
        if meta is not None:
            detail["region"] = meta.region_name
            detail["endpoint_url"] = meta.endpoint_url
        return detail

    return payload


_SECRET_ELEMENTS = re.compile(rb"<(SecretAccessKey|SessionToken)>([^<]+)</\1>")


def _register_body_secrets(response_dict: dict[str, Any], **_: Any) -> None:
    """Register the secrets of an ``AssumeRole`` response before it is logged."""
    body = response_dict.get("body")
    if isinstance(body, bytes):
        register_secret(
            *(
                m.group(2).decode("utf-8", "replace")
                for m in _SECRET_ELEMENTS.finditer(body)
            )
        )


def assumed_role_session(
    base: boto3.Session,
    client_kwargs: dict[str, Any],
    role_arn: str,
    role_kwargs: dict[str, Any],
    region_name: str | None,
    secrets: list[str],
) -> boto3.Session:
    """Return a session whose credentials are those of ``role_arn``, assumed with
    ``base``'s and assumed again before they expire (botocore refreshes them 15
    minutes before, and must 10 minutes before)."""
    sts = base.client("sts", **client_kwargs)
    # botocore logs response bodies at DEBUG before parsing them: register the
    # role's secrets as soon as the body arrives, so the log line is masked.
    sts.meta.events.register("before-parse.sts.AssumeRole", _register_body_secrets)
    options = {"RoleSessionName": DEFAULT_ROLE_SESSION_NAME, **role_kwargs}

    def assume() -> dict[str, Any]:
        response = sts.assume_role(RoleArn=role_arn, **options)
        found = response["Credentials"]
        secret, token = found["SecretAccessKey"], found["SessionToken"]
        register_secret(secret, token)
        secrets[:] = [secret, token]
        return {
            "access_key": found["AccessKeyId"],
            "secret_key": secret,
            "token": token,
            "expiry_time": found["Expiration"].isoformat(),
        }

    refreshable = RefreshableCredentials.create_from_metadata(
        metadata=assume(), refresh_using=assume, method="sts-assume-role"
    )
    botocore_session = get_session()
    botocore_session._credentials = refreshable
    if region_name is not None:
        botocore_session.set_config_variable("region", region_name)
    return boto3.Session(botocore_session=botocore_session)


class AwsClients:
    """The client methods of a credentials block (a mixin of ``Block`` subclasses).

    A subclass defines ``aws_client_parameters``, ``_cache`` (a private
    ``ClientCache | None``), ``_base_session()`` and ``_own_secrets()``.
    """

    aws_client_parameters: AwsClientParameters
    _cache: ClientCache | None

    def _role(self) -> tuple[str | None, dict[str, Any]]:
        """The role to assume and the arguments of ``AssumeRole``; none here."""
        return None, {}

    def _base_session(self) -> boto3.Session:
        raise NotImplementedError

    def _own_secrets(self) -> list[str]:
        raise NotImplementedError

    def _new_session(self, secrets: list[str] | None = None) -> boto3.Session:
        base = self._base_session()
        role_arn, role_kwargs = self._role()
        if not role_arn:
            return base
        return assumed_role_session(
            base,
            self.aws_client_parameters.client_kwargs(),
            role_arn,
            role_kwargs,
            base.region_name,
            [] if secrets is None else secrets,
        )

    def _clients(self) -> ClientCache:
        cache = self._cache
        if cache is None:
            key = fingerprint(self)  # type: ignore[arg-type]
            with _SHARED_LOCK:
                cache = _SHARED.get(key)
                if cache is None:
                    cache = ClientCache()
                    _SHARED[key] = cache
            self._cache = cache
        return cache

    def _secret_values(self) -> list[str]:
        """The secret values an error message must never show."""
        cache = self._cache
        learnt = cache.secrets if cache is not None else []
        return [*self._own_secrets(), *learnt]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bool(self.__dict__ == other.__dict__)

    def __hash__(self) -> int:
        return hash(fingerprint(self))  # type: ignore[arg-type]

    def get_boto3_session(self) -> boto3.Session:
        """Return a new ``boto3.Session`` with these credentials and region (those
        of the assumed role when ``assume_role_arn`` is set).

        Raises:
            botocore.exceptions.ProfileNotFound: ``profile_name`` names no profile.
        """
        return self._new_session()

    @event_payload(client_payload())
    def get_client(
        self,
        service_name: str | ClientType | None = None,
        *,
        client_type: str | ClientType | None = None,
    ) -> Any:
        """Return the boto3 client for a service (``"s3"``, ``ClientType.S3``...).

        The client is made on the first call for that service, with
        ``aws_client_parameters``, and the same object is returned afterwards, to
        any thread and to any equal block: boto3 clients are thread-safe, and
        reusing one keeps its connection pool. Changing a field of the block
        makes it use other clients.

        Args:
            service_name: The service's name or a :class:`ClientType`.
            client_type: Prefect's name for ``service_name``; give one of them.

        Raises:
            ValueError: Neither or both of ``service_name`` and ``client_type``.
            botocore.exceptions.ProfileNotFound: ``profile_name`` names no profile.
            botocore.exceptions.UnknownServiceError: No such service.
        """
        if (service_name is None) == (client_type is None):
            raise ValueError(
                "get_client takes the service's name once: get_client('s3') or "
                "get_client(client_type='s3')"
            )
        service = service_name if service_name is not None else client_type
        return self._clients().get(str(service), self)

    @event_payload(client_payload(ClientType.S3.value))
    def get_s3_client(self) -> Any:
        """Return the S3 client; ``get_client("s3")``."""
        return self._clients().get(ClientType.S3.value, self)

    @event_payload(client_payload(ClientType.SECRETS_MANAGER.value))
    def get_secrets_manager_client(self) -> Any:
        """Return the Secrets Manager client; ``get_client("secretsmanager")``."""
        return self._clients().get(ClientType.SECRETS_MANAGER.value, self)

    @no_events
    def close(self) -> None:
        """Close the clients made so far and their connections (those of equal
        blocks too, which share them). A later call makes new ones. No events:
        this only releases connections."""
        if self._cache is not None:
            self._cache.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
