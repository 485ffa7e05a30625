"""The store layout: zones, the gateways that watch them, registered store beacons.

Validated with pydantic so a wrong file is refused with the field and the
reason; then turned into the plain frozen specs the pure core works with.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Self
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .fields import IanaTimezone, Identifier, duplicates
from .presence.zones import TrackerParams, ZoneSpec

_DEFAULT_PARAMS = TrackerParams()
HexString = Annotated[str, Field(pattern=r"^[0-9a-fA-F]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Strict):
    """Store-wide radio model and tracker timing; zones may override the radio model."""

    # Herald phone-to-phone recordings, 0.1-3 m (bench/calibrate_presence.py): n from the
    # least-squares fit; the RSSI at 1 m that best separates <= 1 m from beyond on held-out
    # recordings (the plain fit, -57, puts zone edges ~3 dB too far out)
    measured_power_dbm: Annotated[float, Field(ge=-120, le=20)] = -54.0
    path_loss_exponent: Annotated[float, Field(gt=0.5, le=6.0)] = 1.0
    exit_margin_m: Annotated[float, Field(ge=0.0, le=50.0)] = 1.0
    trust_advertised_power: bool = False
    smoothing_window_s: Annotated[float, Field(gt=0, le=120)] = _DEFAULT_PARAMS.smoothing_window_s
    min_samples: Annotated[int, Field(ge=1, le=32)] = _DEFAULT_PARAMS.min_samples
    enter_after_s: Annotated[float, Field(ge=0, le=600)] = _DEFAULT_PARAMS.enter_after_s
    exit_after_s: Annotated[float, Field(ge=0, le=600)] = _DEFAULT_PARAMS.exit_after_s
    exit_timeout_s: Annotated[float, Field(gt=0, le=3600)] = _DEFAULT_PARAMS.exit_timeout_s
    dwell_thresholds_s: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: list(_DEFAULT_PARAMS.dwell_thresholds_s)
    )

    @field_validator("dwell_thresholds_s")
    @classmethod
    def _ascending(cls, value: list[float]) -> list[float]:
        if value != sorted(set(value)):
            raise ValueError("dwell thresholds must be distinct and in ascending order")
        return value


class GatewaySpec(_Strict):
    """One gateway box of the store: which adapter it scans with, and how.

    Declared in the layout so a zone can only name a gateway that exists, and so
    ``nahfeld firmware render`` can write each box's ``gateway.toml`` from one place.
    """

    id: Identifier
    adapter: Annotated[str, Field(pattern=r"^hci[0-9]+$")] = "hci0"
    # passive scanning needs BlueZ >= 5.56 run with --experimental (bluez/main.conf)
    passive: bool = False
    # same bounds as ScannerSettings.silence_timeout_s, which this value is rendered into
    silence_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    description: str = ""


class Zone(_Strict):
    id: Identifier
    gateway: Identifier
    radius_m: Annotated[float, Field(gt=0, le=100)]
    exit_radius_m: Annotated[float, Field(gt=0, le=150)] | None = None
    measured_power_dbm: Annotated[float, Field(ge=-120, le=20)] | None = None
    path_loss_exponent: Annotated[float, Field(gt=0.5, le=6.0)] | None = None

    @model_validator(mode="after")
    def _exit_beyond_enter(self) -> Self:
        if self.exit_radius_m is not None and self.exit_radius_m < self.radius_m:
            raise ValueError(
                f"exit_radius_m ({self.exit_radius_m}) must not be smaller than radius_m "
                f"({self.radius_m}): the exit radius is the hysteresis margin"
            )
        return self


class IBeaconId(_Strict):
    uuid: UUID
    major: Annotated[int, Field(ge=0, le=0xFFFF)]
    minor: Annotated[int, Field(ge=0, le=0xFFFF)]


class EddystoneUidId(_Strict):
    namespace: Annotated[HexString, Field(min_length=20, max_length=20)]
    instance: Annotated[HexString, Field(min_length=12, max_length=12)]


class StoreBeacon(_Strict):
    """A fixed beacon of the store (registered, so it is recognised rather than dropped)."""

    id: Identifier
    zone: Identifier | None = None
    ibeacon: IBeaconId | None = None
    eddystone_uid: EddystoneUidId | None = None
    #: the firmware profile (firmware-config/beacons/<id>.toml) the beacon is flashed with;
    #: checked by ``nahfeld firmware validate``, not at run time
    profile: Identifier | None = None

    @model_validator(mode="after")
    def _one_identity(self) -> Self:
        if self.ibeacon is None and self.eddystone_uid is None:
            raise ValueError("a store beacon needs an 'ibeacon' or an 'eddystone_uid' identity")
        return self


class StoreLayout(_Strict):
    store: Identifier
    timezone: IanaTimezone
    defaults: Defaults = Field(default_factory=Defaults)
    # before `zones`: the zone check below reads the gateways already validated
    gateways: Annotated[list[GatewaySpec], Field(min_length=1)]
    zones: Annotated[list[Zone], Field(min_length=1)]
    beacons: list[StoreBeacon] = Field(default_factory=list)

    @field_validator("gateways")
    @classmethod
    def _unique_gateways(cls, value: list[GatewaySpec]) -> list[GatewaySpec]:
        repeated = duplicates(g.id for g in value)
        if repeated:
            raise ValueError(f"duplicate gateway id(s): {', '.join(repeated)}")
        return value

    @field_validator("zones")
    @classmethod
    def _zones_name_declared_gateways(cls, value: list[Zone], info: ValidationInfo) -> list[Zone]:
        gateways: list[GatewaySpec] | None = info.data.get("gateways")
        if gateways is None:  # the gateways were wrong themselves: reported there
            return value
        declared = {g.id for g in gateways}
        unknown = [
            f"zone {z.id!r} names unknown gateway {z.gateway!r}"
            for z in value
            if z.gateway not in declared
        ]
        if unknown:
            raise ValueError(
                f"{'; '.join(unknown)} (declared gateways: {', '.join(sorted(declared))})"
            )
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        for kind, ids in (
            ("zone", [z.id for z in self.zones]),
            ("beacon", [b.id for b in self.beacons]),
        ):
            repeated = duplicates(ids)
            if repeated:
                raise ValueError(f"duplicate {kind} id(s): {', '.join(repeated)}")
        zone_ids = {z.id for z in self.zones}
        for beacon in self.beacons:
            if beacon.zone is not None and beacon.zone not in zone_ids:
                raise ValueError(f"beacon {beacon.id!r} names unknown zone {beacon.zone!r}")
        return self

    def zone_specs(self) -> list[ZoneSpec]:
        d = self.defaults
        return [
            ZoneSpec(
                id=z.id,
                gateway=z.gateway,
                enter_radius_m=z.radius_m,
                exit_radius_m=z.exit_radius_m
                if z.exit_radius_m is not None
                else z.radius_m + d.exit_margin_m,
                measured_power_dbm=z.measured_power_dbm
                if z.measured_power_dbm is not None
                else d.measured_power_dbm,
                path_loss_exponent=z.path_loss_exponent
                if z.path_loss_exponent is not None
                else d.path_loss_exponent,
                trust_advertised_power=d.trust_advertised_power,
            )
            for z in self.zones
        ]

    def gateway(self, gateway_id: str) -> GatewaySpec | None:
        """The declared gateway with this id, if any."""
        return next((g for g in self.gateways if g.id == gateway_id), None)

    def tracker_params(self) -> TrackerParams:
        d = self.defaults
        return TrackerParams(
            smoothing_window_s=d.smoothing_window_s,
            min_samples=d.min_samples,
            enter_after_s=d.enter_after_s,
            exit_after_s=d.exit_after_s,
            exit_timeout_s=d.exit_timeout_s,
            dwell_thresholds_s=tuple(d.dwell_thresholds_s),
        )


class LayoutError(Exception):
    """A layout file that cannot be used; the message names the file, field and reason."""


def format_validation_error(source: str, error: ValidationError) -> str:
    lines = [f"{source}: {error.error_count()} problem(s)"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def parse_layout(text: str, source: str = "<layout>") -> StoreLayout:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LayoutError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return StoreLayout.model_validate(raw)
    except ValidationError as exc:
        raise LayoutError(format_validation_error(source, exc)) from exc


def load_layout(path: Path) -> StoreLayout:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LayoutError(f"{path}: cannot read layout: {exc.strerror or exc}") from exc
    return parse_layout(text, str(path))
