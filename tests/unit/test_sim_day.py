"""The simulated store day (visitors over opening hours, beacon telemetry) and its clock."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.ble.decode import decode_ad
from gateway.ble.frames import EddystoneTlm
from gateway.layout import load_layout
from gateway.sim.clock import SimulatedClock
from gateway.sim.day import HOUR_S, store_day
from gateway.sim.store import BEACON_BATTERY_MV, StoreSimulation, demo_identities

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = load_layout(ROOT / "firmware-config" / "stores" / "demo-store" / "layout.toml")
MIDNIGHT = 1_788_220_800.0  # a midnight UTC; the hours are offsets from it


def test_visitors_come_only_in_opening_hours_and_all_of_them() -> None:
    identities = demo_identities(12)
    hours = list(
        store_day(
            LAYOUT,
            identities,
            MIDNIGHT,
            range(24),
            seed=3,
            anonymous=50,
            strangers=5,
            open_hours=range(9, 18),
        )
    )
    assert [h.hour for h in hours] == list(range(9, 18))
    assert sum(h.opted_in for h in hours) == 12
    assert sum(h.phones for h in hours) == 12 + 50 + 5
    for hour in hours:
        start = MIDNIGHT + hour.hour * HOUR_S
        assert all(start <= v.arrive < v.leave <= start + HOUR_S for v in hour.expected)
    assert {v.token for h in hours for v in h.expected} <= {i.token for i in identities}


def test_store_beacons_send_their_telemetry_from_their_own_address() -> None:
    sim = StoreSimulation(LAYOUT, [], start=MIDNIGHT, duration_s=60, tlm_every=10)
    by_address: dict[str, list[EddystoneTlm | None]] = {}
    for record in sim.records():
        frames = decode_ad(record.ad).frames
        tlm = next((f for f in frames if isinstance(f, EddystoneTlm)), None)
        by_address.setdefault(record.address, []).append(tlm)
    assert len(by_address) == len(LAYOUT.beacons)
    batteries = set()
    for heard in by_address.values():
        telemetry = [t for t in heard if t is not None]
        assert 0 < len(telemetry) < len(heard) / 5  # one advert in ten, lost ones aside
        batteries |= {t.voltage_mv for t in telemetry}
    assert BEACON_BATTERY_MV in batteries


def test_store_time_follows_the_feed_and_never_goes_back() -> None:
    clock = SimulatedClock(start=MIDNIGHT, speed=300)
    assert clock.time() == MIDNIGHT and clock.monotonic() == 0
    clock.reach(MIDNIGHT + 90)
    clock.reach(MIDNIGHT + 30)
    assert clock.time() == MIDNIGHT + 90 and clock.monotonic() == 90


def test_the_pace_is_speed_times_real_time() -> None:
    clock = SimulatedClock(start=MIDNIGHT, speed=1000)
    first = clock.real_seconds_until(MIDNIGHT + 1000)  # the pace starts here
    assert 0.9 < first <= 1.0
    began = time.monotonic()
    while time.monotonic() - began < 0.05:
        pass
    assert clock.real_seconds_until(MIDNIGHT + 1000) <= first - 0.05


def test_skipping_the_night_moves_both_readings_so_no_clock_step_shows() -> None:
    clock = SimulatedClock(start=MIDNIGHT, speed=300)
    clock.reach(MIDNIGHT + 3600)
    offset = clock.time() - clock.monotonic()
    clock.skip_to(MIDNIGHT + 20 * 3600)
    assert clock.time() == MIDNIGHT + 20 * 3600
    assert clock.time() - clock.monotonic() == offset
    assert clock.real_seconds_until(MIDNIGHT + 20 * 3600 + 300) == pytest.approx(1.0, abs=0.05)


def test_a_clock_needs_a_positive_speed() -> None:
    with pytest.raises(ValueError, match="speed must be positive"):
        SimulatedClock(start=MIDNIGHT, speed=0)
