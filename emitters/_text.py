"""Text every sink can encode.

Python strings may hold lone surrogates: ``os.listdir`` and ``sys.argv`` turn bytes
that are not UTF-8 into them (``b"caf\\xe9"`` becomes ``"caf\\udce9"``), and
neither JSON encoders that write UTF-8 nor databases accept them. Events keep
such text readable instead: each lone surrogate is written out as an escape,
``\\xe9`` for a byte that was not UTF-8 and ``\\udXXX`` for any other.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["mend", "mend_json", "mend_text"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that os.fsdecode could not decode
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def mend_text(text: str) -> str:
    """Return ``text`` with lone surrogates escaped (``text`` itself if it has none)."""
    if text.isascii():
        return text
    return _SURROGATE.sub(_escape, text)


def mend(value: Any) -> Any:
    """Return ``value`` with the strings in it (keys included) mended.

    Dicts, lists and tuples are walked; the same object comes back when nothing
    needed mending.
    """
    if isinstance(value, str):
        return mend_text(value)
    if isinstance(value, dict):
        items = [(mend(k), mend(v)) for k, v in value.items()]
        if all(
            a is k and b is v
            for (a, b), (k, v) in zip(items, value.items(), strict=True)
        ):
            return value
        return dict(items)
    if isinstance(value, list | tuple):
        mended = [mend(v) for v in value]
        if all(a is b for a, b in zip(mended, value, strict=True)):
            return value
        return tuple(mended) if isinstance(value, tuple) else mended
    return value


def mend_json(value: Any) -> Any:
    """Return :func:`mend` of ``value``, checking first, in C, whether it needs it.

    Most payloads are ASCII, or text that encodes as UTF-8: one ``json.dumps``
    says so much faster than a walk in Python. Values JSON cannot encode are
    walked.
    """
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return mend(value)
    if text.isascii():
        return value
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return mend(value)
    return value
