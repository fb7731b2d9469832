"""``NatsIngester``: a durable JetStream pull consumer that writes an event store.

It fetches up to ``batch_size`` messages, stores their events in one
transaction (:meth:`SQLEventStore.emit_batch`, which skips ids already stored),
and acknowledges the messages only then. A crash between the commit and the
acknowledgements makes JetStream deliver those messages again, and the store
skips them: an event is stored once however often the ingester restarts, and
several ingesters can share one durable consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from pydantic import ValidationError

from emitters._emitter import PartialDelivery
from emitters._model import Event
from emitters._redact import redact_text
from emitters.http._options import integer, positive
from emitters.nats._connection import check_servers, connect, display_servers
from emitters.sql import SQLEventStore

__all__ = ["IngestStats", "NatsIngester"]

# The wait before retrying a batch the store could not take.
_STORE_RETRY_S = 2.0


@dataclass
class IngestStats:
    """What an ingester did since it started.

    Attributes:
        stored: Events handed to the store and committed (a redelivered event
            the store already had counts here too: the store skipped it).
        refused: Messages that were not events, or events the database refused;
            they are acknowledged and never delivered again.
        batches: Transactions committed.
        store_errors: Batches the store failed to take (delivered again later).
    """

    stored: int = 0
    refused: int = 0
    batches: int = 0
    store_errors: int = 0


class NatsIngester:
    """Pulls events from a JetStream stream into an ``SQLEventStore``.

    Args:
        servers: NATS URLs, as for :class:`~emitters.nats.NatsEmitter`.
        stream: The stream to read.
        durable: The durable consumer's name; it is created (explicit
            acknowledgements) if the stream has none by that name, and it
            remembers what was acknowledged across restarts.
        store: Where events go; by default the home database's store.
        batch_size: The most messages fetched and stored per transaction.
        fetch_timeout: Seconds one fetch waits for messages.
        ack_wait: Seconds a fetched message may stay unacknowledged before
            JetStream delivers it again (to this ingester or another), when the
            consumer is created here: a batch must be stored within it; after
            a crash, what it had fetched waits this long.
        status_interval: Seconds between two status lines.
        status: Receives each status line (for example ``print``); None: none.

    Raises:
        ValueError: A server URL, a name or an option is malformed.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        stream: str = "EVENTBLOCKS",
        durable: str = "eventblocks-ingest",
        store: SQLEventStore | None = None,
        batch_size: int = 1000,
        fetch_timeout: float = 1.0,
        ack_wait: float = 30.0,
        status_interval: float = 60.0,
        status: Callable[[str], None] | None = None,
    ) -> None:
        self._servers = check_servers(servers)
        for what, value in (("stream", stream), ("durable", durable)):
            if (
                not isinstance(value, str)
                or not value
                or any(c in ".*>" or c.isspace() for c in value)
            ):
                raise ValueError(
                    f"{what} must be a non-empty name without spaces or . * >, "
                    f"not {value!r}"
                )
        self._stream = stream
        self._durable = durable
        self.store = store if store is not None else SQLEventStore()
        """The store events are written to."""
        self._batch_size = integer("batch_size", batch_size, low=1, high=100_000)
        self._fetch_timeout = positive("fetch_timeout", fetch_timeout)
        self._ack_wait = positive("ack_wait", ack_wait)
        self._status_interval = positive("status_interval", status_interval)
        self._status = status
        self._stop = threading.Event()
        self.stats = IngestStats()
        """Counts since the ingester started."""

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand is stored and
        acknowledged. Safe from a signal handler or another thread."""
        self._stop.set()

    def run(self, *, once: bool = False) -> IngestStats:
        """Ingest until :meth:`stop` (or, with ``once``, until the stream has
        nothing left for this consumer); return the counts.

        Raises:
            ConnectionError: The server could not be reached at the start.
        """
        asyncio.run(self._run(once))
        return self.stats

    # -- the loop ----------------------------------------------------------------

    async def _run(self, once: bool) -> None:
        client = await connect(
            self._servers,
            timeout=max(self._fetch_timeout, 5.0),
            reconnect_wait=1.0,
            name=f"ingest:{self._durable}",
        )
        try:
            js = client.jetstream()
            await self._ensure_consumer(js)
            sub = await js.pull_subscribe_bind(self._durable, self._stream)
            started = last_status = time.monotonic()
            last_stored = 0
            while not self._stop.is_set():
                try:
                    msgs = await sub.fetch(
                        self._batch_size, timeout=self._fetch_timeout
                    )
                except (TimeoutError, nats.errors.TimeoutError):
                    msgs = []
                if msgs:
                    await self._ingest(msgs)
                    await client.flush()
                elif once and await self._drained(js):
                    break
                now = time.monotonic()
                if self._status and now - last_status >= self._status_interval:
                    await self._report(js, now - last_status, last_stored)
                    last_status, last_stored = now, self.stats.stored
            if self._status:
                await self._report(js, time.monotonic() - started, 0, final=True)
        finally:
            # Acknowledgements were flushed after each batch; a pull
            # subscription's drain would wait for its whole timeout.
            with contextlib.suppress(Exception):  # the server may be away
                await asyncio.wait_for(client.flush(), 2.0)
            await client.close()

    async def _ensure_consumer(self, js: JetStreamContext) -> None:
        try:
            await js.consumer_info(self._stream, self._durable)
        except nats.js.errors.NotFoundError:
            await js.add_consumer(
                self._stream,
                ConsumerConfig(
                    durable_name=self._durable,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=self._ack_wait,
                    max_ack_pending=max(20_000, self._batch_size * 4),
                ),
            )

    async def _drained(self, js: JetStreamContext) -> bool:
        info = await js.consumer_info(self._stream, self._durable)
        return not info.num_pending and not info.num_ack_pending

    async def _ingest(self, msgs: list[Msg]) -> None:
        """Store the events of ``msgs`` in one transaction, then ack them."""
        events: list[Event] = []
        good: list[Msg] = []
        for msg in msgs:
            try:
                events.append(Event.model_validate_json(msg.data))
            except ValidationError:
                self.stats.refused += 1
                await msg.term()  # never redelivered: it can never be stored
            else:
                good.append(msg)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.store.emit_batch, events)
        except PartialDelivery as exc:
            self.stats.refused += len(events) - exc.delivered
            self.stats.stored += exc.delivered
        except Exception as exc:  # the database is away: deliver them again
            self.stats.store_errors += 1
            if self._status:
                self._status(
                    f"ingest: the store at {self.store.display_url} failed "
                    f"({redact_text(type(exc).__name__)}); "
                    f"{len(events)} events will be delivered again"
                )
            for msg in good:
                await msg.nak(delay=_STORE_RETRY_S)
            await asyncio.sleep(_STORE_RETRY_S)
            return
        else:
            self.stats.stored += len(events)
        self.stats.batches += 1
        for msg in good:
            await msg.ack()

    async def _report(
        self, js: JetStreamContext, elapsed: float, before: int, *, final: bool = False
    ) -> None:
        try:
            info = await js.consumer_info(self._stream, self._durable)
            pending = f"{info.num_pending:,} pending"
        except Exception:  # the server is away: report without it
            pending = "pending unknown"
        stats = self.stats
        count = stats.stored - before
        rate = count / elapsed if elapsed > 0 else 0.0
        head = "ingest stopped" if final else "ingest"
        assert self._status is not None
        self._status(
            f"{head}: {stats.stored:,} events stored (+{count:,} in {elapsed:.0f}s, "
            f"{rate:,.0f}/s), {stats.refused:,} refused, {pending} "
            f"[{display_servers(self._servers)} {self._stream}/{self._durable} -> "
            f"{self.store.display_url}]"
        )
