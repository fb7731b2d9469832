"""Encrypting secret field values at rest, with Fernet.

The key comes from ``EVENTBLOCKS_ENCRYPTION_KEY`` (a Fernet key: 32 url-safe base64
bytes), else from the file ``encryption.key`` in the eventblocks home, which is
created with permissions 0600 the first time a secret is saved.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from blocks._errors import BlockDecryptionError
from emitters._sdk import ENCRYPTION_KEY_VARIABLE, encryption_key, home

__all__ = ["SecretCipher", "key_file"]

_ENV = ENCRYPTION_KEY_VARIABLE


def key_file() -> Path:
    """Return the path of the key file in the eventblocks home."""
    return home() / "encryption.key"


def _fernet(key: bytes, source: str) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        raise BlockDecryptionError(
            f"The encryption key in {source} is not a valid Fernet key (32 url-safe "
            "base64-encoded bytes); make one with "
            "'python -c \"from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())\"'."
        ) from None


def _load_key(create: bool) -> Fernet | None:
    configured = encryption_key()
    if configured:
        return _fernet(configured.encode(), _ENV)
    path = key_file()
    try:
        return _fernet(path.read_bytes().strip(), str(path))
    except FileNotFoundError:
        if not create:
            return None
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # Write the whole key to a private temporary file, then link it into place:
    # of two processes creating the key at once, one wins, and the other reads a
    # complete key file, never an empty one.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return _fernet(path.read_bytes().strip(), str(path))
    finally:
        temporary.unlink(missing_ok=True)
    return _fernet(key, str(path))


class SecretCipher:
    """Encrypts and decrypts secret values; the key is read on first use."""

    def __init__(self) -> None:
        self._fernet: Fernet | None = None

    def encrypt(self, plaintext: bytes) -> str:
        """Return the token for ``plaintext``, creating the key file if needed."""
        if self._fernet is None:
            self._fernet = _load_key(create=True)
        assert self._fernet is not None
        return self._fernet.encrypt(plaintext).decode("ascii")

    def decrypt(self, token: str, *, document: str, field: str) -> bytes:
        """Return the plaintext of ``token``, the secret ``field`` of ``document``.

        Raises:
            BlockDecryptionError: There is no key, or it is not the key the value
                was saved with. The message names the document and the field.
        """
        if self._fernet is None:
            self._fernet = _load_key(create=False)
        if self._fernet is None:
            raise BlockDecryptionError(
                f"Cannot decrypt secret field {field!r} of document {document}: no "
                f"encryption key ({_ENV} is not set and {key_file()} does not exist). "
                "Use the key the document was saved with."
            )
        try:
            return self._fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, ValueError):
            raise BlockDecryptionError(
                f"Cannot decrypt secret field {field!r} of document {document}: the "
                f"encryption key ({_ENV} or {key_file()}) is not the one it was "
                "saved with."
            ) from None
