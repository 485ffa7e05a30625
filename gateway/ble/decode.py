"""Advertisement → beacon frames, from raw AD bytes or from bleak's fields.

The AD structures themselves are parsed by Home Assistant's
``bluetooth-data-tools`` (bounds-checked, C-accelerated, cached); the beacon
formats on top are ours. Both entry points are cached on the payload: a fixed
beacon repeats byte-identical adverts, and an EID phone does too within one
rotation window, so the steady state is one dict lookup per advert.

Nothing here raises on untrusted input: every problem becomes a
:class:`Malformed` with a stable reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import NamedTuple

from bluetooth_data_tools import parse_advertisement_data_bytes

from .eddystone import EDDYSTONE_SERVICE_UUID, decode_eddystone
from .frames import Frame
from .manufacturer import decode_manufacturer
from .problems import Malformed

CACHE_SIZE = 4096


class Decoded(NamedTuple):
    """The frames found in one advert, and the first problem met, if any."""

    frames: tuple[Frame, ...]
    problem: Malformed | None


NOTHING = Decoded((), None)


def check_ad_structures(data: bytes) -> Malformed | None:
    """Report the first AD structure whose length runs past the end of the payload."""
    if not data:
        return Malformed("empty", "advertising data is empty")
    offset = 0
    total = len(data)
    while offset < total:
        length = data[offset]
        if length == 0:  # zero padding after the significant part
            offset += 1
            continue
        if offset + 1 + length > total:
            return Malformed(
                "truncated_ad",
                f"AD structure at byte {offset} declares {length} bytes "
                f"but only {total - offset - 1} remain",
            )
        offset += 1 + length
    return None


@lru_cache(maxsize=CACHE_SIZE)
def decode_ad(data: bytes) -> Decoded:
    """Decode raw advertising data (AD structures as in the PDU payload)."""
    structural = check_ad_structures(data)
    _, _, service_data, manufacturer_data, _ = parse_advertisement_data_bytes(data)
    decoded = decode_fields(manufacturer_data, service_data)
    if structural is not None and decoded.problem is None:
        return Decoded(decoded.frames, structural)
    return decoded


def decode_fields(
    manufacturer_data: Mapping[int, bytes], service_data: Mapping[str, bytes]
) -> Decoded:
    """Decode bleak's ``AdvertisementData.manufacturer_data`` and ``service_data``."""
    if not manufacturer_data and not service_data:
        return NOTHING
    frames: list[Frame] = []
    problem: Malformed | None = None
    for company_id, payload in manufacturer_data.items():
        found = _manufacturer_frame(company_id, payload)
        if isinstance(found, Malformed):
            problem = problem or found
        elif found is not None:
            frames.append(found)
    eddystone = service_data.get(EDDYSTONE_SERVICE_UUID)
    if eddystone is not None:
        found_eddystone = _eddystone_frame(eddystone)
        if isinstance(found_eddystone, Malformed):
            problem = problem or found_eddystone
        else:
            frames.append(found_eddystone)
    if not frames and problem is None:
        return NOTHING
    return Decoded(tuple(frames), problem)


@lru_cache(maxsize=CACHE_SIZE)
def _manufacturer_frame(company_id: int, payload: bytes) -> Frame | Malformed | None:
    return decode_manufacturer(company_id, payload)


@lru_cache(maxsize=CACHE_SIZE)
def _eddystone_frame(payload: bytes) -> Frame | Malformed:
    return decode_eddystone(payload)
