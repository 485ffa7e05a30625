"""Presence tracking: smoothing, hysteresis in distance and time, dwell, determinism."""

from __future__ import annotations

import math
import random

from gateway.presence.events import Observation, PresenceEvent
from gateway.presence.filters import RssiWindow, fenced_mean, rssi_to_distance
from gateway.presence.zones import PresenceTracker, TrackerParams, ZoneSpec

P1M = -59.0
N = 2.0
ZONE = ZoneSpec(
    "entrance",
    "gw-1",
    enter_radius_m=2.0,
    exit_radius_m=3.0,
    measured_power_dbm=P1M,
    path_loss_exponent=N,
)
PARAMS = TrackerParams(
    smoothing_window_s=6.0,
    min_samples=2,
    enter_after_s=2.0,
    exit_after_s=4.0,
    exit_timeout_s=15.0,
    dwell_thresholds_s=(30.0, 60.0),
)


def rssi_at(distance_m: float) -> float:
    return P1M - 10 * N * math.log10(distance_m)


def run(samples: list[tuple[float, float]], flush: bool = True) -> list[PresenceEvent]:
    tracker = PresenceTracker("store", [ZONE], PARAMS)
    events: list[PresenceEvent] = []
    for ts, distance in samples:
        events += tracker.observe(Observation(ts, "gw-1", "phone", rssi_at(distance)))
    if flush:
        events += tracker.flush()
    return events


def kinds(events: list[PresenceEvent]) -> list[str]:
    return [e.type for e in events]


def test_distance_model_inverts() -> None:
    assert rssi_to_distance(P1M, P1M, N) == 1.0
    assert math.isclose(rssi_to_distance(rssi_at(4.0), P1M, N), 4.0)


def test_fenced_mean_ignores_outliers() -> None:
    assert fenced_mean([-60, -61, -59, -60, -60, -95]) == -60
    assert fenced_mean([-60.0]) == -60.0


def test_window_forgets_old_samples() -> None:
    window = RssiWindow(window_s=5.0)
    window.add(0.0, -90.0)
    assert window.add(10.0, -60.0) == -60.0
    assert len(window) == 1


def test_enter_dwell_exit_with_timestamps() -> None:
    samples = [(float(t), 1.0) for t in range(0, 70)] + [(float(t), 10.0) for t in range(70, 90)]
    events = run(samples)
    assert kinds(events) == ["enter", "dwell", "dwell", "exit"]
    enter, dwell30, dwell60, leave = events
    assert enter.ts == 3.0  # 2nd sample (min_samples) at 1 s, then enter_after_s = 2
    assert (dwell30.ts, dwell30.dwell_s) == (33.0, 30.0)
    assert (dwell60.ts, dwell60.dwell_s) == (63.0, 60.0)
    assert leave.dwell_s is not None
    assert 60 < leave.dwell_s < 75
    assert all(e.zone == "entrance" and e.device == "phone" for e in events)


def test_no_enter_before_min_time() -> None:
    assert run([(0.0, 1.0), (1.0, 1.0), (1.5, 1.0)], flush=False) == []


def test_exit_timeout_when_phone_goes_silent() -> None:
    events = run([(float(t), 1.0) for t in range(10)])
    assert kinds(events) == ["enter", "exit"]
    assert events[1].ts == 9.0 + PARAMS.exit_timeout_s
    assert events[1].dwell_s == 6.0  # entered at 3 s, last heard inside at 9 s


def test_silence_exit_is_emitted_by_later_traffic_of_others() -> None:
    tracker = PresenceTracker("store", [ZONE], PARAMS)
    for t in range(5):
        tracker.observe(Observation(float(t), "gw-1", "a", rssi_at(1.0)))
    events = tracker.observe(Observation(100.0, "gw-1", "b", rssi_at(30.0)))
    assert [(e.type, e.device) for e in events] == [("exit", "a")]


def test_hysteresis_band_does_not_flap() -> None:
    """Hovering between the enter radius (2 m) and the exit radius (3 m) keeps the state."""
    samples = [(float(t), 1.0) for t in range(10)]
    samples += [(float(t), 2.5 + 0.4 * math.sin(t)) for t in range(10, 200)]
    assert kinds(run(samples, flush=False)) == ["enter", "dwell", "dwell"]


def test_short_excursion_beyond_exit_radius_is_ignored() -> None:
    samples = [(float(t), 1.0) for t in range(20)]
    samples += [(20.0, 8.0), (21.0, 8.0)]  # shorter than smoothing + exit_after_s
    samples += [(float(t), 1.0) for t in range(22, 40)]
    assert kinds(run(samples, flush=False)) == ["enter", "dwell"]


def test_noisy_stationary_phone_enters_once() -> None:
    rng = random.Random(3)
    tracker = PresenceTracker("store", [ZONE], PARAMS)
    events: list[PresenceEvent] = []
    for i in range(600):
        noise = rng.gauss(0, 4) - (15 if rng.random() < 0.05 else 0)
        events += tracker.observe(Observation(i * 0.5, "gw-1", "p", rssi_at(1.0) + noise))
    assert kinds(events).count("enter") == 1
    assert kinds(events).count("exit") == 0


def test_other_gateways_and_far_phones_make_no_events() -> None:
    tracker = PresenceTracker("store", [ZONE], PARAMS)
    events: list[PresenceEvent] = []
    for t in range(30):
        events += tracker.observe(Observation(float(t), "gw-2", "p", rssi_at(0.5)))
        events += tracker.observe(Observation(float(t), "gw-1", "q", rssi_at(12.0)))
    assert events == []


def test_same_input_same_events() -> None:
    rng = random.Random(11)
    samples = [
        (t * 0.7, max(0.3, 2 + 3 * math.sin(t / 40) + rng.gauss(0, 0.5))) for t in range(800)
    ]
    assert run(samples) == run(samples)


def test_memory_is_released_after_devices_leave() -> None:
    tracker = PresenceTracker("store", [ZONE], PARAMS)
    for n in range(200):
        for t in range(5):
            tracker.observe(Observation(n * 10.0 + t, "gw-1", f"p{n}", rssi_at(1.0)))
    tracker.advance(200 * 10.0 + 100)
    assert tracker.tracked == 0


def test_trusted_advertised_power_moves_the_estimate() -> None:
    zone = ZoneSpec("z", "gw-1", 2.0, 3.0, P1M, N, trust_advertised_power=True)
    tracker = PresenceTracker("store", [zone], PARAMS)
    events: list[PresenceEvent] = []
    for t in range(10):  # -71 dBm is 4 m for a -59 dBm phone, but 1 m for a -71 dBm one
        events += tracker.observe(Observation(float(t), "gw-1", "p", -71.0, measured_power_dbm=-71))
    assert kinds(events) == ["enter"]


def test_sparse_sightings_keep_a_present_phone_in() -> None:
    """Samples too sparse to judge distance still count as heard for the exit timeout."""
    params = TrackerParams(
        smoothing_window_s=5.0,
        min_samples=3,
        enter_after_s=0.0,
        exit_after_s=4.0,
        exit_timeout_s=15.0,
        dwell_thresholds_s=(),
    )
    tracker = PresenceTracker("store", [ZONE], params)
    events: list[PresenceEvent] = []
    for t in range(5):  # dense at first: enter
        events += tracker.observe(Observation(float(t), "gw-1", "p", rssi_at(1.0)))
    for t in range(14, 200, 10):  # then one sample every 10 s: never 3 in the window
        events += tracker.observe(Observation(float(t), "gw-1", "p", rssi_at(1.0)))
    assert kinds(events) == ["enter"]
