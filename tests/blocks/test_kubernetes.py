"""KubernetesCluster and PodObserver with the real kubernetes client.

No Kubernetes API server can run on this machine: the client talks to a local
HTTP server on 127.0.0.1 (the kube_api fixture, http.server in a thread) that
speaks the pod list and watch endpoints: chunked watch streams of JSON lines with
resource versions, a 410 Gone ERROR event, a connection dropped mid-stream. It
replays pod objects as a real cluster sends them (pending, running, an eviction
with reason Evicted, a container terminated with reason OOMKilled).
"""

from __future__ import annotations

import copy
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from blocks import BlockValidationError
from blocks.kubernetes import KubernetesCluster, PodObserver
from emitters.sql import SQLEventStore

FLOW_RUN = "0192f0c1-aaaa-7a3b-9c4d-5e6f7a8b9c0d"
NS = "flows"


def pod(
    name: str,
    uid: str,
    version: str,
    phase: str,
    *,
    labels: dict[str, str] | None = None,
    reason: str | None = None,
    message: str | None = None,
    container: dict[str, Any] | None = None,
    restarts: int = 0,
) -> dict[str, Any]:
    """A pod object as the API server sends it."""
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": "2026-03-01T12:00:01Z",
            }
        ],
        "hostIP": "10.0.0.7",
        "qosClass": "BestEffort",
        "startTime": "2026-03-01T12:00:01Z",
    }
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if container is not None:
        status["containerStatuses"] = [
            {
                "name": "main",
                "image": "etl:1",
                "imageID": "docker.io/library/etl@sha256:0f",
                "containerID": "containerd://a1b2",
                "ready": "running" in container,
                "restartCount": restarts,
                "started": "running" in container,
                "state": container,
                "lastState": {},
            }
        ]
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": uid,
            "resourceVersion": version,
            "creationTimestamp": "2026-03-01T12:00:00Z",
            "labels": {"app": "etl", **(labels or {})},
        },
        "spec": {
            "containers": [{"name": "main", "image": "etl:1"}],
            "restartPolicy": "Never",
            "nodeName": "node-a",
        },
        "status": status,
    }


RUN_LABELS = {
    "eventblocks.io/flow-run-id": FLOW_RUN,
    "eventblocks.io/flow-run-name": "nightly",
}
A_PENDING = pod("etl-a", "uid-a", "100", "Pending", labels=RUN_LABELS)
A_RUNNING = pod(
    "etl-a",
    "uid-a",
    "101",
    "Running",
    labels=RUN_LABELS,
    container={"running": {"startedAt": "2026-03-01T12:00:03Z"}},
)
B_PENDING = pod("etl-b", "uid-b", "102", "Pending", labels=RUN_LABELS)
B_EVICTED = pod(
    "etl-b",
    "uid-b",
    "150",
    "Failed",
    labels=RUN_LABELS,
    reason="Evicted",
    message="The node was low on resource: memory. Threshold quantity: 100Mi, "
    "available: 52Mi. Container main was using 310Mi, request is 0.",
)
C_OOM = pod(
    "etl-c",
    "uid-c",
    "201",
    "Failed",
    labels={"prefect.io/flow-run-id": "prefect-run-7"},
    container={
        "terminated": {
            "exitCode": 137,
            "reason": "OOMKilled",
            "startedAt": "2026-03-01T12:00:03Z",
            "finishedAt": "2026-03-01T12:01:30Z",
            "containerID": "containerd://c3d4",
        }
    },
)
GONE = {
    "type": "ERROR",
    "object": {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "too old resource version: 101 (150)",
        "reason": "Expired",
        "code": 410,
    },
}


def pod_list(version: str, *pods: dict[str, Any]) -> dict[str, Any]:
    """A PodList body."""
    return {
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": version},
        "items": [copy.deepcopy(p) for p in pods],
    }


def watch_event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """A watch event line."""
    return {"type": kind, "object": copy.deepcopy(obj)}


def script_cluster_story(kube_api: Any) -> None:
    """List A pending; watch: A running, B pending, then the connection drops;
    the resumed watch gets 410 Gone; the new list has A running and B evicted; its
    watch: a bookmark and C OOM-killed."""
    kube_api.lists += [
        pod_list("100", A_PENDING),
        pod_list("200", A_RUNNING, B_EVICTED),
    ]
    kube_api.watches += [
        [watch_event("MODIFIED", A_RUNNING), watch_event("ADDED", B_PENDING), "drop"],
        [GONE],
        [
            {
                "type": "BOOKMARK",
                "object": {"kind": "Pod", "metadata": {"resourceVersion": "200"}},
            },
            watch_event("ADDED", C_OOM),
        ],
    ]


def test_pod_story_is_stored_once_related_to_runs(
    kube_api: Any, store: SQLEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Pending, running, an eviction and an OOM kill are stored once each, at the
    pod's own times, related to their flow runs; the watch resumed from the last
    resource version after the drop and listed again after 410 Gone."""
    cluster = KubernetesCluster(kubeconfig=SecretStr(kube_api.kubeconfig()))
    script_cluster_story(kube_api)
    observer = PodObserver(cluster, namespace=NS, selector="app=etl")
    with caplog.at_level(logging.INFO, logger="blocks.kubernetes.pods"):
        stats = observer.run(once=True)

    names = [(e.resource.name, e.event) for e in store.events(name="infra.*")]
    assert sorted(names) == sorted(
        [
            ("flows/etl-a", "infra.kubernetes.pod.pending"),
            ("flows/etl-a", "infra.kubernetes.pod.running"),
            ("flows/etl-b", "infra.kubernetes.pod.pending"),
            ("flows/etl-b", "infra.kubernetes.pod.evicted"),
            ("flows/etl-c", "infra.kubernetes.pod.oom-killed"),
        ]
    )
    assert (stats.stored, stats.related, stats.errors) == (5, 5, 1)
    ours = store.events(flow_run=FLOW_RUN)
    assert len(ours) == 4
    evicted = next(e for e in ours if e.event.endswith("evicted"))
    assert evicted.resource.id == "kubernetes-pod.uid-b"
    assert evicted.resource.labels == {
        "namespace": NS,
        "node": "node-a",
        "phase": "failed",
    }
    assert evicted.payload["reason"] == "Evicted"
    assert "low on resource: memory" in evicted.payload["message"]
    [run] = evicted.related_by_role("flow-run")
    assert (run.id, run.name) == (f"flow-run.{FLOW_RUN}", "nightly")

    [oom] = store.events(flow_run="prefect-run-7")
    assert oom.event == "infra.kubernetes.pod.oom-killed"
    assert oom.occurred.isoformat() == "2026-03-01T12:01:30+00:00"
    assert oom.resource.labels["container.main.exit-code"] == "137"
    assert oom.resource.labels["container.main.reason"] == "OOMKilled"
    assert oom.payload["containers"][0]["exitCode"] == 137
    assert oom.related_by_role("flow-run")[0].labels == {"source": "prefect"}

    paths = [
        (path, q.get("watch"), q.get("resourceVersion"))
        for path, q in kube_api.requests
    ]
    assert paths == [
        (f"/api/v1/namespaces/{NS}/pods", None, None),
        (f"/api/v1/namespaces/{NS}/pods", "true", "100"),
        (f"/api/v1/namespaces/{NS}/pods", "true", "102"),  # resumed after the drop
        (f"/api/v1/namespaces/{NS}/pods", None, None),  # listed again after 410
        (f"/api/v1/namespaces/{NS}/pods", "true", "200"),
    ]
    assert all(q.get("labelSelector") == "app=etl" for _, q in kube_api.requests)
    assert "listing again" in caplog.text
    assert observer.resource_version == "201"


def test_all_namespaces_and_a_second_observer_store_nothing_twice(
    kube_api: Any, store: SQLEventStore
) -> None:
    """Without a namespace the observer lists every namespace; a second observer
    seeing the same pods adds nothing to the store."""
    cluster = KubernetesCluster(kubeconfig=SecretStr(kube_api.kubeconfig()))
    kube_api.lists += [
        pod_list("300", A_RUNNING, C_OOM),
        pod_list("300", A_RUNNING, C_OOM),
    ]
    PodObserver(cluster).run(once=True)
    PodObserver(cluster).run(once=True)
    assert len(store.events(name="infra.*")) == 2
    assert kube_api.requests[0][0] == "/api/v1/pods"


def test_cluster_settings_are_checked_and_the_token_is_secret(kube_api: Any) -> None:
    """Two sources at once, bad YAML and a missing file are refused, naming the
    cause; the kubeconfig's token is never shown."""
    with pytest.raises(BlockValidationError, match="give one of"):
        KubernetesCluster(kubeconfig=SecretStr("{}"), in_cluster=True)
    with pytest.raises(BlockValidationError, match="not valid YAML"):
        KubernetesCluster(kubeconfig=SecretStr("a: [b"))
    with pytest.raises(FileNotFoundError, match="kubeconfig_path"):
        KubernetesCluster(kubeconfig_path="/nonexistent/kubeconfig").get_api_client()
    with pytest.raises(ValueError, match="watch_seconds"):
        PodObserver(KubernetesCluster(in_cluster=True), watch_seconds=0)
    cluster = KubernetesCluster(kubeconfig=SecretStr(kube_api.kubeconfig("tok-7f3a9c")))
    assert "tok-7f3a9c" not in repr(cluster) + str(cluster.model_dump())


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "blocks", "observe", "kubernetes", *args]


def test_cli_observe_kubernetes_once(kube_api: Any, eventblocks_home: Path) -> None:
    """`eventblocks observe kubernetes --once` with a saved cluster stores the
    pods' events in the home database and prints a status line; the token never
    shows."""
    KubernetesCluster(kubeconfig=SecretStr(kube_api.kubeconfig("tok-5e1d0a"))).save(
        "k8s"
    )
    kube_api.lists.append(pod_list("300", A_RUNNING, B_EVICTED))
    kube_api.watches.append([watch_event("ADDED", C_OOM)])
    done = subprocess.run(
        _cli(
            "--cluster",
            "kubernetes-cluster/k8s",
            "--namespace",
            NS,
            "--selector",
            "app=etl",
            "--once",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "observe kubernetes: seen 3, stored 3, related to runs 3, errors 0"
        in done.stderr
    )
    assert "tok-5e1d0a" not in done.stdout + done.stderr
    store = SQLEventStore(f"sqlite:///{eventblocks_home / 'eventblocks.db'}")
    assert sorted(e.event for e in store.events(flow_run=FLOW_RUN)) == [
        "infra.kubernetes.pod.evicted",
        "infra.kubernetes.pod.running",
    ]
    assert kube_api.requests[0][1]["labelSelector"] == "app=etl"


def test_killed_pod_observer_restarted_misses_nothing_and_repeats_nothing(
    stored_infra_events: Callable[[], int], kube_api: Any, eventblocks_home: Path
) -> None:
    """An observer killed (SIGKILL) in the middle of a watch, started again, stores
    what changed while it was down (from its new list) and nothing twice."""
    KubernetesCluster(kubeconfig=SecretStr(kube_api.kubeconfig())).save("k8s")
    kube_api.lists += [
        pod_list("100", A_PENDING),
        pod_list("300", A_RUNNING, B_EVICTED),  # the list after the restart
    ]
    kube_api.watches.append([watch_event("MODIFIED", A_RUNNING), "hang"])
    command = _cli("--cluster", "kubernetes-cluster/k8s", "--namespace", NS)
    first = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while stored_infra_events() < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        kube_api.release.set()
    assert stored_infra_events() == 2
    done = subprocess.run(
        [*command, "--once"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    store = SQLEventStore(f"sqlite:///{eventblocks_home / 'eventblocks.db'}")
    assert sorted(e.event for e in store.events(flow_run=FLOW_RUN)) == [
        "infra.kubernetes.pod.evicted",
        "infra.kubernetes.pod.pending",
        "infra.kubernetes.pod.running",
    ]


def test_cli_observer_stops_on_sigterm_and_flushes(
    stored_infra_events: Callable[[], int], kube_api: Any, eventblocks_home: Path
) -> None:
    """A watching observer writes its status line periodically; SIGTERM stops it
    even while its watch is silent: it exits 0 with a last status line, the
    events so far stored."""
    KubernetesCluster(kubeconfig=SecretStr(kube_api.kubeconfig())).save("k8s")
    kube_api.lists.append(pod_list("100", A_PENDING))
    kube_api.watches.append(["hang"])
    running = subprocess.Popen(
        _cli(
            "--cluster",
            "kubernetes-cluster/k8s",
            "--namespace",
            NS,
            "--status-seconds",
            "0.3",
        ),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while stored_infra_events() < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    while len(kube_api.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # the watch is open
    time.sleep(1.0)
    running.send_signal(signal.SIGTERM)
    _, err = running.communicate(timeout=60)
    assert running.returncode == 0, err
    assert err.count("observe kubernetes: seen 1, stored 1") >= 3, err


def test_restarted_observer_with_state_replays_the_watch_window(
    stored_infra_events: Callable[[], int],
    kube_api: Any,
    eventblocks_home: Path,
    tmp_path: Path,
) -> None:
    """With --state, an observer killed mid-watch resumes its watch from the last
    delivered resource version: a pod that came and went while it was down (no
    longer in any list) is stored, and nothing twice."""
    KubernetesCluster(kubeconfig=SecretStr(kube_api.kubeconfig())).save("k8s")
    d_running = pod(
        "etl-d",
        "uid-d",
        "110",
        "Running",
        labels=RUN_LABELS,
        container={"running": {"startedAt": "2026-03-01T12:02:00Z"}},
    )
    d_done = pod(
        "etl-d",
        "uid-d",
        "111",
        "Succeeded",
        labels=RUN_LABELS,
        container={
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": "2026-03-01T12:02:00Z",
                "finishedAt": "2026-03-01T12:02:09Z",
            }
        },
    )
    kube_api.lists.append(pod_list("100", A_PENDING))
    kube_api.watches += [
        [watch_event("MODIFIED", A_RUNNING), "hang"],
        [watch_event("ADDED", d_running), watch_event("DELETED", d_done)],
    ]
    state = tmp_path / "pods.state"
    command = _cli(
        "--cluster", "kubernetes-cluster/k8s", "--namespace", NS, "--state", str(state)
    )
    first = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        # The state is saved once the events are stored: wait for both, so the
        # kill lands mid-watch with resource version 101 saved.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            stored_infra_events() >= 2 and state.exists() and state.read_text() == "101"
        ):
            time.sleep(0.02)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        kube_api.release.set()
    assert state.read_text() == "101"
    before = len(kube_api.requests)
    done = subprocess.run(
        [*command, "--once"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    _, query = kube_api.requests[before]
    assert (query.get("watch"), query.get("resourceVersion")) == ("true", "101")
    store = SQLEventStore(f"sqlite:///{eventblocks_home / 'eventblocks.db'}")
    assert sorted(
        (e.resource.name, e.event) for e in store.events(flow_run=FLOW_RUN)
    ) == [
        ("flows/etl-a", "infra.kubernetes.pod.pending"),
        ("flows/etl-a", "infra.kubernetes.pod.running"),
        ("flows/etl-d", "infra.kubernetes.pod.running"),
        ("flows/etl-d", "infra.kubernetes.pod.succeeded"),
    ]
    assert state.read_text() == "111"
