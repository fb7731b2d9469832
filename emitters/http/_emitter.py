"""``HttpEmitter``: batches of events POSTed to an HTTP endpoint, with a disk spool.

Everything here runs on the sink's own worker thread (see
:mod:`emitters._pipeline.delivery`); the caller of a block method never waits for it. A
batch is retried with exponential backoff and jitter while the endpoint answers
408, 429 or 5xx or cannot be reached. With a spool (:mod:`emitters._spool`) the
batch is written there after its first failed attempt, and the emitter counts the
endpoint as down: until the next probe is due, new batches go straight to the
spool behind the older ones. The first send that succeeds replays the spool,
oldest first, before anything new.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import httpx

from emitters._emitter import Emitter
from emitters._introspect import package_version
from emitters._logs import protect_logger
from emitters._model import Event
from emitters._pipeline.batch import JsonEncoder
from emitters._pipeline.delivery import throttle
from emitters._redact import redact_text, register_secret
from emitters._secret_names import is_secret_name
from emitters._spool import Spool, SpoolError, open_spool
from emitters._urls import display_url
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
    encode_batch,
    is_retryable,
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
# The most seconds one batch spends replaying the spool before it queues behind
# it, so that batches arriving meanwhile do not pile up in memory.
_REPLAY_SLICE_S = 2.0
# The most bytes of a response body read; a longer one fails the request.
MAX_RESPONSE_BYTES = 4 * _MIB
# How often a worker waiting for its request looks at close() and the exit.
_POLL_S = 0.05
# At exit, the share of the time left kept for spooling (at most _EXIT_RESERVE_S).
_EXIT_RESERVE_SHARE = 0.3
_EXIT_RESERVE_S = 1.0


def _user_agent() -> str:
    version = package_version()
    return "eventblocks" if version == "unknown" else f"eventblocks/{version}"


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
    folder at once and the endpoint counted down; later batches join it there
    until a probe (with backoff) finds the endpoint up, and then the spool is
    sent, oldest first, before anything newer. At exit nothing is retried: what
    is left gets one attempt within the exit's time, then goes to the spool. An
    emitter started later on the same folder and URL sends what an earlier
    process left there. The folder holds at
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
        timeout: Seconds one whole request may take: connect, send and the
            whole answer (a body over ``MAX_RESPONSE_BYTES`` fails it).
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

    # It writes JSON straight from the pipeline's drafts of events.
    _eventblocks_reads_drafts = True

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
        self._json = JsonEncoder()
        self._verify = verify
        for header, value in self._headers.items():
            if is_secret_name(header):
                register_secret(*secret_parts(value))
        if parsed.password:
            register_secret(parsed.password)
        self._url = str(parsed)
        self._shown_url = display_url(parsed)
        self._spool = open_spool(spool_dir, max_spool_bytes, self._url)
        self._client: httpx.Client | None = None
        self._busy = threading.RLock()
        self._closed = threading.Event()
        # Set by close() and at exit: cuts short every wait between attempts.
        self._hurry = threading.Event()
        # At exit: the time.monotonic() by which requests must end.
        self._exit_deadline: float | None = None
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
        self.corrupt = 0
        """Spool files set aside as ``.corrupt`` (unreadable, or rejected)."""

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
            encoder=self._json,
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
            if (
                self._closed.is_set()
                or not spool.has_pending()
                or (self._exit_deadline is not None and self._is_down())
            ):
                return not spool.has_pending()
            return self._replay(first_retries=0, deadline=deadline, wait=True)
        finally:
            self._busy.release()

    def close(self) -> None:
        """Stop retrying, close the HTTP client; spooled batches stay for later.

        A request in progress is abandoned; batches given afterwards go straight
        to the spool (without one, they fail).
        """
        self._closed.set()
        self._hurry.set()
        acquired = self._busy.acquire(timeout=_CLOSE_WAIT_S)
        try:
            client, self._client = self._client, None
            if client is not None:
                client.close()
        finally:
            if acquired:
                self._busy.release()

    def prepare_exit(self, deadline: float) -> None:
        """The process is exiting and gives this sink until ``deadline``.

        From now on nothing is retried: each batch gets one attempt that ends
        before the spooling reserve, and once one fails the rest go straight to
        the spool (without one, they fail at once and are counted).
        """
        left = deadline - time.monotonic()
        reserve = min(_EXIT_RESERVE_S, _EXIT_RESERVE_SHARE * left)
        self._exit_deadline = deadline - max(0.0, reserve)
        self._hurry.set()

    def __repr__(self) -> str:
        return f"<HttpEmitter name={self.name!r} url={self._shown_url!r}>"

    # -- delivery ----------------------------------------------------------------

    def _deliver(self, batch: Batch) -> None:
        if self._closed.is_set():
            self._undeliverable(batch, _Outcome("unreachable", reason="closed"))
            return
        down = self._is_down()
        spool = self._spool
        if spool is not None and spool.has_pending():
            # Older batches go first; while the endpoint is down, only a due
            # probe touches the network, and a long replay lets this batch queue
            # behind it.
            if down or not self._replay(
                first_retries=0 if self._down_level else self._max_retries,
                deadline=None,
                wait=False,
                budget=_REPLAY_SLICE_S,
            ):
                self._undeliverable(batch, _Outcome("unreachable", reason="down"))
                return
        elif down:
            self._undeliverable(batch, _Outcome("unreachable", reason="down"))
            return
        probing = self._down_level > 0
        exiting = self._exit_deadline is not None
        if spool is None or probing or self._max_retries == 0 or exiting:
            outcome = self._send(
                batch,
                retries=0 if probing or exiting else self._max_retries,
                deadline=None,
            )
        else:
            outcome = self._send(batch, retries=0, deadline=None, note_down=False)
            if outcome.kind == "unreachable":
                self._spool_first_failure(spool, batch, outcome)
                return
        self._settle(batch, outcome)

    def _spool_first_failure(self, spool: Spool, batch: Batch, first: _Outcome) -> None:
        """Spool a batch whose first attempt failed; count the endpoint as down.

        Its retries are the probes of the spool (with backoff, see ``_mark_down``),
        so batches that arrive meanwhile go to the spool behind it instead of
        waiting in memory.
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
        self._mark_down(first.retry_after)

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
        self,
        *,
        first_retries: int,
        deadline: float | None,
        wait: bool,
        budget: float | None = None,
    ) -> bool:
        """Send spooled batches oldest first; True once the spool is empty.

        ``budget``: seconds after which no further batch is started.
        """
        spool = self._spool
        assert spool is not None
        stop_at = None if budget is None else time.monotonic() + budget
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
                    if stop_at is not None and time.monotonic() >= stop_at:
                        return False
                    batch = spool.read(path)
                    if batch is None:
                        self.corrupt = spool.corrupt
                        continue
                    outcome = self._send(batch, retries=retries, deadline=deadline)
                    if outcome.kind == "unreachable":
                        return False
                    if outcome.kind == "sent":
                        spool.remove(path)
                        self.sent += batch.event_count
                        self.replayed += batch.event_count
                    else:
                        # Refused for good, as malformed or otherwise: set aside
                        # for a person to look at; delivery goes on behind it.
                        spool.set_aside(path)
                        self.corrupt = spool.corrupt
                        self.rejected += batch.event_count
                        throttle.warn(
                            f"http-rejected:{self.name}",
                            "%s: the endpoint %s rejected %d spooled events "
                            "(HTTP %s); the file was set aside as %s.corrupt",
                            self.name,
                            self._shown_url,
                            batch.event_count,
                            outcome.status,
                            path.name,
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
                if (
                    retry >= retries
                    or self._closed.is_set()
                    or self._exit_deadline is not None
                ):
                    break
                if outcome.retry_after is not None:
                    delay = min(self._max_backoff, outcome.retry_after)
                else:
                    delay = backoff_delay(self._backoff, self._max_backoff, retry)
                if deadline is not None and time.monotonic() + delay > deadline:
                    break
                # An Event, not time.sleep: close() and the exit cut it short.
                if self._hurry.wait(delay):
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
        """Make one request that ends by a total deadline, whatever the server does.

        httpx's timeouts apply to each connect, write and read, so a server that
        drips a byte at a time could hold a request for ever: the request runs on
        a thread of its own, and is abandoned (its client closed) at the deadline:
        ``timeout``, a flush's deadline or the exit's, whichever comes first.
        """
        now = time.monotonic()
        end = now + self._timeout
        if deadline is not None:
            end = min(end, deadline)
        exit_at = self._exit_deadline
        if exit_at is not None:
            end = min(end, exit_at)
        if end - now <= 0:
            return _Outcome("unreachable", reason="the time left ran out")
        try:
            client = self._get_client()
        except RuntimeError as exc:
            return _Outcome("unreachable", reason=str(exc))
        result: list[_Outcome] = []
        done = threading.Event()

        def run() -> None:
            try:
                result.append(self._request(client, body, headers, end - now))
            finally:
                done.set()

        threading.Thread(
            target=run, name=f"eventblocks-http-{self.name}", daemon=True
        ).start()
        while not done.wait(max(0.0, min(_POLL_S, end - time.monotonic()))):
            exit_at = self._exit_deadline
            if exit_at is not None:
                end = min(end, exit_at)
            if time.monotonic() >= end or self._closed.is_set():
                # Closing the client makes the request fail soon; the next
                # attempt opens a new one.
                if self._client is client:
                    self._client = None
                with contextlib.suppress(Exception):
                    client.close()
                return _Outcome(
                    "unreachable",
                    reason=f"no complete answer within {end - now:.1f}s",
                )
        return result[0] if result else _Outcome("unreachable", reason="request failed")

    def _request(
        self,
        client: httpx.Client,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
    ) -> _Outcome:
        try:
            with client.stream(
                "POST", self._url, content=body, headers=headers, timeout=timeout
            ) as response:
                status = response.status_code
                read = 0
                # Raw bytes: a small compressed body cannot unfold into gigabytes.
                for chunk in response.iter_raw():
                    read += len(chunk)
                    if read > MAX_RESPONSE_BYTES:
                        return _Outcome(
                            "unreachable",
                            status,
                            reason=f"the response body is longer than "
                            f"{MAX_RESPONSE_BYTES} bytes",
                        )
        except (httpx.HTTPError, OSError, RuntimeError) as exc:
            # RuntimeError: close() closed the client under this request.
            reason = f"{type(exc).__name__}: {redact_text(str(exc))}".rstrip(": ")
            return _Outcome("unreachable", reason=reason)
        except Exception as exc:  # never kill the request's thread silently
            return _Outcome("unreachable", reason=type(exc).__name__)
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

    def _is_down(self) -> bool:
        return time.monotonic() < self._retry_at

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
            spool.keep(batch, self.name)
        except SpoolError as exc:
            self.dropped += batch.event_count
            raise HttpDeliveryError(
                str(exc), events=batch.event_count, status_code=outcome.status
            ) from None
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
