"""The secrets one HTTP request carries, and masking them in its exception messages.

Which header and query names carry secrets is decided by the one rule shared with
the HTTP emitter (``is_secret_name``); URLs are shown with those values masked by
``redact_url``. Both come from ``emitters``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import httpx

from emitters._sdk import MASK, is_secret_name, secret_forms

__all__ = ["request_secrets", "scrub_exception"]


def request_secrets(
    url: httpx.URL, headers: Mapping[str, str] | None = None
) -> list[str]:
    """Return the secret values one request carries: user-info, secret query values
    and the values of headers with secret names.

    They are masked in the request's exception messages rather than registered
    process-wide: a signed URL per request would grow the registry without end.
    """
    found: list[str] = []
    if url.userinfo:
        found.append(url.userinfo.decode("ascii"))
        found.append(url.password)
    for name, value in url.params.multi_items():
        if value and is_secret_name(name):
            found.append(value)
    for name, value in (headers or {}).items():
        if value and is_secret_name(name):
            found.append(value)
    return found


def _variants(values: Iterable[str]) -> list[str]:
    """Each value in every form it may travel in, longest first."""
    out: set[str] = set()
    for value in values:
        if value:
            out.update(secret_forms(value))
    # Longest first, so that a value containing another is masked whole.
    return sorted(out, key=len, reverse=True)


def scrub_exception(exc: BaseException, values: Iterable[str]) -> None:
    """Mask ``values`` in the message of ``exc``, in place, if it contains any.

    The exception stays the same object, with the same type and traceback; only a
    message that would have shown a secret changes.
    """
    variants = _variants(values)
    if not variants:
        return
    try:
        text = str(exc)
    except Exception:
        return
    masked = text
    for value in variants:
        masked = masked.replace(value, MASK)
    if masked != text:
        exc.args = (masked,)
