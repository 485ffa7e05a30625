"""A deterministic simulated store: phones walking between zones, store beacons, noise.

Used for the sample capture, the demo and the benchmarks, never by the
daemon's real path. Gateways stand on a line ``GATEWAY_SPACING_M`` apart; a
phone walks at walking pace to each zone of its route, lingers, and leaves.
Store beacons send their iBeacon frame and, every ``tlm_every``-th advert, their
Eddystone-TLM telemetry from the same address (the layout's ``*-ibeacon-tlm``
profiles).
RSSI follows the same log-distance model the tracker inverts, plus Gaussian
noise and occasional body shadowing, so the tracker has real work to do.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..ble.eid import EidIdentity, eid_at, window_index
from ..layout import StoreLayout

GATEWAY_SPACING_M = 12.0
WALK_SPEED_M_S = 1.0
HEARING_RANGE_M = 25.0
OUTSIDE_X_M = -30.0
NOISE_DB = 3.0
SHADOW_PROBABILITY = 0.05
SHADOW_DB = 12.0
APPLE = 0x004C
EDDYSTONE_UUID16_LE = b"\xaa\xfe"
FLAGS = bytes.fromhex("020106")
#: store beacons' telemetry: the first beacon's battery, the next three a little lower each
BEACON_BATTERY_MV = 3000
BEACON_BATTERY_STEP_MV = 250
BEACON_TEMPERATURE_C = 21.5
BEACON_UPTIME_S = 86_400.0 * 40  # installed some weeks ago


def ad_structure(ad_type: int, payload: bytes) -> bytes:
    return bytes((len(payload) + 1, ad_type)) + payload


def eid_advert(eid: bytes, tx_power_0m: int = -20) -> bytes:
    """Raw AD bytes of an Eddystone-EID frame as a phone app sends it."""
    service_data = EDDYSTONE_UUID16_LE + bytes((0x30, tx_power_0m & 0xFF)) + eid
    return FLAGS + ad_structure(0x03, EDDYSTONE_UUID16_LE) + ad_structure(0x16, service_data)


def ibeacon_advert(uuid: bytes, major: int, minor: int, measured_power: int = -59) -> bytes:
    payload = (
        APPLE.to_bytes(2, "little")
        + b"\x02\x15"
        + uuid
        + major.to_bytes(2, "big")
        + minor.to_bytes(2, "big")
        + bytes((measured_power & 0xFF,))
    )
    return FLAGS + ad_structure(0xFF, payload)


def tlm_advert(voltage_mv: int, temperature_c: float, adv_count: int, uptime_s: float) -> bytes:
    temp = round(temperature_c * 256) & 0xFFFF
    frame = (
        b"\x20\x00"
        + voltage_mv.to_bytes(2, "big")
        + temp.to_bytes(2, "big")
        + adv_count.to_bytes(4, "big")
        + int(uptime_s * 10).to_bytes(4, "big")
    )
    return (
        FLAGS
        + ad_structure(0x03, EDDYSTONE_UUID16_LE)
        + ad_structure(0x16, EDDYSTONE_UUID16_LE + frame)
    )


@dataclass(slots=True)
class Visit:
    zone: str
    arrive: float
    leave: float


@dataclass(slots=True)
class SimPhone:
    """One phone: opted-in (has an identity), a stranger EID app, or anonymous."""

    name: str
    identity: EidIdentity | None
    payload: bytes
    route: list[tuple[float, float, float]]  # (t, x, y) waypoints
    visits: list[Visit] = field(default_factory=list)
    address: str = ""


@dataclass(slots=True)
class SimRecord:
    ts: float
    gateway: str
    rssi: int
    ad: bytes
    address: str

    def to_dict(self) -> dict[str, object]:
        return {
            "ts": round(self.ts, 3),
            "gateway": self.gateway,
            "rssi": self.rssi,
            "ad": self.ad.hex(),
            "address": self.address,
        }


class StoreSimulation:
    """Builds phones and their routes through ``layout``'s zones, then yields what gateways hear."""

    def __init__(
        self,
        layout: StoreLayout,
        identities: list[EidIdentity],
        *,
        start: float,
        duration_s: float,
        anonymous_phones: int = 0,
        stranger_eid_phones: int = 0,
        beacon_interval_s: float = 1.0,
        phone_interval_s: float = 1.0,
        tlm_every: int = 10,
        seed: int = 7,
    ) -> None:
        self.layout = layout
        self.tlm_every = tlm_every
        self.start = start
        self.duration_s = duration_s
        self.phone_interval_s = phone_interval_s
        self.beacon_interval_s = beacon_interval_s
        self.rng = random.Random(seed)
        gateways = sorted({zone.gateway for zone in layout.zones})
        self.gateway_x = {gw: i * GATEWAY_SPACING_M for i, gw in enumerate(gateways)}
        self.zone_gateway = {zone.id: zone.gateway for zone in layout.zones}
        self.zone_radius = {zone.id: zone.radius_m for zone in layout.zones}
        self.power = layout.defaults.measured_power_dbm
        self.exponent = layout.defaults.path_loss_exponent
        self.phones: list[SimPhone] = []
        for identity in identities:
            self.phones.append(self._phone(identity.token, identity, b""))
        for n in range(stranger_eid_phones):
            key = self.rng.randbytes(16)
            self.phones.append(
                self._phone(f"stranger-{n}", EidIdentity(f"stranger-{n}", key, 8), b"")
            )
        for n in range(anonymous_phones):
            company = self.rng.choice((APPLE, 0x0075, 0x0006, 0x00E0, self.rng.randrange(0xFFFF)))
            payload = FLAGS + ad_structure(
                0xFF, company.to_bytes(2, "little") + self.rng.randbytes(self.rng.randrange(4, 24))
            )
            self.phones.append(self._phone(f"anon-{n}", None, payload))

    def _address(self) -> str:
        return ":".join(f"{b:02X}" for b in self.rng.randbytes(6))

    def _phone(self, name: str, identity: EidIdentity | None, payload: bytes) -> SimPhone:
        rng = self.rng
        zones = list(self.zone_gateway)
        t = self.start + rng.uniform(0, self.duration_s * 0.5)
        x, y = OUTSIDE_X_M, 1.0
        route: list[tuple[float, float, float]] = [(t, x, y)]
        visits: list[Visit] = []
        for zone in rng.sample(zones, k=rng.randint(1, len(zones))):
            gx = self.gateway_x[self.zone_gateway[zone]]
            radius = self.zone_radius[zone]
            tx, ty = gx + rng.uniform(-0.5, 0.5) * radius, rng.uniform(0.2, 0.6) * radius
            t += math.hypot(tx - x, ty - y) / WALK_SPEED_M_S
            x, y = tx, ty
            dwell = rng.uniform(20, 240)
            route.append((t, x, y))
            visits.append(Visit(zone, t, t + dwell))
            t += dwell
            route.append((t, x, y))
        t += math.hypot(OUTSIDE_X_M - x, y) / WALK_SPEED_M_S
        route.append((t, OUTSIDE_X_M, 1.0))
        return SimPhone(name, identity, payload, route, visits, self._address())

    @staticmethod
    def _position(route: list[tuple[float, float, float]], t: float) -> tuple[float, float] | None:
        if t < route[0][0] or t > route[-1][0]:
            return None
        for (t0, x0, y0), (t1, x1, y1) in itertools.pairwise(route):
            if t0 <= t <= t1:
                f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                return x0 + f * (x1 - x0), y0 + f * (y1 - y0)
        return None

    def _rssi(self, distance: float) -> int | None:
        rng = self.rng
        if distance > HEARING_RANGE_M or rng.random() < 0.1 + 0.6 * distance / HEARING_RANGE_M:
            return None  # lost packet
        rssi = self.power - 10 * self.exponent * math.log10(max(distance, 0.1))
        rssi += rng.gauss(0, NOISE_DB)
        if rng.random() < SHADOW_PROBABILITY:
            rssi -= SHADOW_DB
        return max(-100, min(0, round(rssi)))

    def records(self) -> Iterator[SimRecord]:
        """Everything the gateways hear, in time order."""
        out: list[SimRecord] = []
        end = self.start + self.duration_s
        eid_cache: dict[tuple[str, int], bytes] = {}
        for phone in self.phones:
            t = phone.route[0][0] + self.rng.uniform(0, self.phone_interval_s)
            while t <= min(phone.route[-1][0], end):
                position = self._position(phone.route, t)
                if position is not None:
                    if phone.identity is not None:
                        ident = phone.identity
                        key = (ident.token, window_index(ident.exponent, t))
                        if key not in eid_cache:
                            eid_cache[key] = eid_advert(
                                eid_at(ident.identity_key, ident.exponent, t)
                            )
                        ad = eid_cache[key]
                    else:
                        ad = phone.payload
                    self._hear(out, t, position, ad, phone.address)
                t += self.phone_interval_s * self.rng.uniform(0.8, 1.2)
        for i, beacon in enumerate(self.layout.beacons):
            if beacon.ibeacon is None:
                continue
            gw = self.zone_gateway.get(beacon.zone or "", next(iter(self.gateway_x)))
            position = (self.gateway_x[gw] + 3.0, 2.0 + i % 3)
            ad = ibeacon_advert(
                beacon.ibeacon.uuid.bytes, beacon.ibeacon.major, beacon.ibeacon.minor
            )
            address = self._address()
            voltage_mv = BEACON_BATTERY_MV - BEACON_BATTERY_STEP_MV * (i % 4)
            t = self.start + self.rng.uniform(0, self.beacon_interval_s)
            sent = 0
            while t <= end:
                sent += 1
                if self.tlm_every and sent % self.tlm_every == 0:
                    uptime = BEACON_UPTIME_S + t - self.start
                    tlm = tlm_advert(voltage_mv, BEACON_TEMPERATURE_C, sent, uptime)
                    self._hear(out, t, position, tlm, address)
                else:
                    self._hear(out, t, position, ad, address)
                t += self.beacon_interval_s
        out.sort(key=lambda r: (r.ts, r.gateway))
        yield from out

    def _hear(
        self, out: list[SimRecord], t: float, position: tuple[float, float], ad: bytes, address: str
    ) -> None:
        for gateway, gx in self.gateway_x.items():
            distance = math.hypot(position[0] - gx, position[1])
            rssi = self._rssi(distance)
            if rssi is not None:
                out.append(SimRecord(t + self.rng.uniform(0, 0.02), gateway, rssi, ad, address))


def demo_identities(count: int, seed: int = 42, exponent: int = 10) -> list[EidIdentity]:
    """Deterministic test identities (never use such keys for real installs)."""
    rng = random.Random(seed)
    return [EidIdentity(f"tok-{n:04d}", rng.randbytes(16), exponent) for n in range(count)]
