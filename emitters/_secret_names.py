"""The one rule that tells, by its name, whether a header, a query parameter or an
option carries a secret.

The HTTP blocks, the HTTP emitter and the SQL credentials all ask this rule, so a
header that one of them treats as secret is secret to all of them.
"""

from __future__ import annotations

import re

__all__ = ["is_secret_name"]

# A name is split into lowercase words at anything but letters and digits
# ("X-Api-Key" -> x, api, key; "access_token" -> access, token). It is secret if
# one of its words is in _SECRET_WORDS, ends with "key", or contains a fragment.
_SECRET_WORDS = frozenset(
    {
        "auth",
        "authorization",
        "authentication",
        "cookie",
        "sig",
        "pwd",
        "pass",
        "session",
        "sessionid",
    }
)
_SECRET_FRAGMENTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "passcode",
    "passphrase",
    "signature",
    "credential",
)
_WORD = re.compile(r"[^a-z0-9]+")


def is_secret_name(name: str) -> bool:
    """Return True if a header, query parameter or option called ``name`` is secret.

    Matched case-insensitively, word by word (words are split at anything but
    letters and digits): a name is secret if one of its words is ``auth``,
    ``authorization``, ``authentication``, ``cookie``, ``sig``, ``pwd`` or
    ``pass``, ``session`` or ``sessionid``, ends with ``key``, or contains
    ``token``, ``secret``, ``password``, ``passwd``, ``passcode``, ``passphrase``,
    ``signature`` or ``credential``. So ``Authorization``, ``Cookie``,
    ``X-Api-Key``, ``apiKey``, ``access_token``, ``client_secret``, ``sig``,
    ``X-Amz-Signature``,
    ``X-Session-Id`` and ``X-Passcode`` are secret; ``Passport``, ``Bypass``,
    ``X-Author`` and ``Keep-Alive`` are not.
    """
    for word in _WORD.split(name.lower()):
        if not word:
            continue
        if word in _SECRET_WORDS or word.endswith("key"):
            return True
        if any(fragment in word for fragment in _SECRET_FRAGMENTS):
            return True
    return False
