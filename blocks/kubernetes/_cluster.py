"""The ``KubernetesCluster`` block: how to reach a cluster's API server."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import yaml  # type: ignore[import-untyped]
from kubernetes import client, config
from pydantic import SecretStr, model_validator

from blocks._block import Block
from emitters import register_secret
from emitters._sdk import protect_logger

__all__ = ["KubernetesCluster"]

# The client logs requests at DEBUG, bearer tokens included.
for _name in ("kubernetes", "kubernetes.client.rest", "urllib3.connectionpool"):
    protect_logger(_name)

_USER_SECRETS = ("token", "password", "client-key-data")


class KubernetesCluster(Block):
    """How to reach a Kubernetes cluster: kubeconfig content, a kubeconfig file,
    or the service account of the pod it runs in.

    Give at most one of ``kubeconfig``, ``kubeconfig_path`` and ``in_cluster``;
    with none, the client's default applies (``KUBECONFIG`` or
    ``~/.kube/config``). ``context`` picks a context of the kubeconfig.

    Secret: ``kubeconfig`` (and the tokens, passwords and client keys in it):
    masked in ``repr`` and dumps, encrypted when saved, never in an event, an
    error message or a log line.

    Example:
        >>> from blocks.kubernetes import KubernetesCluster
        >>> KubernetesCluster(in_cluster=True).in_cluster
        True

    Attributes:
        kubeconfig: The content of a kubeconfig file (YAML).
        kubeconfig_path: The path of a kubeconfig file.
        context: The kubeconfig context to use; None for its current context.
        in_cluster: Use the service account of the pod this runs in.
    """

    block_type_slug: ClassVar[str] = "kubernetes-cluster"

    kubeconfig: SecretStr | None = None
    kubeconfig_path: str | None = None
    context: str | None = None
    in_cluster: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        given = [
            name
            for name, value in (
                ("kubeconfig", self.kubeconfig),
                ("kubeconfig_path", self.kubeconfig_path),
                ("in_cluster", self.in_cluster or None),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give one of {', '.join(given)}, not several")
        if self.in_cluster and self.context:
            raise ValueError("context needs a kubeconfig, not in_cluster")
        if self.kubeconfig is not None:
            self._config_dict()
        return self

    def _config_dict(self) -> dict[str, Any]:
        assert self.kubeconfig is not None
        try:
            loaded = yaml.safe_load(self.kubeconfig.get_secret_value())
        except yaml.YAMLError:
            raise ValueError("kubeconfig is not valid YAML") from None
        if not isinstance(loaded, dict):
            raise ValueError("kubeconfig must be a kubeconfig document (a mapping)")
        for user in loaded.get("users") or []:
            settings = (user or {}).get("user") or {}
            if isinstance(settings, dict):
                register_secret(
                    *(str(settings[k]) for k in _USER_SECRETS if settings.get(k))
                )
        return loaded

    def get_api_client(self) -> Any:
        """Return a new ``kubernetes.client.ApiClient`` for this cluster.

        Raises:
            kubernetes.config.ConfigException: The kubeconfig or the in-cluster
                environment does not describe a cluster.
            FileNotFoundError: ``kubeconfig_path`` names no file.
        """
        if self.in_cluster:
            configuration = client.Configuration()
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            return client.ApiClient(configuration)
        if self.kubeconfig is not None:
            return config.new_client_from_config_dict(  # type: ignore[no-untyped-call]
                self._config_dict(), context=self.context
            )
        if self.kubeconfig_path is not None:
            path = Path(self.kubeconfig_path).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"kubeconfig_path {path} is not a file")
            return config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(path), context=self.context
            )
        return config.new_client_from_config(  # type: ignore[no-untyped-call]
            context=self.context
        )
