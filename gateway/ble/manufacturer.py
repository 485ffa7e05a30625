"""Beacon frames carried in manufacturer-specific data (iBeacon, AltBeacon).

``payload`` is what bleak reports: the bytes after the 16-bit company id.
"""

from __future__ import annotations

from uuid import UUID

from .frames import AltBeacon, Frame, IBeacon
from .problems import Malformed

APPLE_COMPANY_ID = 0x004C
IBEACON_PREFIX = b"\x02\x15"
IBEACON_LENGTH = 23  # prefix 2, uuid 16, major 2, minor 2, measured power 1
ALTBEACON_PREFIX = b"\xbe\xac"
ALTBEACON_LENGTH = 24  # code 2, id 20, reference rssi 1, manufacturer reserved 1


def _int8(byte: int) -> int:
    return byte - 256 if byte > 127 else byte


def decode_manufacturer(company_id: int, payload: bytes) -> Frame | Malformed | None:
    """Decode a beacon frame, or ``None`` when the payload is no beacon format we know."""
    if company_id == APPLE_COMPANY_ID and payload[:2] == IBEACON_PREFIX:
        if len(payload) != IBEACON_LENGTH:
            return Malformed(
                "truncated_frame" if len(payload) < IBEACON_LENGTH else "bad_length",
                f"iBeacon payload is {len(payload)} bytes, expected {IBEACON_LENGTH}",
            )
        return IBeacon(
            uuid=str(UUID(bytes=payload[2:18])),
            major=int.from_bytes(payload[18:20], "big"),
            minor=int.from_bytes(payload[20:22], "big"),
            tx_power=_int8(payload[22]),
        )
    if payload[:2] == ALTBEACON_PREFIX:
        if len(payload) != ALTBEACON_LENGTH:
            return Malformed(
                "truncated_frame" if len(payload) < ALTBEACON_LENGTH else "bad_length",
                f"AltBeacon payload is {len(payload)} bytes, expected {ALTBEACON_LENGTH}",
            )
        return AltBeacon(
            id1=str(UUID(bytes=payload[2:18])),
            id2=int.from_bytes(payload[18:20], "big"),
            id3=int.from_bytes(payload[20:22], "big"),
            tx_power=_int8(payload[22]),
            mfg_id=company_id,
        )
    return None
