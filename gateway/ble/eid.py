"""Eddystone-EID: ephemeral identifiers, exactly as the Eddystone-EID spec computes them.

    temporary key = AES-128(identity key, 0x00*11 | 0xFF | 0x00 0x00 | counter[31:16])
    EID           = AES-128(temporary key, 0x00*11 | K | counter with its K low bits cleared)[:8]

Nahfeld's beacon time counter is Unix time in seconds (mod 2^32), so phones,
gateways and the resolver agree on it without a registration handshake.

:class:`EidTable` is the resolver's side: EIDs of known identities
precomputed per rotation window (with ±``drift_windows`` for clock drift), so
a lookup is one dict access. The cloud resolver and offline replay share it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

IDENTITY_KEY_LENGTH = 16
EID_LENGTH = 8
MAX_EXPONENT = 15
COUNTER_MODULUS = 1 << 32
_TEMPORARY_KEY_SALT = b"\x00" * 11 + b"\xff" + b"\x00\x00"


def _aes128_block(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _validate(identity_key: bytes, exponent: int, counter: int) -> None:
    if len(identity_key) != IDENTITY_KEY_LENGTH:
        raise ValueError(
            f"identity key must be {IDENTITY_KEY_LENGTH} bytes, got {len(identity_key)}"
        )
    if not 0 <= exponent <= MAX_EXPONENT:
        raise ValueError(f"rotation exponent K must be 0-{MAX_EXPONENT}, got {exponent}")
    if not 0 <= counter < COUNTER_MODULUS:
        raise ValueError(f"beacon time counter must be a 32-bit unsigned value, got {counter}")


def derive_temporary_key(identity_key: bytes, counter: int) -> bytes:
    """The temporary key for ``counter``: the same for all 65,536 s of a counter's top half."""
    return _aes128_block(identity_key, _TEMPORARY_KEY_SALT + (counter >> 16).to_bytes(2, "big"))


@lru_cache(maxsize=1024)
def temporary_key(identity_key: bytes, counter: int) -> bytes:
    """:func:`derive_temporary_key`, cached: a phone or gateway asks for few identities."""
    return derive_temporary_key(identity_key, counter)


def eid_from_temporary_key(temporary: bytes, exponent: int, counter: int) -> bytes:
    """The EID's second AES step alone, for callers that keep temporary keys themselves."""
    quantised = (counter >> exponent) << exponent
    block = b"\x00" * 11 + bytes((exponent,)) + quantised.to_bytes(4, "big")
    return _aes128_block(temporary, block)[:EID_LENGTH]


def compute_eid(identity_key: bytes, exponent: int, counter: int) -> bytes:
    """The 8-byte EID a beacon with this identity key and exponent sends at ``counter``."""
    _validate(identity_key, exponent, counter)
    return eid_from_temporary_key(
        temporary_key(identity_key, counter & 0xFFFF0000), exponent, counter
    )


def beacon_counter(unix_seconds: float) -> int:
    """Nahfeld's beacon time counter for a Unix timestamp."""
    return int(unix_seconds) % COUNTER_MODULUS


def window_index(exponent: int, unix_seconds: float) -> int:
    """Index of the rotation window containing ``unix_seconds``."""
    return int(unix_seconds) >> exponent


def eid_at(identity_key: bytes, exponent: int, unix_seconds: float) -> bytes:
    """The EID an identity advertises at a Unix time."""
    return compute_eid(identity_key, exponent, beacon_counter(unix_seconds))


@dataclass(frozen=True, slots=True)
class EidIdentity:
    """An opted-in app install as the resolver knows it: a pseudonymous token and its key."""

    token: str
    identity_key: bytes
    exponent: int

    def __post_init__(self) -> None:
        _validate(self.identity_key, self.exponent, 0)


@dataclass(frozen=True, slots=True)
class EidMatch:
    """A resolved EID: whose it is and until when that EID is valid (Unix seconds)."""

    token: str
    valid_until: float


class EidTable:
    """EID → identity for the windows around a moving time, recomputed only when a window turns."""

    __slots__ = ("_by_exponent", "_drift", "_entries", "_windows")

    def __init__(self, identities: Iterable[EidIdentity], drift_windows: int = 1) -> None:
        self._drift = drift_windows
        self._by_exponent: dict[int, list[EidIdentity]] = {}
        for identity in identities:
            self._by_exponent.setdefault(identity.exponent, []).append(identity)
        self._windows: dict[int, int] = {}
        self._entries: dict[str, EidMatch] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def refresh(self, unix_seconds: float) -> None:
        """Make the table current for ``unix_seconds``; cheap when no window has turned."""
        for exponent, identities in self._by_exponent.items():
            current = window_index(exponent, unix_seconds)
            if self._windows.get(exponent) == current:
                continue
            self._windows[exponent] = current
            self._rebuild(exponent, identities, current)

    def _rebuild(self, exponent: int, identities: list[EidIdentity], current: int) -> None:
        tokens = {identity.token for identity in identities}
        stale = [key for key, match in self._entries.items() if match.token in tokens]
        for key in stale:
            del self._entries[key]
        size = 1 << exponent
        for window in range(current - self._drift, current + self._drift + 1):
            if window < 0:
                continue
            start = window * size
            # an EID stays good in caches while a drifting clock may still send it
            valid_until = float(start + size * (1 + self._drift))
            for identity in identities:
                eid = compute_eid(identity.identity_key, exponent, start % COUNTER_MODULUS).hex()
                self._entries[eid] = EidMatch(identity.token, valid_until)

    def lookup(self, eid: str, unix_seconds: float) -> EidMatch | None:
        """Resolve an EID (lowercase hex) seen at ``unix_seconds``; ``None`` when unknown."""
        self.refresh(unix_seconds)
        return self._entries.get(eid)
