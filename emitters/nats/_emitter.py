"""``NatsEmitter``: each event published to NATS JetStream, with a disk spool.

Everything here runs on the sink's own worker thread (see
:mod:`emitters._pipeline.delivery`), which hands the publishing to an event loop
the emitter owns (:class:`emitters.nats._connection.LoopThread`); the caller of
a block method never waits for the network. A batch is published message by
message without waiting, then every acknowledgement is awaited. A batch that is
not fully acknowledged is written to the spool (:mod:`emitters._spool`) and the
server is counted as down: until the next probe is due, new batches go straight
to the spool behind the older ones. The first batch published after that
replays the spool, oldest first. Each message carries its event id as
``Nats-Msg-Id``, so a batch published again (part of it may have arrived) is
stored once by the stream's duplicate window.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck, StreamConfig

from emitters._emitter import Emitter
from emitters._model import Event
from emitters._pipeline.delivery import throttle
from emitters._settings import nats_settings
from emitters._spool import Batch, SpoolError, open_spool
from emitters.http._options import integer, positive
from emitters.http._wire import backoff_delay
from emitters.nats._connection import (
    LoopThread,
    check_servers,
    connect,
    display_servers,
)

__all__ = ["NatsDeliveryError", "NatsEmitter", "encode_events", "from_environment"]

_MIB = 1024 * 1024
_MSG_ID = "Nats-Msg-Id"
_CLOSE_WAIT_S = 2.0


class NatsDeliveryError(ConnectionError):
    """A batch of events was neither acknowledged by JetStream nor spooled.

    Raised from ``NatsEmitter.emit_batch``, so the pipeline counts the batch in
    ``stats()["failed"]``. The message names the servers without user info.

    Attributes:
        events: How many events the batch held.
    """

    def __init__(self, message: str, *, events: int) -> None:
        super().__init__(message)
        self.events = events


def encode_events(events: Sequence[Event]) -> Batch:
    """Return a spoolable batch: one ``<event id> <event JSON>`` line per event."""
    body = b"\n".join(
        f"{event.id} ".encode() + event.model_dump_json().encode() for event in events
    )
    return Batch(body, "identity", len(events), f"{events[0].id}:{events[-1].id}")


def batch_is_whole(batch: Batch) -> bool:
    """Whether a spooled batch holds one line per event its header counts."""
    if batch.encoding != "identity" or not batch.body:
        return False
    return batch.body.count(b"\n") + 1 == batch.event_count


def _messages(batch: Batch) -> list[tuple[str, bytes]]:
    """Return (event id, payload) per message of an encoded batch."""
    pairs = []
    for line in batch.body.split(b"\n"):
        msg_id, _, payload = line.partition(b" ")
        pairs.append((msg_id.decode(), payload))
    return pairs


class NatsEmitter(Emitter):
    """Publishes each event to a NATS JetStream stream, spooling while it is away.

    Each event is one message on ``subject``: its ``Event.model_dump_json()``
    form, with the event id as the ``Nats-Msg-Id`` header, so the stream's
    duplicate window drops an event published twice. A batch counts as sent
    when JetStream acknowledged every message of it. Delivery is at least
    once: a consumer that outlives the duplicate window deduplicates by event id
    (``eventblocks events ingest`` does).

    The client connects on the first batch and then reconnects by itself. With
    ``spool_dir``, a batch that was not acknowledged within ``timeout`` is
    written to that folder, and sent, oldest first, before anything newer once
    the server answers again; an emitter started later with the same folder,
    stream and subject (on any server) sends what an earlier process left there.
    The folder holds at most ``max_spool_bytes``; batches that do not fit are
    dropped and counted. Without ``spool_dir`` such a batch is reported failed.

    Args:
        servers: One NATS URL, several separated by commas, or a sequence of
            them (``nats://``, ``tls://``, ``ws://``, ``wss://``); user and
            password in a URL are registered as secrets.
        stream: The JetStream stream the subject belongs to; publishes are
            refused unless this stream takes them.
        subject: The subject every event is published on.
        create_stream: Create ``stream`` on ``subject`` (file storage) if it does
            not exist.
        duplicate_window: Seconds the stream remembers message ids, when this
            emitter creates it.
        spool_dir: A folder for batches that could not be sent; None: no spool.
        max_spool_bytes: The most bytes the spool folder may hold.
        timeout: Seconds to connect, and for a batch's acknowledgements.
        backoff: The first wait, in seconds, before trying a server that was
            away again; it doubles with each failed probe.
        max_backoff: The longest wait between two probes.
        name: The name it is counted under in ``stats()``.

    Raises:
        ValueError: A server URL, the stream or subject name, or an option is
            out of range (the message never echoes a URL).
        TypeError: ``servers`` is not a string or a sequence of strings.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        stream: str = "EVENTBLOCKS",
        subject: str = "eventblocks.events",
        create_stream: bool = False,
        duplicate_window: float = 120.0,
        spool_dir: str | os.PathLike[str] | None = None,
        max_spool_bytes: int = 100 * _MIB,
        timeout: float = 5.0,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self._servers = check_servers(servers)
        self._stream = _check_name("stream", stream, ". *>")
        self._subject = _check_name("subject", subject, " ")
        self._create_stream = bool(create_stream)
        self._duplicate_window = positive("duplicate_window", duplicate_window)
        max_spool_bytes = integer("max_spool_bytes", max_spool_bytes, low=1)
        self._timeout = positive("timeout", timeout)
        self._backoff = positive("backoff", backoff, zero=True)
        self._max_backoff = positive("max_backoff", max_backoff, zero=True)
        self._shown = display_servers(self._servers)
        self._spool = open_spool(
            spool_dir,
            max_spool_bytes,
            f"nats:{self._stream}:{self._subject}",
            is_whole=batch_is_whole,
        )
        self._loop = LoopThread(f"eventblocks-nats-{self.name}")
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._busy = threading.RLock()
        self._closed = threading.Event()
        self._retry_at = 0.0
        self._down_level = 0
        self._last_error = ""
        self.sent = 0
        """Events JetStream acknowledged, replayed ones included."""
        self.spooled = 0
        """Events written to the spool."""
        self.replayed = 0
        """Events sent from the spool and acknowledged."""
        self.dropped = 0
        """Events lost because the spool was full or could not be written."""

    @property
    def servers(self) -> str:
        """The servers, without user info (safe to show)."""
        return self._shown

    @property
    def stream(self) -> str:
        """The stream name."""
        return self._stream

    @property
    def subject(self) -> str:
        """The subject events are published on."""
        return self._subject

    @property
    def spool_dir(self) -> Path | None:
        """The spool folder, or None."""
        return None if self._spool is None else self._spool.folder

    def __repr__(self) -> str:
        return (
            f"<NatsEmitter name={self.name!r} servers={self._shown!r} "
            f"stream={self._stream!r} subject={self._subject!r}>"
        )

    # -- the sink protocol -----------------------------------------------------

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Publish the batch (after anything spooled), or spool it.

        Raises:
            NatsDeliveryError: The batch was not acknowledged and could not be
                spooled.
        """
        if not events:
            return
        batch = encode_events(events)
        with self._busy:
            self._deliver(batch)

    def flush(self, timeout: float | None = None) -> bool:
        """Try to publish what is spooled now; True if the spool is empty."""
        spool = self._spool
        if spool is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._busy.acquire(timeout=-1 if timeout is None else max(0, timeout)):
            return False
        try:
            if self._closed.is_set() or not spool.has_pending():
                return not spool.has_pending()
            return self._replay(deadline)
        finally:
            self._busy.release()

    def close(self) -> None:
        """Close the connection and the emitter's event loop; the spool stays."""
        self._closed.set()
        acquired = self._busy.acquire(timeout=_CLOSE_WAIT_S)
        try:
            client, self._client, self._js = self._client, None, None
            self._loop.close(
                None if client is None else _close_client(client), _CLOSE_WAIT_S
            )
        finally:
            if acquired:
                self._busy.release()

    # -- delivery ----------------------------------------------------------------

    def _deliver(self, batch: Batch) -> None:
        if self._closed.is_set():
            self._undeliverable(batch, "the emitter is closed")
            return
        if time.monotonic() < self._retry_at:
            self._undeliverable(batch, "down")
            return
        spool = self._spool
        if spool is not None and spool.has_pending() and not self._replay(None):
            self._undeliverable(batch, "down")
            return
        if self._publish(batch, None):
            self.sent += batch.event_count
            return
        self._undeliverable(batch, self._last_error)

    def _replay(self, deadline: float | None) -> bool:
        """Publish spooled batches oldest first; True once the spool is empty."""
        spool = self._spool
        assert spool is not None
        with spool.claimed(deadline, self._closed) as claimed:
            if not claimed:
                return False
            for path in spool.pending():
                batch = spool.read(path)
                if batch is None:
                    continue
                if not self._publish(batch, deadline):
                    return False
                spool.remove(path)
                self.sent += batch.event_count
                self.replayed += batch.event_count
            return not spool.has_pending()

    def _publish(self, batch: Batch, deadline: float | None) -> bool:
        """Publish one batch and await its acknowledgements; note if it failed."""
        timeout = self._timeout
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                return False
        try:
            # The coroutine has its own deadlines; this one is a backstop.
            self._loop.run(self._apublish(batch, timeout), timeout * 2 + 1)
        except Exception as exc:  # every failure means "not sent"
            self._last_error = _reason(exc)
            if deadline is None:
                self._mark_down()
            return False
        self._retry_at, self._down_level = 0.0, 0
        return True

    async def _apublish(self, batch: Batch, timeout: float) -> None:
        js = await self._connected(timeout)
        futures: list[asyncio.Future[PubAck]] = []
        try:
            for msg_id, payload in _messages(batch):
                # No wait_stall: with one, each publish is a task and a trip
                # through the loop (ten times slower); run()'s deadline bounds
                # a stall instead.
                futures.append(
                    await js.publish_async(
                        self._subject, payload, headers={_MSG_ID: msg_id}
                    )
                )
            done, pending = await asyncio.wait(futures, timeout=timeout)
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()
        if pending:
            raise TimeoutError(
                f"{len(pending)} of {batch.event_count} messages were not "
                f"acknowledged within {timeout:g}s"
            )
        for future in done:
            exc = future.exception()
            if exc is not None:
                raise exc

    async def _connected(self, timeout: float) -> JetStreamContext:
        if self._js is not None and self._client is not None:
            if not self._client.is_closed:
                return self._js
            self._client = self._js = None  # closed for good: connect anew
        client = await connect(
            self._servers,
            timeout=timeout,
            reconnect_wait=max(0.25, self._backoff),
            name=self.name,
        )
        js = client.jetstream(timeout=timeout)
        if self._create_stream:
            try:
                await js.stream_info(self._stream)
            except nats.js.errors.NotFoundError:
                await js.add_stream(
                    StreamConfig(
                        name=self._stream,
                        subjects=[self._subject],
                        duplicate_window=self._duplicate_window,
                    )
                )
        self._client, self._js = client, js
        return js

    def _mark_down(self) -> None:
        delay = backoff_delay(self._backoff, self._max_backoff, self._down_level)
        self._down_level += 1
        self._retry_at = time.monotonic() + delay

    def _undeliverable(self, batch: Batch, reason: str) -> None:
        """Spool a batch that could not be sent; raise if it cannot be spooled."""
        if reason == "down":
            due = max(0.0, self._retry_at - time.monotonic())
            reason = f"the server is away; the next attempt is due in {due:.1f}s"
        spool = self._spool
        if spool is None:
            raise NatsDeliveryError(
                f"{self.name} could not publish {batch.event_count} events to "
                f"{self._shown} (stream {self._stream}): {reason}",
                events=batch.event_count,
            )
        try:
            spool.keep(batch, self.name)
        except SpoolError as exc:
            self.dropped += batch.event_count
            raise NatsDeliveryError(str(exc), events=batch.event_count) from None
        self.spooled += batch.event_count
        throttle.warn(
            f"nats-spooled:{self.name}",
            "%s: events are spooled to %s: %s",
            self.name,
            spool.folder,
            reason,
        )


async def _close_client(client: Client) -> None:
    try:
        await asyncio.wait_for(client.drain(), _CLOSE_WAIT_S / 2)
    except Exception:  # drain can fail while disconnected
        await client.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionError):
        return str(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_name(what: str, value: object, forbidden: str) -> str:
    if (
        not isinstance(value, str)
        or not value
        or any(c in value for c in forbidden)
        or any(c.isspace() for c in value)
    ):
        raise ValueError(
            f"{what} must be a non-empty NATS {what} name without spaces"
            + (" or . * >" if "*" in forbidden else "")
            + f", not {value!r}"
        )
    return value


def from_environment() -> NatsEmitter:
    """Return a ``NatsEmitter`` configured by the environment.

    See :func:`emitters._settings.nats_settings` for the variables:
    ``EVENTBLOCKS_NATS_URL``, ``EVENTBLOCKS_NATS_STREAM``,
    ``EVENTBLOCKS_NATS_SUBJECT``, ``EVENTBLOCKS_NATS_CREATE_STREAM`` and
    ``EVENTBLOCKS_NATS_SPOOL_DIR``.

    Raises:
        ValueError: A variable is malformed (the message names it).
    """
    settings = nats_settings()
    try:
        return NatsEmitter(
            settings.servers,
            stream=settings.stream,
            subject=settings.subject,
            create_stream=settings.create_stream,
            spool_dir=settings.spool_dir,
        )
    except ValueError as exc:
        raise ValueError(f"the NATS sink's settings: {exc}") from None
