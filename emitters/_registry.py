"""The secret registry: which values are secret, for how long, and finding them in
text in one pass.

A value is registered with its forms (see :func:`secret_forms`): the encodings it
travels in. Values registered by :func:`register_secret` stay for the life of the
process; values a block registers (:func:`register_owned`) stay while that block
is alive, and are released when it is collected (the block's queued events hold
it, so they are masked before it can go). A value too short or too common to mask
safely is refused (:func:`refusal`): masking it would garble ordinary text.

Finding the forms costs one pass over the text, whatever their number: up to
``_REGEX_MAX`` forms are one compiled pattern, rebuilt lazily after a change;
more are found through an index of their last ``MIN_SECRET_LENGTH`` characters
(tokens often share a prefix, such as ``ghp_`` or ``sk-live-``, rarely a
suffix), kept up to date as values come and go. Matching ignores ASCII case.
"""

from __future__ import annotations

import base64
import collections
import json
import re
import threading
import weakref
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = [
    "COMMON_VALUES",
    "MIN_SECRET_LENGTH",
    "find_spans",
    "has_secrets",
    "is_registered",
    "refusal",
    "register_forms",
    "register_owned",
    "registered_count",
    "secret_forms",
    "version",
]

MIN_SECRET_LENGTH = 5
# Values that would garble ordinary text and the SDK's own words if masked.
COMMON_VALUES = frozenset(
    {
        "true",
        "false",
        "none",
        "null",
        "undefined",
        "admin",
        "administrator",
        "default",
        "guest",
        "local",
        "localhost",
        "master",
        "password",
        "postgres",
        "mysql",
        "secret",
        "changeme",
        "production",
        "staging",
        "testing",
        "public",
        "error",
        "message",
        "yielded",
        "failed",
        "started",
        "succeeded",
        "duration_ms",
        "closed_early",
        "payload_error",
        "block",
        "event",
        "events",
        "resource",
        "related",
        "utf-8",
    }
)
_REGEX_MAX = 256
# Text decoded from bytes that are not UTF-8 keeps them as surrogates: encode them
# back to the same bytes.
_RAW = "surrogateescape"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def refusal(value: str) -> str | None:
    """Return why ``value`` cannot be masked safely, or None if it can.

    The rule: a value shorter than ``MIN_SECRET_LENGTH`` (5) characters, or one of
    ``COMMON_VALUES`` (whatever its case), or made of a single repeated character,
    is refused: masking it would damage ordinary text (``"1"`` in
    ``'yielded': 1``, ``"a"`` in ``ValueError``, ``"prod"`` in a document's name).
    """
    if len(value) < MIN_SECRET_LENGTH:
        return f"shorter than {MIN_SECRET_LENGTH} characters"
    if value.lower() in COMMON_VALUES:
        return "a common word"
    if len(set(value)) == 1:
        return "one repeated character"
    return None


def _lower(text: str) -> str:
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _base64_forms(raw: bytes) -> list[str]:
    """Base64 of ``raw`` alone, and its core at each alignment inside a longer text.

    Inside ``user:secret`` (a Basic header) or a JSON body, the secret starts at
    any offset modulo 3: the groups that mix in neighbouring bytes are left out.
    """
    out = [base64.b64encode(raw).decode().rstrip("=")]
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        core = encoded[4 if shift else 0 : -4]
        out.append(core.decode())
    return out + [f.translate(str.maketrans("+/", "-_")) for f in out]


def secret_forms(value: str) -> list[str]:
    """Return ``value`` and the encoded forms it travels in, each once.

    The forms: the value; URL-encoded (``quote`` for a component and a path,
    ``quote_plus``); JSON-escaped (with and without ``\\u`` escapes); as the
    ``repr`` of its UTF-8 bytes (``b'...'``); and base64 (standard and URL-safe)
    of the value alone and inside a longer text such as ``user:secret``. Forms
    shorter than ``MIN_SECRET_LENGTH`` are left out.
    """
    raw = value.encode("utf-8", "surrogateescape")
    candidates = [
        value,
        quote(value, safe="", errors=_RAW),
        quote(value, errors=_RAW),
        quote_plus(value, errors=_RAW),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(raw)[2:-1],
        *_base64_forms(raw),
    ]
    forms: list[str] = []
    for form in candidates:
        if len(form) >= MIN_SECRET_LENGTH and form not in forms:
            forms.append(form)
    return forms


class _Registry:
    """The registered forms, who holds them, and the matcher over them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # lowered form -> how many holders (the process counts as one).
        self.counts: dict[str, int] = {}
        self.permanent: set[str] = set()
        # id(owner) -> the lowered forms it holds.
        self.owners: dict[int, set[str]] = {}
        # Last MIN_SECRET_LENGTH characters -> forms. Buckets are tuples, replaced
        # on change, so a scan in another thread reads a whole one.
        self.index: dict[str, tuple[str, ...]] = {}
        self.pattern: re.Pattern[str] | None = None
        self.pattern_stale = True
        self.version = 0
        # Owners collected since the last change; released under the lock later
        # (a finalizer may run while this thread holds the lock).
        self.dead: collections.deque[int] = collections.deque()

    # -- changes (lock held) -------------------------------------------------------

    def _add(self, form: str) -> None:
        count = self.counts.get(form, 0)
        self.counts[form] = count + 1
        if count == 0:
            key = form[-MIN_SECRET_LENGTH:]
            self.index[key] = (*self.index.get(key, ()), form)
            self.pattern_stale = True
            self.version += 1

    def _drop(self, form: str) -> None:
        count = self.counts.get(form, 0) - 1
        if count > 0:
            self.counts[form] = count
            return
        self.counts.pop(form, None)
        key = form[-MIN_SECRET_LENGTH:]
        bucket = tuple(f for f in self.index.get(key, ()) if f != form)
        if bucket:
            self.index[key] = bucket
        else:
            self.index.pop(key, None)
        self.pattern_stale = True
        self.version += 1

    def reap(self) -> None:
        dead = self.dead
        while dead:
            forms = self.owners.pop(dead.popleft(), None)
            for form in forms or ():
                self._drop(form)

    # -- registering ---------------------------------------------------------------

    def add_permanent(self, forms: Iterable[str]) -> None:
        with self.lock:
            self.reap()
            for form in forms:
                form = _lower(form)
                if form not in self.permanent:
                    self.permanent.add(form)
                    self._add(form)

    def add_owned(self, owner: object, forms: Iterable[str]) -> bool:
        key = id(owner)
        with self.lock:
            self.reap()
            held = self.owners.get(key)
            if held is None:
                try:
                    release = weakref.finalize(owner, self.dead.append, key)
                except TypeError:
                    return False  # not weakly referable: the caller keeps them
                # Not at exit: the pipeline's last flush, which runs after
                # finalizers, still masks the events of blocks alive until then.
                release.atexit = False
                held = self.owners[key] = set()
            for form in forms:
                form = _lower(form)
                if form not in held:
                    held.add(form)
                    self._add(form)
        return True

    # -- matching ------------------------------------------------------------------

    def matcher(
        self,
    ) -> tuple[re.Pattern[str] | None, dict[str, tuple[str, ...]]] | None:
        if self.dead or (self.pattern_stale and len(self.counts) <= _REGEX_MAX):
            with self.lock:
                self.reap()
                if self.pattern_stale:
                    self.pattern = None
                    if 0 < len(self.counts) <= _REGEX_MAX:
                        ordered = sorted(self.counts, key=len, reverse=True)
                        self.pattern = re.compile("|".join(map(re.escape, ordered)))
                    self.pattern_stale = False
        if not self.counts:
            return None
        return (None if self.pattern_stale else self.pattern), self.index


_registry = _Registry()


def register_forms(value: str) -> None:
    """Register ``value`` (already checked) and its forms for the process's life."""
    _registry.add_permanent(secret_forms(value))


def register_owned(owner: object, values: Iterable[str]) -> None:
    """Register ``values`` (already checked) while ``owner`` is alive.

    An owner that cannot be weakly referenced keeps its values for good.
    """
    forms = [form for value in values for form in secret_forms(value)]
    if forms and not _registry.add_owned(owner, forms):
        _registry.add_permanent(forms)


def find_spans(text: str) -> list[tuple[int, int]]:
    """Return the ``(start, end)`` spans of registered forms in ``text``, in order.

    Overlapping matches are merged into one span; ASCII case is ignored.
    """
    found = _registry.matcher()
    if found is None or len(text) < MIN_SECRET_LENGTH:
        return []
    pattern, index = found
    lowered = _lower(text)
    if pattern is not None:
        return [m.span() for m in pattern.finditer(lowered)]
    spans: list[tuple[int, int]] = []
    get = index.get
    size = MIN_SECRET_LENGTH
    startswith = lowered.startswith
    for end in range(size, len(lowered) + 1):
        bucket = get(lowered[end - size : end])
        if bucket is None:
            continue
        for form in bucket:
            start = end - len(form)
            if start >= 0 and startswith(form, start):
                # Matches it overlaps (all end at or before this one) join it.
                while spans and start <= spans[-1][1]:
                    start = min(start, spans.pop()[0])
                spans.append((start, end))
    return spans


def has_secrets() -> bool:
    """Return True while any form is registered."""
    return bool(_registry.counts)


def is_registered(text: str) -> bool:
    """Return True if ``text`` as a whole is a registered form."""
    return _lower(text) in _registry.counts


def registered_count() -> int:
    """Return how many forms are registered (for tests and benchmarks)."""
    _registry.matcher()
    return len(_registry.counts)


def version() -> int:
    """Return a number that changes whenever the registered forms change."""
    return _registry.version
