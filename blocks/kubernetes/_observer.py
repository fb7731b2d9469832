"""``PodObserver``: pods' phase changes, evictions and OOM kills as events related
to the flow run each pod's labels name.

It lists the pods, then watches from the list's resource version, advancing only
once ``emitters.flush()`` confirmed the events so far: after a dropped connection
it resumes from the last delivered resource version; after ``410 Gone`` (the
version left the API server's watch window) it lists again. Event ids come from
the pod's uid, the change, the restart count and the reason, so a list that
repeats a known state, another observer or a restarted one stores nothing twice.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from blocks._observers import ObserverStats, RunLoop, StartOver
from blocks.kubernetes._cluster import KubernetesCluster
from blocks.kubernetes._pods import pod_change
from emitters import Event, emit_event, flush, observed_event_id, related_runs

__all__ = ["PodObserver"]

log = logging.getLogger("blocks.kubernetes.pods")
GONE = 410


class _Gone(StartOver):
    """The resource version left the watch window: list again."""


class PodObserver:
    """Watches pods and emits ``infra.kubernetes.pod.<change>`` events.

    ``<change>`` is the phase (``pending``, ``running``, ``succeeded``,
    ``failed``, ``unknown``), or ``evicted`` when the pod's status reason is
    ``Evicted``, or ``oom-killed`` when a container was terminated with
    ``OOMKilled``. The event is about ``kubernetes-pod.<uid>`` (named
    ``namespace/pod``), at the latest time the pod's status records, related to
    the flow run its labels name (``eventblocks.io/flow-run-id`` or Prefect's
    ``prefect.io/flow-run-id``); its payload has the containers' states, exit
    codes and reasons and the pod's conditions and message.

    Example:
        >>> from blocks.kubernetes import KubernetesCluster, PodObserver
        >>> cluster = KubernetesCluster(in_cluster=True)
        >>> observer = PodObserver(cluster, namespace="flows")
        >>> observer.run(once=True)  # doctest: +SKIP

    Args:
        cluster: The cluster to watch.
        namespace: One namespace; None watches all of them.
        selector: A label selector, such as ``"app=etl"``.
        watch_seconds: How long one watch request lasts before it is renewed.
        flush_timeout: Seconds to wait for the sinks to confirm delivery.
        state_path: A file keeping the last delivered resource version: a
            restarted observer resumes its watch from there (replaying what
            happened while it was down, as long as the API server's watch
            window still holds it) instead of listing; None lists on start.

    Raises:
        ValueError: ``watch_seconds`` is not a positive integer.
    """

    def __init__(
        self,
        cluster: KubernetesCluster,
        *,
        namespace: str | None = None,
        selector: str | None = None,
        watch_seconds: int = 300,
        flush_timeout: float = 30.0,
        state_path: str | Path | None = None,
    ) -> None:
        if isinstance(watch_seconds, bool) or not (
            isinstance(watch_seconds, int) and watch_seconds > 0
        ):
            raise ValueError(
                f"watch_seconds must be a positive integer, not {watch_seconds!r}"
            )
        self.cluster = cluster
        self.namespace = namespace or None
        self.selector = selector or None
        self.watch_seconds = watch_seconds
        self.flush_timeout = flush_timeout
        self.state_path = None if state_path is None else Path(state_path)
        self.resource_version: str | None = self._saved_version()
        self.stats = ObserverStats()
        self.busy = False
        """True while a list or a watch event is being handled."""
        self._emitted: dict[str, tuple[str, ...]] = {}
        self._api: Any = None

    def _saved_version(self) -> str | None:
        if self.state_path is None or not self.state_path.exists():
            return None
        saved = self.state_path.read_text(encoding="utf-8").strip()
        return saved or None

    def _advance(self, version: str | None) -> None:
        """Note the resource version the events so far were delivered up to."""
        self.resource_version = version
        if self.state_path is not None and version is not None:
            partial = self.state_path.with_name(self.state_path.name + ".partial")
            partial.write_text(version, encoding="utf-8")
            os.replace(partial, self.state_path)

    def _core(self) -> Any:
        if self._api is None:
            self._api = client.CoreV1Api(self.cluster.get_api_client())
        return self._api

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        core = self._core()
        kwargs: dict[str, Any] = {}
        if self.selector:
            kwargs["label_selector"] = self.selector
        if self.namespace:
            return core.list_namespaced_pod, (self.namespace,), kwargs
        return core.list_pod_for_all_namespaces, (), kwargs

    def _handle(self, pod: dict[str, Any], deleted: bool = False) -> Event | None:
        self.stats.seen += 1
        change = pod_change(pod)
        if change is None:
            return None
        if deleted:
            self._emitted.pop(change.uid, None)
        if self._emitted.get(change.uid) == change.key:
            return None
        event = emit_event(
            change.name,
            change.resource,
            related=related_runs(change.labels),
            payload=change.payload,
            id=observed_event_id("kubernetes.pod", *change.key),
            occurred=change.occurred,
            context=False,
        )
        self._emitted[change.uid] = change.key
        return event

    def _deliver(self, events: list[Event]) -> None:
        if not events:
            return
        if not flush(self.flush_timeout):
            for event in events:  # emit them again once the sinks are back
                self._emitted.pop(
                    event.resource.id.removeprefix("kubernetes-pod."), None
                )
            raise RuntimeError("the sinks did not confirm delivery")
        self.stats.delivered(events)

    def list(self) -> None:
        """List the pods, emit their current state and note the resource version."""
        func, args, kwargs = self._call()
        response = func(*args, _preload_content=False, **kwargs)
        try:
            body = json.loads(response.data)
        finally:
            response.release_conn()
        self.busy = True
        try:
            items = body.get("items") or []
            events = [e for pod in items if (e := self._handle(pod))]
            self._deliver(events)
        finally:
            self.busy = False
        listed = {(pod.get("metadata") or {}).get("uid") for pod in items}
        for uid in [uid for uid in self._emitted if uid not in listed]:
            del self._emitted[uid]  # gone while the watch was away
        self._advance(str((body.get("metadata") or {}).get("resourceVersion")))

    def _events(self, stop: threading.Event, seconds: int) -> Iterator[dict[str, Any]]:
        func, args, kwargs = self._call()
        watcher = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            for item in watcher.stream(  # type: ignore[no-untyped-call]
                func,
                *args,
                resource_version=self.resource_version,
                timeout_seconds=seconds,
                allow_watch_bookmarks=True,
                **kwargs,
            ):
                yield item
                if stop.is_set():
                    break
        except client.ApiException as exc:
            if exc.status == GONE:
                raise _Gone("resource version gone; listing again") from None
            raise
        finally:
            watcher.stop()  # type: ignore[no-untyped-call]

    def watch(
        self, stop: threading.Event | None = None, *, seconds: int | None = None
    ) -> None:
        """Watch from the last resource version until the API server ends the
        request (after ``seconds``, default ``watch_seconds``) or ``stop`` is set.

        Raises:
            kubernetes.client.ApiException: The API server refused the watch
                (``410 Gone`` included: call :meth:`list` again).
        """
        stop = stop or threading.Event()
        for item in self._events(stop, seconds or self.watch_seconds):
            kind = item.get("type")
            raw = item.get("raw_object") or {}
            version = (raw.get("metadata") or {}).get("resourceVersion")
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self.busy = True
                try:
                    event = self._handle(raw, deleted=kind == "DELETED")
                    self._deliver([event] if event is not None else [])
                finally:
                    self.busy = False
            if version:
                self._advance(str(version))

    def _step(self, stop: threading.Event, once: bool) -> bool:
        """List if no resource version is known, then watch; True when done."""
        if self.resource_version is None:
            self.list()
        try:
            self.watch(stop, seconds=1 if once else None)
        except _Gone:
            self.resource_version = None
            raise
        return True

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        once: bool = False,
        status: Callable[[ObserverStats], None] | None = None,
        status_every: float = 60.0,
    ) -> ObserverStats:
        """List, then watch until ``stop`` is set (or, with ``once``, until a
        one-second watch request ends quietly).

        A dropped connection resumes from the last resource version, ``410
        Gone`` lists again, and errors back off (1 s doubling to a minute).

        Returns:
            The counters.
        """
        stop = stop or threading.Event()
        loop = RunLoop(self.stats, log, "pod watch", "reconnecting", once_failures=3)
        loop.run(
            lambda: self._step(stop, once),
            stop,
            once=once,
            status=status,
            status_every=status_every,
        )
        flush(self.flush_timeout)
        return self.stats
