"""Secrets the cloud hands out once and keeps only as hashes: API keys, gateway passwords.

API keys are 256-bit random tokens, so a single SHA-256 is as good as a slow
hash (nothing to brute-force); the public prefix finds the row and the digest
is compared in constant time. Gateway MQTT passwords are hashed in Mosquitto's
own ``$7$`` format (PBKDF2-SHA512, base64 salt and digest), so the broker's
password file can be rendered from the database without ever knowing them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_SCHEME = "nfk"
_PREFIX_BYTES = 6
_SECRET_BYTES = 32
MOSQUITTO_ITERATIONS = 101  # mosquitto_passwd's default; the password itself is 256 bits


@dataclass(frozen=True, slots=True)
class IssuedKey:
    token: str  # shown once
    prefix: str  # stored, shown in listings to tell keys apart
    secret_sha256: str


def issue_api_key() -> IssuedKey:
    prefix = f"{KEY_SCHEME}_{secrets.token_hex(_PREFIX_BYTES)}"
    token = f"{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    return IssuedKey(token=token, prefix=prefix, secret_sha256=sha256_hex(token))


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_prefix(token: str) -> str | None:
    """The prefix part of a presented token, or ``None`` if it cannot be one of ours."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) != 2 * _PREFIX_BYTES:
        return None
    return f"{parts[0]}_{parts[1]}"


def digest_matches(token: str, stored_sha256: str) -> bool:
    return hmac.compare_digest(sha256_hex(token), stored_sha256)


def new_gateway_password() -> str:
    return secrets.token_urlsafe(_SECRET_BYTES)


def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = 0) -> str:
    """``$7$<iterations>$<salt>$<digest>`` exactly as ``mosquitto_passwd`` writes it."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    rounds = iterations or MOSQUITTO_ITERATIONS
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds)
    return f"$7${rounds}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def mosquitto_verify(password: str, stored: str) -> bool:
    try:
        _, scheme, rounds, salt, _digest = stored.split("$")
        if scheme != "7":
            return False
        expected = mosquitto_hash(password, salt=base64.b64decode(salt), iterations=int(rounds))
    except ValueError:
        return False
    return hmac.compare_digest(expected, stored)
