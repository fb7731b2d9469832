"""``PrefectEmitter``: block events POSTed to a Prefect server's event API.

It is the HTTP sink (:class:`emitters.http.HttpEmitter`) with Prefect's wire
format: each batch is a JSON array of events in Prefect's schema
(:mod:`emitters.prefect._schema`) POSTed to ``<api_url>/events``; retries,
the spool and the counters are the HTTP sink's. An event the server would
refuse (a 422 refuses the whole batch) or drop (too large) is set aside before
sending and counted, and the rest of its batch goes on.
"""

from __future__ import annotations

import base64
import os
import ssl
from collections import deque
from collections.abc import Sequence

from emitters._emitter import PartialDelivery
from emitters._model import Event
from emitters._pipeline.delivery import throttle
from emitters._settings import home, prefect_api_setting
from emitters._spool import Batch
from emitters.http import HttpEmitter
from emitters.prefect._schema import Limits, prefect_document

__all__ = ["PrefectEmitter"]

_MIB = 1024 * 1024
_KEPT_REASONS = 100


class PrefectEmitter(HttpEmitter):
    """Sends events to a Prefect server (or Prefect Cloud), where its UI shows them.

    Events appear in Prefect's event feed; the events of a block call made in a
    Prefect flow or task run are related to ``prefect.flow-run.<id>`` (role
    ``flow-run``) and ``prefect.task-run.<id>``, so they show on that run's page.
    Other resource ids carry the prefix ``eventblocks.``. It never imports
    Prefect.

    Before a batch is sent, each event is checked against Prefect's limits
    (``limits``: 100 related resources, 500 labels per resource, 1.5 MB as JSON,
    1,024 characters of name): one that would be refused is set aside, counted
    in :attr:`set_aside` (its id and the reason in :attr:`set_aside_reasons`)
    and reported to the pipeline as not delivered; the others are sent.

    Args:
        api_url: The API's URL, such as ``http://127.0.0.1:4200/api``; None
            reads ``PREFECT_API_URL``.
        api_key: A Prefect Cloud API key, sent as a bearer token; None reads
            ``PREFECT_API_KEY``.
        auth_string: A self-hosted server's ``user:password`` (its
            ``PREFECT_SERVER_API_AUTH_STRING``), sent as basic authentication;
            None reads ``PREFECT_API_AUTH_STRING``.
        spool_dir: A folder for batches that could not be sent; by default
            ``prefect-spool`` in the eventblocks home; None with
            ``spool=False``.
        spool: False sends without a spool.
        limits: The server's limits, if it was configured with other ones.
        timeout: Seconds one request may take (connect, write, read each).
        max_retries: Retries after the first attempt before giving up on a batch.
        backoff: The first retry's delay in seconds; it doubles with each retry.
        max_backoff: The longest delay between two attempts.
        max_spool_bytes: The most bytes the spool folder may hold.
        verify: TLS verification: True, False or an ``ssl.SSLContext``.
        name: The name it is counted under in ``stats()``.

    Raises:
        ValueError: No API URL is given or set, or it is not an http(s) URL, or
            an option is out of range (the message never echoes a secret).
    """

    def __init__(
        self,
        api_url: str | None = None,
        *,
        api_key: str | None = None,
        auth_string: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        spool: bool = True,
        limits: Limits = Limits(),  # noqa: B008 - an immutable tuple
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_spool_bytes: int = 100 * _MIB,
        verify: ssl.SSLContext | bool = True,
        name: str | None = None,
    ) -> None:
        if api_url is None:
            api_url = prefect_api_setting("PREFECT_API_URL") or ""
            if not api_url:
                raise ValueError(
                    "api_url is not given and PREFECT_API_URL is not set; pass the "
                    "Prefect API's URL, such as http://127.0.0.1:4200/api"
                )
        if api_key is None:
            api_key = prefect_api_setting("PREFECT_API_KEY")
        if auth_string is None:
            auth_string = prefect_api_setting("PREFECT_API_AUTH_STRING")
        headers = {}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        elif auth_string:
            token = base64.b64encode(auth_string.encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if not isinstance(limits, Limits):
            raise TypeError("limits must be an emitters.prefect.Limits")
        if spool and spool_dir is None:
            spool_dir = home() / "prefect-spool"
        super().__init__(
            api_url.rstrip("/") + "/events",
            headers=headers,
            spool_dir=spool_dir if spool else None,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            max_backoff=max_backoff,
            max_spool_bytes=max_spool_bytes,
            gzip=False,  # Prefect's server does not decode compressed bodies
            verify=verify,
            name=name,
        )
        self._limits = limits
        self.set_aside = 0
        """Events not sent because the server would refuse them."""
        self.set_aside_reasons: deque[str] = deque(maxlen=_KEPT_REASONS)
        """Why the latest set-aside events were (event id and limit, no value)."""

    @property
    def limits(self) -> Limits:
        """The limits events are checked against."""
        return self._limits

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Send the batch's events that Prefect accepts; set aside the others.

        Raises:
            HttpDeliveryError: As for :class:`~emitters.http.HttpEmitter`.
            PartialDelivery: Some events were set aside (the rest was sent or
                spooled).
        """
        if not events:
            return
        documents: list[bytes] = []
        kept: list[Event] = []
        refused: list[str] = []
        for event in events:
            document, reason = prefect_document(event, self._limits)
            if document is None:
                refused.append(reason)
            else:
                documents.append(document)
                kept.append(event)
        if refused:
            self.set_aside += len(refused)
            self.set_aside_reasons.extend(refused)
            throttle.warn(
                f"prefect-set-aside:{self.name}",
                "%s: %d events set aside, Prefect would refuse them: %s",
                self.name,
                len(refused),
                refused[0],
            )
        if documents:
            batch = Batch(
                b"[" + b",".join(documents) + b"]",
                "identity",
                len(documents),
                f"{kept[0].id}:{kept[-1].id}",
            )
            with self._busy:
                self._deliver(batch)
        if refused:
            raise PartialDelivery(
                len(documents),
                f"{len(refused)} of {len(events)} events set aside: {refused[0]}",
            )

    def __repr__(self) -> str:
        return f"<PrefectEmitter name={self.name!r} url={self.url!r}>"
