"""``eventblocks events ingest``: a NATS JetStream stream into an event store.

A thin layer over :class:`emitters.nats.NatsIngester`: it parses the options,
prints a status line a minute on stderr, and stops gracefully on SIGTERM or
SIGINT (the batch in hand is stored and acknowledged, then the status is 0).
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Annotated

import typer

from blocks._cli.errors import CommandError
from emitters.sql import SQLEventStore

__all__ = ["ingest_events"]


def _status(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def ingest_events(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="The NATS server(s): nats://HOST:PORT, comma-separated.",
            show_default=False,
        ),
    ],
    stream: Annotated[
        str, typer.Option("--stream", help="The JetStream stream to read.")
    ] = "EVENTBLOCKS",
    durable: Annotated[
        str,
        typer.Option(
            "--durable",
            help="The durable consumer's name (created if missing); ingesters "
            "sharing it share the work.",
        ),
    ] = "eventblocks-ingest",
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="The store's database URL (PostgreSQL or MariaDB for a shared "
            "store); the home database by default.",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size", min=1, max=100_000, help="Events per transaction."
        ),
    ] = 1000,
    ack_wait: Annotated[
        float,
        typer.Option(
            "--ack-wait",
            min=0.1,
            help="Seconds before an unacknowledged message is delivered again "
            "(set when the durable consumer is created).",
        ),
    ] = 30.0,
    once: Annotated[
        bool,
        typer.Option("--once", help="Store what the stream holds now, then exit."),
    ] = False,
    status_interval: Annotated[
        float,
        typer.Option(
            "--status-interval", min=0.1, help="Seconds between status lines."
        ),
    ] = 60.0,
) -> None:
    """Store the events of a NATS JetStream stream, acknowledging each batch once
    it is committed; stop cleanly on SIGTERM or Ctrl-C."""
    try:
        from emitters.nats import NatsIngester
    except ImportError:
        raise CommandError(
            "events ingest needs the NATS client: pip install 'eventblocks[nats]'"
        ) from None
    ingester = NatsIngester(
        source,
        stream=stream,
        durable=durable,
        store=SQLEventStore(to),
        batch_size=batch_size,
        ack_wait=ack_wait,
        status_interval=status_interval,
        status=_status,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        ingester.stop()

    previous = {
        sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        ingester.run(once=once)
    except ConnectionError as exc:
        raise CommandError(str(exc)) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
