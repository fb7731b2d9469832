"""The outcome payloads of ``S3Bucket``'s methods, and running a method with its tally.

Each method records what it is about (``bucket``, ``key`` or ``prefix``...) and
what it moved in a :class:`~blocks.aws._transfer.Tally`; the payload hook reads
that tally right after the call, in the same context, and adds what
:func:`~blocks.aws._errors.explain` learnt about a failure: S3's ``error_code``,
the HTTP ``status_code``, the key that failed and the unreachable endpoint.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from blocks.aws._errors import failure_of
from blocks.aws._transfer import Tally, last_tally, new_tally, set_tally

__all__ = ["arun_tallied", "run_tallied", "s3_payload"]

P = ParamSpec("P")
T = TypeVar("T")


def run_tallied(
    function: Callable[Concatenate[Tally, P], T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Call ``function(tally, *args, **kwargs)`` with a new tally for its payload."""
    tally = new_tally()
    try:
        return function(tally, *args, **kwargs)
    finally:
        # A call into another bucket inside may have started its own tally.
        set_tally(tally)


async def arun_tallied(
    function: Callable[Concatenate[Tally, P], T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run ``function(tally, *args, **kwargs)`` in a worker thread, off the event
    loop, with a new tally for the payload.

    ``asyncio.to_thread`` runs it in a copy of the task's context: the flow run,
    the task run and this call (so that calls into other blocks name it as their
    caller, and calls into this one emit nothing of their own).
    """
    tally = new_tally()
    try:
        return await asyncio.to_thread(function, tally, *args, **kwargs)
    finally:
        set_tally(tally)


def s3_payload(
    *, moves_bytes: bool = True, counts_objects: bool = False
) -> Callable[[inspect.BoundArguments, Any], dict[str, Any]]:
    """Return the payload hook of an ``S3Bucket`` method.

    Args:
        moves_bytes: Add ``bytes``, the bytes transferred.
        counts_objects: Add ``objects``, the objects transferred, listed or
            deleted.
    """

    def payload(args: inspect.BoundArguments, outcome: Any) -> dict[str, Any]:
        # The bucket even when the call failed before saying what it was about.
        detail: dict[str, Any] = {"bucket": args.arguments["self"].bucket_name}
        tally = last_tally()
        if tally is not None:
            detail.update(tally.detail)
            if moves_bytes:
                detail["bytes"] = tally.bytes
            if counts_objects:
                detail["objects"] = tally.objects
        if isinstance(outcome, BaseException):
            failure = failure_of(outcome)
            if failure is not None:
                if failure.code is not None:
                    detail["error_code"] = failure.code
                if failure.status_code is not None:
                    detail["status_code"] = failure.status_code
                if failure.endpoint_url is not None:
                    detail["endpoint_url"] = failure.endpoint_url
                if failure.where.key is not None:
                    # For a folder, the key that failed; else the call's own key.
                    detail.setdefault("key", failure.where.key)
        return detail

    return payload
