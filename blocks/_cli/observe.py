"""``eventblocks observe``: infrastructure observers in the foreground.

- ``observe ecs --queue-url URL``: ECS task state changes from the SQS queue that
  EventBridge feeds;
- ``observe kubernetes``: pods' phase changes, evictions and OOM kills.

They run until SIGTERM or SIGINT, then finish the message in hand and flush; one
status line a minute goes to stderr (events seen, stored, related to runs,
errors). ``--once`` handles what is there now and exits, for tests and cron. The
events go where scripts' events go by default: the home database, or
``EVENTBLOCKS_DATABASE_URL`` (or the sinks ``EVENTBLOCKS_EMITTERS`` names).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from blocks._cli.errors import CommandError, CommandUsageError
from blocks._cli.output import help_without_command
from blocks._observers import ObserverStats
from emitters import flush

__all__ = ["observe_app"]

observe_app = typer.Typer(
    name="observe",
    help="Observe infrastructure (ECS tasks, Kubernetes pods) as run events.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@observe_app.callback()
def _observe(ctx: typer.Context) -> None:
    """Observe infrastructure (ECS tasks, Kubernetes pods) as run events."""
    help_without_command(ctx)


OnceOption = Annotated[
    bool, typer.Option("--once", help="Handle what is there now, then exit.")
]
StatusOption = Annotated[
    float,
    typer.Option(
        "--status-seconds", min=0.1, help="Seconds between status lines.", hidden=True
    ),
]


def _status(what: str) -> Callable[[ObserverStats], None]:
    def show(stats: ObserverStats) -> None:
        sys.stderr.write(f"observe {what}: {stats.line()}\n")
        sys.stderr.flush()

    return show


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while the block runs."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {
        sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


STATUS_SECONDS = 60.0
"""How often a running observer writes its status line."""
GRACE_SECONDS = 10.0
"""How long a stopped observer may take to finish the batch in hand."""


def _run(
    what: str,
    observer: Any,
    once: bool,
    status_seconds: float = STATUS_SECONDS,
) -> ObserverStats:
    """Run the observer in a worker thread until it returns or a signal stops it.

    A watch or a long poll can block for minutes in a socket read that a signal
    does not interrupt; the worker gets ``GRACE_SECONDS`` to finish the batch in
    hand (if it holds one), then whatever was emitted is flushed and the command
    ends. Messages it held and did not delete come back to the queue, and the
    stores keep each event once.
    """
    with _stop_on_signals() as stop:
        worker = threading.Thread(
            target=observer.run,
            args=(stop,),
            kwargs={"once": once},
            name=f"eventblocks-observe-{what}",
            daemon=True,
        )
        worker.start()
        show = _status(what)
        last = time.monotonic()
        while worker.is_alive():
            if time.monotonic() - last >= status_seconds:
                show(observer.stats)
                last = time.monotonic()
            if stop.wait(min(0.2, status_seconds)):
                # Finish the batch in hand; a silent watch or poll is not one.
                deadline = time.monotonic() + GRACE_SECONDS
                while (
                    worker.is_alive() and observer.busy and time.monotonic() < deadline
                ):
                    worker.join(0.05)
                break
    flush(GRACE_SECONDS)
    stats: ObserverStats = observer.stats
    _status(what)(stats)
    return stats


def _saved(reference: str, slug: str, cls: Any) -> Any:
    prefix, sep, name = reference.partition("/")
    if not sep:
        prefix, name = slug, reference
    if prefix != slug or not name:
        raise CommandUsageError(f"expected {slug}/NAME, not {reference!r}.")
    return cls.load(name)


def _logging() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@observe_app.command("ecs")
def observe_ecs(
    queue_url: Annotated[
        str,
        typer.Option(
            "--queue-url", help="The SQS queue EventBridge sends task changes to."
        ),
    ],
    credentials: Annotated[
        str | None,
        typer.Option(
            "--credentials",
            help="Saved AWS credentials, aws-credentials/NAME; default: boto3's "
            "own chain (environment, profile, instance role).",
        ),
    ] = None,
    dead_letter_queue_url: Annotated[
        str | None,
        typer.Option(
            "--dead-letter-queue-url",
            help="Where unreadable messages go; default: logged and deleted.",
        ),
    ] = None,
    once: OnceOption = False,
    status_seconds: StatusOption = STATUS_SECONDS,
) -> None:
    """Store ECS task state changes (EventBridge to SQS) as run events."""
    from blocks.aws import AwsCredentials, EcsTaskObserver

    _logging()
    creds = (
        AwsCredentials()
        if credentials is None
        else _saved(credentials, "aws-credentials", AwsCredentials)
    )
    observer = EcsTaskObserver(
        creds, queue_url, dead_letter_queue_url=dead_letter_queue_url
    )
    stats = _run("ecs", observer, once, status_seconds)
    if once and stats.errors and not stats.stored:
        raise CommandError("the ECS observer could not read the queue (see above).")


@observe_app.command("kubernetes")
def observe_kubernetes(
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="A saved cluster, kubernetes-cluster/NAME; default: the "
            "kubeconfig's current context.",
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", help="One namespace; default: all of them."),
    ] = None,
    selector: Annotated[
        str | None,
        typer.Option("--selector", help="A label selector, such as app=etl."),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="A file keeping the last resource version, to resume the watch "
            "from after a restart.",
        ),
    ] = None,
    once: OnceOption = False,
    status_seconds: StatusOption = STATUS_SECONDS,
) -> None:
    """Store Kubernetes pod phase changes, evictions and OOM kills as run events."""
    from blocks.kubernetes import KubernetesCluster, PodObserver

    _logging()
    target = (
        KubernetesCluster()
        if cluster is None
        else _saved(cluster, "kubernetes-cluster", KubernetesCluster)
    )
    observer = PodObserver(
        target, namespace=namespace, selector=selector, state_path=state
    )
    stats = _run("kubernetes", observer, once, status_seconds)
    if once and stats.errors and not stats.stored:
        raise CommandError("the pod observer could not reach the cluster (see above).")
