"""A whole firmware-config directory, loaded and checked in one pass.

An installer fixing files one error at a time wastes a store visit per error, so
nothing here stops at the first problem: every file is read, every model
validated, then the files are checked against each other, and each problem is
reported as ``FILE: FIELD: REASON``.

Layout of the directory::

    deployment.toml                      fleet-wide settings (broker, paths on the gateway)
    beacons/*.toml                       beacon firmware profiles
    stores/<store>/layout.toml           store layouts (zones, gateways, store beacons)
    systemd/nahfeld-gateway.service      the gateway's systemd unit
    bluez/main.conf                      BlueZ settings for a scanning-only gateway
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..layout import GatewaySpec, StoreLayout
from .acl import render_acl
from .deployment import Deployment
from .host import BluezConf, GatewayUnit, check_bluez_main_conf, check_systemd_unit
from .profiles import BeaconProfile

DEPLOYMENT = Path("deployment.toml")
BEACONS = Path("beacons")
STORES = Path("stores")
SYSTEMD_UNIT = Path("systemd") / "nahfeld-gateway.service"
BLUEZ_CONF = Path("bluez") / "main.conf"
BROKER_ACL = Path("mosquitto") / "nahfeld.acl"

#: the frame a beacon must broadcast to be recognised by each kind of layout identity
IDENTITY_FRAMES = {"ibeacon": "ibeacon", "eddystone_uid": "eddystone_uid"}

_M = TypeVar("_M", bound=BaseModel)
_TOML_WHERE = re.compile(
    r"^(?P<reason>.*?)\s*\(at (?P<where>line \d+, column \d+|end of document)\)$"
)


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong, with the file, the field (dotted path, or a line) and the reason."""

    file: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}"


@dataclass
class Bundle:
    """What could be loaded from the directory, and every problem found on the way."""

    root: Path
    deployment: Deployment | None = None
    profiles: dict[str, BeaconProfile] = field(default_factory=dict)
    stores: dict[str, StoreLayout] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def label(self, relative: Path) -> str:
        """How a file of the bundle is named in problems: as the user wrote the directory."""
        return str(self.root / relative)

    def summary(self) -> str:
        gateways = sum(len(layout.gateways) for layout in self.stores.values())
        counts = ", ".join(
            _plural(n, word)
            for n, word in (
                (len(self.stores), "store"),
                (gateways, "gateway"),
                (len(self.profiles), "beacon profile"),
            )
        )
        verdict = "OK" if self.ok else _plural(len(self.problems), "problem")
        return f"{self.root}: {counts}: {verdict}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _read_text(path: Path, label: str, problems: list[Problem]) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(label, "(file)", "missing"))
    except UnicodeDecodeError as exc:
        problems.append(Problem(label, "(file)", f"not UTF-8 text: {exc.reason}"))
    except OSError as exc:
        problems.append(Problem(label, "(file)", f"cannot read: {exc.strerror or exc}"))
    return None


def _read_toml(path: Path, label: str, problems: list[Problem]) -> dict[str, Any] | None:
    text = _read_text(path, label, problems)
    if text is None:
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_WHERE.match(str(exc))
        where, reason = (match["where"], match["reason"]) if match else ("(syntax)", str(exc))
        problems.append(Problem(label, where, f"not valid TOML: {reason}"))
        return None


def validation_problems(label: str, error: ValidationError) -> list[Problem]:
    """One problem per pydantic error, fields as dotted paths (``zones.0.radius_m``)."""
    return [
        Problem(label, ".".join(str(part) for part in item["loc"]) or "(top level)", item["msg"])
        for item in error.errors()
    ]


def _load_model(model: type[_M], path: Path, label: str, problems: list[Problem]) -> _M | None:
    raw = _read_toml(path, label, problems)
    if raw is None:
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems.extend(validation_problems(label, exc))
        return None


def load_bundle(root: Path) -> Bundle:
    """Read and check everything under ``root``; never raises for bad content."""
    bundle = Bundle(root)
    problems = bundle.problems
    if not root.is_dir():
        problems.append(Problem(str(root), "(directory)", "not a directory"))
        return bundle

    bundle.deployment = _load_model(
        Deployment, root / DEPLOYMENT, bundle.label(DEPLOYMENT), problems
    )

    broken_profiles: set[str] = set()  # file stems whose profile could not be loaded
    profile_files: dict[str, str] = {}
    for path in sorted((root / BEACONS).glob("*.toml")):
        label = bundle.label(path.relative_to(root))
        profile = _load_model(BeaconProfile, path, label, problems)
        if profile is None:
            broken_profiles.add(path.stem)
        elif profile.id in profile_files:
            problems.append(
                Problem(
                    label,
                    "id",
                    f"profile id {profile.id!r} is already used by {profile_files[profile.id]}",
                )
            )
        else:
            bundle.profiles[profile.id] = profile
            profile_files[profile.id] = label

    store_files: dict[str, str] = {}
    layout_paths = sorted((root / STORES).glob("*/layout.toml"))
    if not layout_paths:
        problems.append(
            Problem(
                bundle.label(STORES), "(directory)", "no store: expected stores/<store>/layout.toml"
            )
        )
    for path in layout_paths:
        label = bundle.label(path.relative_to(root))
        layout = _load_model(StoreLayout, path, label, problems)
        if layout is None:
            continue
        if layout.store in store_files:
            problems.append(
                Problem(
                    label,
                    "store",
                    f"store id {layout.store!r} is already used by {store_files[layout.store]}",
                )
            )
            continue
        bundle.stores[layout.store] = layout
        store_files[layout.store] = label
        problems.extend(_check_store(layout, label, bundle.profiles, broken_profiles))

    unit: GatewayUnit | None = None
    unit_text = _read_text(root / SYSTEMD_UNIT, bundle.label(SYSTEMD_UNIT), problems)
    if unit_text is not None:
        unit = check_systemd_unit(unit_text)
        problems.extend(Problem(bundle.label(SYSTEMD_UNIT), f, r) for f, r in unit.problems)

    bluez: BluezConf | None = None
    bluez_text = _read_text(root / BLUEZ_CONF, bundle.label(BLUEZ_CONF), problems)
    if bluez_text is not None:
        bluez = check_bluez_main_conf(bluez_text)
        problems.extend(Problem(bundle.label(BLUEZ_CONF), f, r) for f, r in bluez.problems)

    problems.extend(_check_host(bundle, unit, bluez))
    acl_text = _read_text(root / BROKER_ACL, bundle.label(BROKER_ACL), problems)
    if acl_text is not None and bundle.ok and acl_text != bundle_acl(bundle):
        problems.append(
            Problem(
                bundle.label(BROKER_ACL),
                "(whole file)",
                "does not grant exactly the declared gateways their topics: render it again "
                f"with `nahfeld firmware acl --dir {root} --out {root / BROKER_ACL}`",
            )
        )
    return bundle


def bundle_acl(bundle: Bundle) -> str:
    """The broker ACL for every gateway declared in the bundle's store layouts."""
    return render_acl(
        (layout.store, gateway.id)
        for layout in bundle.stores.values()
        for gateway in layout.gateways
    )


def _check_store(
    layout: StoreLayout,
    label: str,
    profiles: dict[str, BeaconProfile],
    broken_profiles: set[str],
) -> list[Problem]:
    """What a valid layout can still get wrong against the rest of the directory."""
    problems: list[Problem] = []
    watched = {zone.gateway for zone in layout.zones}
    for index, gateway in enumerate(layout.gateways):
        if gateway.id not in watched:
            problems.append(
                Problem(
                    label,
                    f"gateways.{index}.id",
                    f"gateway {gateway.id!r} watches no zone: `nahfeld gateway check-config` "
                    "would refuse its rendered config",
                )
            )
    for index, beacon in enumerate(layout.beacons):
        if beacon.profile is None or beacon.profile in broken_profiles:
            continue  # no profile named, or its file is broken and reported already
        where = f"beacons.{index}.profile"
        profile = profiles.get(beacon.profile)
        if profile is None:
            known = ", ".join(sorted(profiles)) or "none"
            problems.append(
                Problem(
                    label,
                    where,
                    f"beacon {beacon.id!r} names unknown profile {beacon.profile!r} "
                    f"(profiles in beacons/: {known})",
                )
            )
            continue
        identities = [kind for kind in IDENTITY_FRAMES if getattr(beacon, kind) is not None]
        for kind in identities:
            frame = IDENTITY_FRAMES[kind]
            if frame not in profile.frame_types():
                problems.append(
                    Problem(
                        label,
                        where,
                        f"beacon {beacon.id!r} is registered by its {kind} identity, but "
                        f"profile {profile.id!r} broadcasts no {frame} frame "
                        f"(it sends: {', '.join(f.type for f in profile.frames)})",
                    )
                )
    return problems


def _check_host(bundle: Bundle, unit: GatewayUnit | None, bluez: BluezConf | None) -> list[Problem]:
    """The host files against the layouts and the deployment they serve."""
    problems: list[Problem] = []
    passive = sorted(
        f"{layout.store}/{gateway.id}"
        for layout in bundle.stores.values()
        for gateway in layout.gateways
        if gateway.passive
    )
    if bluez is not None and passive and bluez.experimental is not True:
        problems.append(
            Problem(
                bundle.label(BLUEZ_CONF),
                "General.Experimental",
                f"must be true: {', '.join(passive)} scan passively, which needs BlueZ's "
                "experimental AdvertisementMonitor interface",
            )
        )
    deployment = bundle.deployment
    if unit is None or deployment is None:
        return problems
    # what gateway.toml says, as the unit's environment would have to spell it to agree
    rendered = {
        "NAHFELD_GATEWAY_DATA_DIR": ("gateway.data_dir", deployment.gateway.data_dir),
        "NAHFELD_GATEWAY_LAYOUT": ("gateway.layout", deployment.gateway.layout),
        "NAHFELD_GATEWAY_METRICS_PORT": (
            "gateway.metrics_port",
            str(deployment.gateway.metrics_port),
        ),
        "NAHFELD_GATEWAY_MQTT__HOST": ("broker.host", deployment.broker.host),
        "NAHFELD_GATEWAY_MQTT__PORT": ("broker.port", str(deployment.broker.port)),
    }
    for name, value in sorted(unit.environment.items()):
        key, expected = rendered.get(name.upper(), ("", value))
        if value.strip().rstrip("/") != expected.rstrip("/"):
            problems.append(
                Problem(
                    bundle.label(SYSTEMD_UNIT),
                    "Service.Environment",
                    f"{name}={value} overrides deployment.toml's {key} ({expected}): "
                    "the environment wins over gateway.toml",
                )
            )
    if unit.writable is not None:
        data_dir = PurePosixPath(deployment.gateway.data_dir)
        writable = [PurePosixPath(path) for path in unit.writable]
        if not any(data_dir == path or path in data_dir.parents for path in writable):
            problems.append(
                Problem(
                    bundle.label(DEPLOYMENT),
                    "gateway.data_dir",
                    f"{data_dir} is read-only for the service: the unit's ProtectSystem=strict "
                    f"leaves writable only {', '.join(map(str, writable)) or 'nothing'} "
                    "(StateDirectory=, ReadWritePaths=)",
                )
            )
    return problems


class GatewayLookupError(LookupError):
    """``--gateway`` names no gateway, or one in several stores without ``--store``."""


def find_gateway(
    bundle: Bundle, gateway_id: str, store_id: str | None = None
) -> tuple[StoreLayout, GatewaySpec]:
    """The store layout and the declared gateway an installer means by ``--gateway``."""
    if store_id is not None:
        layout = bundle.stores.get(store_id)
        if layout is None:
            stores = ", ".join(sorted(bundle.stores))
            raise GatewayLookupError(f"no store {store_id!r} in {bundle.root} (stores: {stores})")
        candidates = [layout]
    else:
        candidates = list(bundle.stores.values())
    found = [(layout, spec) for layout in candidates if (spec := layout.gateway(gateway_id))]
    if not found:
        known = sorted(f"{layout.store}/{g.id}" for layout in candidates for g in layout.gateways)
        raise GatewayLookupError(f"no gateway {gateway_id!r} (gateways: {', '.join(known)})")
    if len(found) > 1:
        stores = ", ".join(sorted(layout.store for layout, _ in found))
        raise GatewayLookupError(
            f"gateway {gateway_id!r} is in several stores ({stores}): give --store"
        )
    return found[0]
