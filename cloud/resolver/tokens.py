"""Per-store pseudonymous tokens: what a gateway knows a resolved phone by.

The token is the install id encrypted deterministically (AES-SIV) with the
store as associated data: stable within a store, so caps and cool-downs work,
different in every store and meaningless without the cloud's secret, so
neither a gateway nor the broker can link a person across stores or back to
the install. Only the cloud can turn an event's token back into the install
(:func:`install_of_token`) — no lookup table of tokens exists to leak.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_SECRET_BYTES = 16


@lru_cache(maxsize=8)
def _cipher(secret: bytes) -> AESSIV:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the token secret must be at least {MIN_SECRET_BYTES} bytes")
    key = HKDF(hashes.SHA256(), length=64, salt=None, info=b"nahfeld store token").derive(secret)
    return AESSIV(key)


def store_token(secret: bytes, store: str, install: str) -> str:
    """The token of ``install`` in ``store``: URL-safe base64, 107 characters at most."""
    sealed = _cipher(secret).encrypt(install.encode(), [store.encode()])
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()


def install_of_token(secret: bytes, store: str, token: str) -> str | None:
    """The install a token of ``store`` stands for; ``None`` for anything not minted by
    this secret for this store (a token replayed from another store included)."""
    try:
        sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return _cipher(secret).decrypt(sealed, [store.encode()]).decode()
    except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
        return None
