"""Eddystone frames carried in service data of UUID 0xFEAA.

Layouts follow the Eddystone specification (all multi-byte values big-endian).
Every read is bounds-checked: the bytes come from any radio in the room.
"""

from __future__ import annotations

from .frames import EddystoneEid, EddystoneEtlm, EddystoneTlm, EddystoneUid, EddystoneUrl, Frame
from .problems import Malformed

EDDYSTONE_SERVICE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"

FRAME_UID = 0x00
FRAME_URL = 0x10
FRAME_TLM = 0x20
FRAME_EID = 0x30

TLM_PLAIN = 0x00
TLM_ENCRYPTED = 0x01

UID_MIN_LENGTH = 18  # type, tx, 10 namespace, 6 instance (the 2 RFU bytes are often omitted)
UID_MAX_LENGTH = 20
URL_MIN_LENGTH = 3  # type, tx, scheme
URL_MAX_LENGTH = 20  # the spec allows at most 17 encoded URL bytes
TLM_PLAIN_LENGTH = 14
TLM_ENCRYPTED_LENGTH = 18
EID_LENGTH = 10

TLM_TEMPERATURE_UNSUPPORTED = 0x8000

URL_SCHEMES = ("http://www.", "https://www.", "http://", "https://")
URL_EXPANSIONS = (
    ".com/",
    ".org/",
    ".edu/",
    ".net/",
    ".info/",
    ".biz/",
    ".gov/",
    ".com",
    ".org",
    ".edu",
    ".net",
    ".info",
    ".biz",
    ".gov",
)


def _int8(byte: int) -> int:
    return byte - 256 if byte > 127 else byte


def decode_eddystone(data: bytes) -> Frame | Malformed:
    """Decode one Eddystone service-data payload (the bytes after the 0xFEAA UUID)."""
    if not data:
        return Malformed("truncated_frame", "Eddystone service data is empty")
    frame_type = data[0]
    if frame_type == FRAME_EID:
        return _decode_eid(data)
    if frame_type == FRAME_UID:
        return _decode_uid(data)
    if frame_type == FRAME_URL:
        return _decode_url(data)
    if frame_type == FRAME_TLM:
        return _decode_tlm(data)
    return Malformed("unknown_frame_type", f"unknown Eddystone frame type 0x{frame_type:02x}")


def _decode_eid(data: bytes) -> Frame | Malformed:
    if len(data) != EID_LENGTH:
        return Malformed(
            "truncated_frame" if len(data) < EID_LENGTH else "bad_length",
            f"Eddystone-EID frame is {len(data)} bytes, expected {EID_LENGTH}",
        )
    return EddystoneEid(eid=data[2:10].hex(), tx_power=_int8(data[1]))


def _decode_uid(data: bytes) -> Frame | Malformed:
    if not UID_MIN_LENGTH <= len(data) <= UID_MAX_LENGTH:
        return Malformed(
            "truncated_frame" if len(data) < UID_MIN_LENGTH else "bad_length",
            f"Eddystone-UID frame is {len(data)} bytes, expected {UID_MIN_LENGTH}-{UID_MAX_LENGTH}",
        )
    return EddystoneUid(
        namespace=data[2:12].hex(), instance=data[12:18].hex(), tx_power=_int8(data[1])
    )


def _decode_url(data: bytes) -> Frame | Malformed:
    if not URL_MIN_LENGTH <= len(data) <= URL_MAX_LENGTH:
        return Malformed(
            "truncated_frame" if len(data) < URL_MIN_LENGTH else "bad_length",
            f"Eddystone-URL frame is {len(data)} bytes, expected {URL_MIN_LENGTH}-{URL_MAX_LENGTH}",
        )
    scheme = data[2]
    if scheme >= len(URL_SCHEMES):
        return Malformed("bad_url", f"unknown Eddystone-URL scheme prefix 0x{scheme:02x}")
    parts = [URL_SCHEMES[scheme]]
    for code in data[3:]:
        if code < len(URL_EXPANSIONS):
            parts.append(URL_EXPANSIONS[code])
        elif 0x21 <= code <= 0x7E:
            parts.append(chr(code))
        else:
            return Malformed("bad_url", f"reserved Eddystone-URL byte 0x{code:02x}")
    return EddystoneUrl(url="".join(parts), tx_power=_int8(data[1]))


def _decode_tlm(data: bytes) -> Frame | Malformed:
    if len(data) < 2:
        return Malformed("truncated_frame", "Eddystone-TLM frame has no version byte")
    version = data[1]
    if version == TLM_PLAIN:
        if len(data) != TLM_PLAIN_LENGTH:
            return Malformed(
                "truncated_frame" if len(data) < TLM_PLAIN_LENGTH else "bad_length",
                f"Eddystone-TLM frame is {len(data)} bytes, expected {TLM_PLAIN_LENGTH}",
            )
        raw_temp = int.from_bytes(data[4:6], "big")
        temperature = (
            None
            if raw_temp == TLM_TEMPERATURE_UNSUPPORTED
            else int.from_bytes(data[4:6], "big", signed=True) / 256.0
        )
        return EddystoneTlm(
            voltage_mv=int.from_bytes(data[2:4], "big"),
            temperature_c=temperature,
            adv_count=int.from_bytes(data[6:10], "big"),
            uptime_s=int.from_bytes(data[10:14], "big") / 10.0,
        )
    if version == TLM_ENCRYPTED:
        if len(data) != TLM_ENCRYPTED_LENGTH:
            return Malformed(
                "truncated_frame" if len(data) < TLM_ENCRYPTED_LENGTH else "bad_length",
                f"Eddystone-eTLM frame is {len(data)} bytes, expected {TLM_ENCRYPTED_LENGTH}",
            )
        return EddystoneEtlm(etlm=data[2:14].hex(), salt=data[14:16].hex(), mic=data[16:18].hex())
    return Malformed("unknown_frame_type", f"unknown Eddystone-TLM version 0x{version:02x}")
