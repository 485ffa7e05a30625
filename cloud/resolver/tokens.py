"""Per-store pseudonymous tokens: what a gateway knows a resolved phone by.

A keyed hash of (store, install): stable within a store, so caps and
cool-downs work, but different in every store and meaningless without the
cloud's secret, so neither a gateway nor the broker can link a person across
stores or back to the install id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

TOKEN_BYTES = 15  # 120 bits: no collisions among billions of (store, install) pairs


def store_token(secret: bytes, store: str, install: str) -> str:
    """The token of ``install`` in ``store``: 24 characters of base32, lowercase."""
    if len(secret) < 16:
        raise ValueError("the token secret must be at least 16 bytes")
    digest = hmac.new(secret, f"{store}\x00{install}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:TOKEN_BYTES]).decode().lower()
