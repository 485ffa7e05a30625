"""Typed beacon frames: what a decoded advertisement can contain.

Frames are small frozen value objects. They are produced once per distinct
payload (decoding is cached), so they must never be mutated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class IBeacon:
    """Apple iBeacon: proximity UUID, major, minor and the measured power at 1 m."""

    type: ClassVar[str] = "ibeacon"
    uuid: str
    major: int
    minor: int
    tx_power: int


@dataclass(frozen=True, slots=True)
class AltBeacon:
    """AltBeacon (Radius Networks' open format); ``tx_power`` is the reference RSSI at 1 m."""

    type: ClassVar[str] = "altbeacon"
    id1: str
    id2: int
    id3: int
    tx_power: int
    mfg_id: int


@dataclass(frozen=True, slots=True)
class EddystoneUid:
    """Eddystone-UID: 10-byte namespace and 6-byte instance; ``tx_power`` is at 0 m."""

    type: ClassVar[str] = "eddystone_uid"
    namespace: str
    instance: str
    tx_power: int


@dataclass(frozen=True, slots=True)
class EddystoneUrl:
    """Eddystone-URL with the compressed scheme and expansion codes expanded."""

    type: ClassVar[str] = "eddystone_url"
    url: str
    tx_power: int


@dataclass(frozen=True, slots=True)
class EddystoneTlm:
    """Unencrypted Eddystone-TLM telemetry; ``temperature_c`` is None when unsupported (0x8000)."""

    type: ClassVar[str] = "eddystone_tlm"
    voltage_mv: int
    temperature_c: float | None
    adv_count: int
    uptime_s: float


@dataclass(frozen=True, slots=True)
class EddystoneEtlm:
    """Encrypted Eddystone-TLM: recognised, but only the owner of the key can read it."""

    type: ClassVar[str] = "eddystone_etlm"
    etlm: str
    salt: str
    mic: str


@dataclass(frozen=True, slots=True)
class EddystoneEid:
    """Eddystone-EID: an 8-byte ephemeral identifier; ``tx_power`` is at 0 m."""

    type: ClassVar[str] = "eddystone_eid"
    eid: str
    tx_power: int


Frame = (
    IBeacon | AltBeacon | EddystoneUid | EddystoneUrl | EddystoneTlm | EddystoneEtlm | EddystoneEid
)

#: Eddystone ranging data is the power at 0 m; free-space loss to 1 m is 41 dB.
EDDYSTONE_0M_TO_1M_DB = 41


def frame_to_dict(frame: Frame) -> dict[str, Any]:
    """JSON-ready form of a frame, with its ``type`` first."""
    return {"type": frame.type, **asdict(frame)}


def measured_power_at_1m(frame: Frame) -> int | None:
    """The transmitter's own calibration (RSSI at 1 m), where the frame carries one."""
    if isinstance(frame, IBeacon | AltBeacon):
        return frame.tx_power
    if isinstance(frame, EddystoneUid | EddystoneUrl | EddystoneEid):
        return frame.tx_power - EDDYSTONE_0M_TO_1M_DB
    return None
