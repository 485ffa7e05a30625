"""Beacon firmware profiles: what a store beacon is flashed to broadcast.

One file per profile in ``firmware-config/beacons/``. A store layout's beacon
names its profile, so ``nahfeld firmware validate`` can check that the beacon
really sends the frame the gateway is told to recognise it by.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..fields import Identifier, duplicates

FrameType = Literal[
    "ibeacon",
    "altbeacon",
    "eddystone_uid",
    "eddystone_url",
    "eddystone_tlm",
    "eddystone_eid",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FrameSpec(_Strict):
    """One frame the beacon broadcasts, on its own advertising schedule."""

    type: FrameType
    # Legacy BLE advertising interval limits: 0x0020..0x4000 units of 0.625 ms, i.e. 20 ms to
    # 10.24 s (Nordic S140 SoftDevice API, BLE_GAP_ADV_INTERVAL_MIN / BLE_GAP_ADV_INTERVAL_MAX).
    interval_ms: Annotated[float, Field(ge=20, le=10240)]
    # radiated (conducted + antenna gain) power; beacon chips span about -40 to +20 dBm
    tx_power_dbm: Annotated[float, Field(ge=-40, le=20)]
    # Eddystone-EID: a new ephemeral id every 2^K seconds, K = 0..15 as in the specification
    eid_rotation_exponent: Annotated[int, Field(ge=0, le=15)] | None = None

    @model_validator(mode="after")
    def _exponent_only_for_eid(self) -> Self:
        if self.eid_rotation_exponent is not None and self.type != "eddystone_eid":
            raise ValueError(
                f"eid_rotation_exponent only applies to eddystone_eid frames, not {self.type}"
            )
        return self


class BeaconProfile(_Strict):
    """A beacon model and the firmware settings store beacons of this kind are flashed with."""

    id: Identifier
    vendor: Annotated[str, Field(min_length=1)]
    model: Annotated[str, Field(min_length=1)]
    frames: Annotated[list[FrameSpec], Field(min_length=1)]
    # the RSSI at 1 m the firmware puts in its iBeacon/AltBeacon/Eddystone frames
    measured_power_1m_dbm: Annotated[float, Field(ge=-100, le=0)]
    battery_mah: Annotated[int, Field(gt=0)] | None = None
    notes: str = ""

    @field_validator("frames")
    @classmethod
    def _one_frame_per_type(cls, value: list[FrameSpec]) -> list[FrameSpec]:
        repeated = duplicates(frame.type for frame in value)
        if repeated:
            raise ValueError(f"each frame type once per profile; repeated: {', '.join(repeated)}")
        return value

    def frame_types(self) -> frozenset[str]:
        return frozenset(frame.type for frame in self.frames)
