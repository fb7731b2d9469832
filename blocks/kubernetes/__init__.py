"""Kubernetes blocks on the official client: a cluster, and an observer of its pods.

:class:`KubernetesCluster` says how to reach a cluster: kubeconfig content (a
secret) or a kubeconfig file, a context, or the pod's own service account
(in-cluster). :class:`PodObserver` lists, then watches, the pods matching a label
selector in one namespace or all of them, and turns their phase changes,
evictions and OOM kills into ``infra.kubernetes.pod.*`` events related to the flow
run each pod's labels name.

Needs the ``kubernetes`` extra: ``pip install 'eventblocks[kubernetes]'``.

Example:
    >>> from blocks.kubernetes import KubernetesCluster, PodObserver
    >>> cluster = KubernetesCluster(context="prod")
    >>> observer = PodObserver(cluster, namespace="flows", selector="app=etl")
    >>> observer.run(once=True)  # doctest: +SKIP
"""

try:
    import kubernetes  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "blocks.kubernetes needs the kubernetes client, which is not installed: "
        "pip install 'eventblocks[kubernetes]'"
    ) from exc

from blocks.kubernetes._cluster import KubernetesCluster
from blocks.kubernetes._observer import PodObserver

__all__ = ["KubernetesCluster", "PodObserver"]

# This module is their public home: `eventblocks register -m blocks.kubernetes`
# finds the types defined here, and saved documents record it as their import path.
for _exported in (KubernetesCluster, PodObserver):
    _exported.__module__ = __name__
del _exported
