"""``HttpEmitter``: batches of events POSTed to an HTTP endpoint, with a disk spool.

Everything here runs on the sink's own worker thread (see
:mod:`emitters._pipeline.delivery`); the caller of a block method never waits for it. A
batch is retried with exponential backoff and jitter while the endpoint answers
408, 429 or 5xx or cannot be reached. With a spool (:mod:`emitters._spool`) the
batch is written there after its first failed attempt, before any wait, and
retried from there; when the retries run out it stays, and the emitter counts the
endpoint as down: until the next probe is due, new batches go straight to the
spool behind the older ones. The first send that succeeds replays the spool,
oldest first, before anything new.
"""

from __future__ import annotations

import importlib.metadata
import os
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import httpx

from emitters._emitter import Emitter
from emitters._model import Event
from emitters._pipeline.delivery import throttle
from emitters._redact import protect_logger, redact_text, register_secret
from emitters._spool import Spool, endpoint_tag
from emitters.http._options import (
    check_url,
    environment_settings,
    integer,
    positive,
)
from emitters.http._wire import (
    COUNT_HEADER,
    IDEMPOTENCY_HEADER,
    Batch,
    backoff_delay,
    check_headers,
    display_url,
    encode_batch,
    is_retryable,
    is_secret_header,
    retry_after_seconds,
    secret_parts,
)

__all__ = ["HttpDeliveryError", "HttpEmitter", "from_environment"]

# httpx logs every request's URL at INFO: mask the secrets in it.
protect_logger("httpx")

_MIB = 1024 * 1024
# How long close() waits for a send in progress before closing the client anyway.
_CLOSE_WAIT_S = 1.0
# Replay passes before new batches queue behind the spool instead.
_MAX_REPLAY_PASSES = 10


def _user_agent() -> str:
    try:
        version = importlib.metadata.version("eventblocks")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a checkout
        return "eventblocks"
    return f"eventblocks/{version}"


class HttpDeliveryError(ConnectionError):
    """A batch of events was not delivered and not spooled.

    Raised from ``HttpEmitter.emit_batch``, so the pipeline counts the batch in
    ``stats()["failed"]``. The message names the endpoint without its user info
    or query, and never a header.

    Attributes:
        events: How many events the batch held.
        status_code: The endpoint's answer, or None if it was not reached.
    """

    def __init__(self, message: str, *, events: int, status_code: int | None):
        super().__init__(message)
        self.events = events
        self.status_code = status_code


class _Outcome(NamedTuple):
    kind: str  # "sent", "rejected" or "unreachable"
    status: int | None = None
    retry_after: float | None = None
    reason: str = ""


_SENT = _Outcome("sent")


class HttpEmitter(Emitter):
    """POSTs batches of events as JSON to an HTTP endpoint, spooling while it is down.

    Each batch is one ``POST`` of ``{"events": [...]}`` (every event in its
    ``Event.model_dump_json()`` form), gzip-compressed when the body reaches
    ``gzip_min_bytes``, with an ``Idempotency-Key`` header made of the first and
    last event ids. A 2xx answer accepts the batch. 408, 429, 5xx and connection
    errors are retried with exponential backoff and jitter (honouring
    ``Retry-After``); any other answer rejects the batch for good. Delivery is
    at least once: receivers deduplicate by event id.

    With ``spool_dir``, a batch whose first attempt failed is written to that
    folder before its retries, so an exit or a kill meanwhile loses nothing; if
    the retries run out it stays there and is sent, oldest first, before anything
    newer once the endpoint answers again. An emitter started later on the same
    folder and URL sends what an earlier process left there. The folder holds at
    most ``max_spool_bytes``; batches that do not fit are dropped and counted.
    Without ``spool_dir`` a batch whose retries ran out is reported failed.

    Header values whose names look secret (``Authorization``, ``X-Api-Key``,
    anything with token, key, secret, auth, password, cookie, session...) are
    registered with :func:`emitters.register_secret`; no header ever appears in a
    log line, an error message or a spool file name.

    Args:
        url: The endpoint, ``http://`` or ``https://``.
        headers: Extra request headers, such as ``Authorization``.
        spool_dir: A folder for batches that could not be sent; None: no spool.
        timeout: Seconds one request may take (connect, write, read each).
        max_retries: Retries after the first attempt before giving up on a batch.
        backoff: The first retry's delay in seconds; it doubles with each retry.
        max_backoff: The longest delay between two attempts, ``Retry-After``
            included.
        max_spool_bytes: The most bytes the spool folder may hold.
        gzip: Compress bodies of at least ``gzip_min_bytes`` bytes.
        gzip_min_bytes: The smallest body worth compressing.
        gzip_level: The zlib compression level, 1 (fastest) to 9 (smallest).
        verify: TLS verification: True, False or an ``ssl.SSLContext`` (for a CA
            bundle of your own: ``ssl.create_default_context(cafile=...)``).
        name: The name it is counted under in ``stats()``.

    Raises:
        ValueError: ``url`` is not an http(s) URL, or an option is out of range.
        TypeError: ``headers`` is not a mapping of strings to strings.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_spool_bytes: int = 100 * _MIB,
        gzip: bool = True,
        gzip_min_bytes: int = 1024,
        gzip_level: int = 1,
        verify: ssl.SSLContext | bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        parsed = check_url(url)
        self._headers = check_headers(headers)
        self._timeout = positive("timeout", timeout)
        self._max_retries = integer("max_retries", max_retries, low=0)
        self._backoff = positive("backoff", backoff, zero=True)
        self._max_backoff = positive("max_backoff", max_backoff, zero=True)
        max_spool_bytes = integer("max_spool_bytes", max_spool_bytes, low=1)
        self._gzip = bool(gzip)
        self._gzip_min_bytes = integer("gzip_min_bytes", gzip_min_bytes, low=0)
        self._gzip_level = integer("gzip_level", gzip_level, low=1, high=9)
        self._verify = verify
        for header, value in self._headers.items():
            if is_secret_header(header):
                register_secret(*secret_parts(value))
        if parsed.password:
            register_secret(parsed.password)
        self._url = str(parsed)
        self._shown_url = display_url(parsed)
        self._spool = (
            None
            if spool_dir is None
            else Spool(
                Path(os.fspath(spool_dir)).expanduser().absolute(),
                max_spool_bytes,
                endpoint_tag(self._url),
            )
        )
        self._client: httpx.Client | None = None
        self._busy = threading.RLock()
        self._closed = threading.Event()
        # While the endpoint is down: when the next probe is due, and how often
        # probes have failed in a row (the backoff exponent).
        self._retry_at = 0.0
        self._down_level = 0
        self.sent = 0
        """Events the endpoint accepted (2xx), replayed ones included."""
        self.spooled = 0
        """Events written to the spool."""
        self.replayed = 0
        """Events sent from the spool and accepted."""
        self.rejected = 0
        """Events the endpoint refused for good (a 4xx other than 408 and 429)."""
        self.dropped = 0
        """Events lost because the spool was full or could not be written."""

    @property
    def url(self) -> str:
        """The endpoint, without user info, query or fragment (safe to show)."""
        return self._shown_url

    @property
    def spool_dir(self) -> Path | None:
        """The spool folder, or None."""
        return None if self._spool is None else self._spool.folder

    # -- the sink protocol -----------------------------------------------------

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Send the batch (after anything spooled), or spool it if the endpoint is down.

        Raises:
            HttpDeliveryError: The batch was rejected, or could not be delivered
                and could not be spooled.
        """
        if not events:
            return
        batch = encode_batch(
            events,
            gzip=self._gzip,
            gzip_min_bytes=self._gzip_min_bytes,
            gzip_level=self._gzip_level,
        )
        with self._busy:
            self._deliver(batch)

    def flush(self, timeout: float | None = None) -> bool:
        """Try to send what is spooled now; True if the spool is empty.

        Args:
            timeout: Seconds to spend at most; None tries each spooled batch
                once per failure, each within the request timeout.
        """
        spool = self._spool
        if spool is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._busy.acquire(timeout=-1 if timeout is None else max(0, timeout)):
            return False
        try:
            if self._closed.is_set() or not spool.has_pending():
                return not spool.has_pending()
            return self._replay(first_retries=0, deadline=deadline, wait=True)
        finally:
            self._busy.release()

    def close(self) -> None:
        """Stop retrying, close the HTTP client; spooled batches stay for later."""
        self._closed.set()
        acquired = self._busy.acquire(timeout=_CLOSE_WAIT_S)
        try:
            client, self._client = self._client, None
            if client is not None:
                client.close()
        finally:
            if acquired:
                self._busy.release()

    def __repr__(self) -> str:
        return f"<HttpEmitter name={self.name!r} url={self._shown_url!r}>"

    # -- delivery ----------------------------------------------------------------

    def _deliver(self, batch: Batch) -> None:
        if self._closed.is_set():
            self._undeliverable(batch, _Outcome("unreachable", reason="closed"))
            return
        down = time.monotonic() < self._retry_at
        spool = self._spool
        if spool is not None and spool.has_pending():
            # Older batches go first; while the endpoint is down, only a due
            # probe touches the network.
            if down or not self._replay(
                first_retries=0 if self._down_level else self._max_retries,
                deadline=None,
                wait=False,
            ):
                self._undeliverable(batch, _Outcome("unreachable", reason="down"))
                return
        elif down:
            self._undeliverable(batch, _Outcome("unreachable", reason="down"))
            return
        probing = self._down_level > 0
        if spool is None or probing or self._max_retries == 0:
            outcome = self._send(
                batch, retries=0 if probing else self._max_retries, deadline=None
            )
        else:
            outcome = self._send(batch, retries=0, deadline=None, note_down=False)
            if outcome.kind == "unreachable":
                self._retry_from_spool(spool, batch, outcome)
                return
        self._settle(batch, outcome)

    def _retry_from_spool(self, spool: Spool, batch: Batch, first: _Outcome) -> None:
        """Write a batch whose first attempt failed to the spool, then retry it.

        On disk before any wait, it survives an exit, a kill or close() during
        the retries; the claim keeps other replayers off it meanwhile.
        """
        try:
            path = spool.write(batch)
        except OSError:
            path = None
        if path is None:  # full or unwritable: retry from memory instead
            self._settle(
                batch,
                self._send(
                    batch, retries=self._max_retries, deadline=None, after=first
                ),
            )
            return
        self.spooled += batch.event_count
        with spool.claimed(None, self._closed) as claimed:
            if not claimed:
                return  # whoever replays the folder sends it, in order
            outcome = self._send(
                batch, retries=self._max_retries, deadline=None, after=first
            )
            if outcome.kind == "unreachable":
                return  # it stays in the spool, counted as spooled
            spool.remove(path)
            if outcome.kind == "sent":
                self.replayed += batch.event_count
            self._settle(batch, outcome, spooled=True)

    def _settle(
        self, batch: Batch, outcome: _Outcome, *, spooled: bool = False
    ) -> None:
        """Count a final outcome; raise for a rejection, spool what was not sent."""
        if outcome.kind == "sent":
            self.sent += batch.event_count
        elif outcome.kind == "rejected":
            self.rejected += batch.event_count
            raise self._error(batch, outcome)
        elif not spooled:
            self._undeliverable(batch, outcome)

    def _replay(
        self, *, first_retries: int, deadline: float | None, wait: bool
    ) -> bool:
        """Send spooled batches oldest first; True once the spool is empty."""
        spool = self._spool
        assert spool is not None
        claim_deadline = deadline if wait else None
        if wait and claim_deadline is None:
            claim_deadline = time.monotonic() + self._timeout
        with spool.claimed(claim_deadline, self._closed) as claimed:
            if not claimed:
                return False
            retries = first_retries
            for _ in range(_MAX_REPLAY_PASSES):
                paths = spool.pending()
                if not paths:
                    return True
                for path in paths:
                    batch = spool.read(path)
                    if batch is None:
                        continue
                    outcome = self._send(batch, retries=retries, deadline=deadline)
                    if outcome.kind == "unreachable":
                        return False
                    spool.remove(path)
                    if outcome.kind == "sent":
                        self.sent += batch.event_count
                        self.replayed += batch.event_count
                    else:
                        self.rejected += batch.event_count
                        throttle.warn(
                            f"http-rejected:{self.name}",
                            "%s: the endpoint %s rejected %d spooled events "
                            "(HTTP %s); they were removed from the spool",
                            self.name,
                            self._shown_url,
                            batch.event_count,
                            outcome.status,
                        )
                    retries = self._max_retries
            return not spool.has_pending()

    def _send(
        self,
        batch: Batch,
        *,
        retries: int,
        deadline: float | None,
        after: _Outcome | None = None,
        note_down: bool = True,
    ) -> _Outcome:
        """POST one batch, retrying as answers allow; note if the endpoint is down.

        Args:
            batch: What to send.
            retries: Attempts after the first one.
            deadline: A ``time.monotonic()`` time to give up at, or None.
            after: The failed outcome of a first attempt already made: start
                with the wait before the first retry.
            note_down: Whether giving up marks the endpoint as down (never with
                a deadline).
        """
        headers = {IDEMPOTENCY_HEADER: batch.key, COUNT_HEADER: str(batch.event_count)}
        if batch.encoding == "gzip":
            headers["Content-Encoding"] = "gzip"
        retry = 0
        outcome = after
        while True:
            if outcome is not None:  # the last attempt failed: wait, or give up
                if retry >= retries or self._closed.is_set():
                    break
                if outcome.retry_after is not None:
                    delay = min(self._max_backoff, outcome.retry_after)
                else:
                    delay = backoff_delay(self._backoff, self._max_backoff, retry)
                if deadline is not None and time.monotonic() + delay > deadline:
                    break
                # An Event, not time.sleep: close() cuts the wait short.
                if self._closed.wait(delay):
                    break
                retry += 1
            outcome = self._attempt(batch.body, headers, deadline)
            if outcome.kind != "unreachable":
                # Any answer but a retryable one means the endpoint is up.
                self._retry_at, self._down_level = 0.0, 0
                return outcome
        # A flush's deadline cuts attempts short: only sends without one judge
        # the endpoint.
        if note_down and deadline is None:
            self._mark_down(outcome.retry_after)
        tries = retry + 1
        return outcome._replace(
            reason=f"{outcome.reason} ({tries} attempt{'s' if tries > 1 else ''})"
        )

    def _attempt(
        self, body: bytes, headers: dict[str, str], deadline: float | None
    ) -> _Outcome:
        timeout = self._timeout
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                return _Outcome("unreachable", reason="the flush timeout ran out")
        try:
            response = self._get_client().post(
                self._url, content=body, headers=headers, timeout=timeout
            )
        except (httpx.HTTPError, OSError, RuntimeError) as exc:
            # RuntimeError: close() closed the client under this request.
            reason = f"{type(exc).__name__}: {redact_text(str(exc))}".rstrip(": ")
            return _Outcome("unreachable", reason=reason)
        status = response.status_code
        if 200 <= status <= 299:
            return _SENT
        if is_retryable(status):
            return _Outcome(
                "unreachable",
                status,
                retry_after_seconds(response.headers.get("Retry-After")),
                f"HTTP {status}",
            )
        return _Outcome("rejected", status, reason=f"HTTP {status}")

    def _get_client(self) -> httpx.Client:
        client = self._client
        if client is None:
            if self._closed.is_set():
                raise RuntimeError("the emitter is closed")
            client = self._client = httpx.Client(
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": _user_agent(),
                    **self._headers,
                },
                timeout=self._timeout,
                verify=self._verify,
                follow_redirects=False,
            )
        return client

    def _mark_down(self, retry_after: float | None) -> None:
        if retry_after is not None:
            delay = min(self._max_backoff, retry_after)
        else:
            delay = backoff_delay(self._backoff, self._max_backoff, self._down_level)
        self._down_level += 1
        self._retry_at = time.monotonic() + delay

    def _undeliverable(self, batch: Batch, outcome: _Outcome) -> None:
        """Spool a batch that could not be sent; raise if it cannot be spooled."""
        spool = self._spool
        if spool is None:
            raise self._error(batch, outcome)
        try:
            stored = spool.write(batch)
        except OSError as exc:
            self.dropped += batch.event_count
            raise HttpDeliveryError(
                f"{self.name} could not spool {batch.event_count} events to "
                f"{spool.folder} ({type(exc).__name__}: {exc.strerror or exc}); "
                "they were dropped",
                events=batch.event_count,
                status_code=outcome.status,
            ) from None
        if stored is None:
            self.dropped += batch.event_count
            raise HttpDeliveryError(
                f"{self.name}: the spool {spool.folder} is full "
                f"(max_spool_bytes={spool.max_bytes}); {batch.event_count} events "
                "were dropped",
                events=batch.event_count,
                status_code=outcome.status,
            )
        self.spooled += batch.event_count

    def _error(self, batch: Batch, outcome: _Outcome) -> HttpDeliveryError:
        if outcome.kind == "rejected":
            why = f"the endpoint rejected them with HTTP {outcome.status} (not retried)"
        elif outcome.reason == "down":
            due = max(0.0, self._retry_at - time.monotonic())
            why = f"the endpoint is down; the next attempt is due in {due:.1f}s"
        elif outcome.reason == "closed":
            why = "the emitter is closed"
        else:
            why = outcome.reason
        return HttpDeliveryError(
            f"{self.name} could not deliver {batch.event_count} events to "
            f"{self._shown_url}: {why}",
            events=batch.event_count,
            status_code=outcome.status,
        )


def from_environment() -> HttpEmitter:
    """Return an ``HttpEmitter`` configured by the environment.

    ``EVENTBLOCKS_HTTP_URL`` (required) is the endpoint;
    ``EVENTBLOCKS_HTTP_HEADERS`` (optional) adds headers as
    ``name=value,name=value`` with percent-encoded values (the format of
    OpenTelemetry's ``OTEL_EXPORTER_OTLP_HEADERS``); ``EVENTBLOCKS_HTTP_SPOOL_DIR``
    is the spool folder, by default ``spool`` in the eventblocks home.

    Raises:
        ValueError: ``EVENTBLOCKS_HTTP_URL`` is not set or not an http(s) URL, or
            ``EVENTBLOCKS_HTTP_HEADERS`` is malformed.
    """
    url, headers, spool_dir = environment_settings()
    return HttpEmitter(url, headers=headers, spool_dir=spool_dir)
