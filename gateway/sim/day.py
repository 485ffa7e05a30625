"""A store's day of visitors, hour by hour along a traffic curve.

The day's visitors are spread over the store's opening hours by
``HOURLY_WEIGHTS`` (quiet early, peaks at lunch and after work): each opted-in
identity visits once, in an hour drawn from the curve; anonymous phones and
other apps' EID phones are split across the hours in proportion. Each hour is
its own ``StoreSimulation`` (arrivals in its first half, so every visit is
over before the hour ends), built only when asked for, so nothing holds a
whole day's adverts. Shared by ``nahfeld demo`` (the day at speed, through
the real parts) and ``bench/store_day.py`` (the day through the core, for
memory and lost events).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..ble.eid import EidIdentity
from ..layout import StoreLayout
from ..presence.events import PresenceEvent
from .store import StoreSimulation

HOUR_S = 3600.0
DAY_S = 24 * HOUR_S
#: relative traffic per hour of the day, 00:00 to 23:00 local time
# fmt: off
HOURLY_WEIGHTS = (
    1, 1, 1, 1, 1, 2, 4, 8,           # night, early commuters
    10, 10, 12, 14, 16, 14, 12, 12,   # morning, lunch peak, afternoon
    14, 16, 16, 12, 8, 5, 3, 2,       # after work, evening
)
# fmt: on
#: an enter may come a little before the phone stops at its spot (it walks in)
ENTER_LEAD_S = 30.0


@dataclass(frozen=True, slots=True)
class ExpectedVisit:
    """An opted-in phone stopping in a zone: the gateway should report it entering."""

    token: str
    zone: str
    arrive: float
    leave: float


@dataclass(frozen=True, slots=True)
class SimulatedHour:
    """One hour of the day, its simulation not yet run (``sim.records()`` does the work)."""

    hour: int  # 0 is 00:00-01:00
    sim: StoreSimulation
    phones: int
    opted_in: int
    expected: list[ExpectedVisit]


def spread(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainder: sums exactly)."""
    raw = [total * w / sum(weights) for w in weights]
    counts = [int(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def store_day(
    layout: StoreLayout,
    identities: Sequence[EidIdentity],
    midnight: float,
    hours: range,
    seed: int,
    *,
    anonymous: int,
    strangers: int,
    open_hours: range = range(24),
) -> Iterator[SimulatedHour]:
    """Hours ``hours`` of the day that starts at ``midnight`` (unix time), each
    simulated only when asked for.

    Visitors are spread over ``open_hours`` first, so a shorter run is part of the
    same day (its opted-in phones are those whose visit falls in it).
    """
    weights = [HOURLY_WEIGHTS[h] for h in open_hours]
    anonymous_by_hour = dict(zip(open_hours, spread(anonymous, weights), strict=True))
    strangers_by_hour = dict(zip(open_hours, spread(strangers, weights), strict=True))
    picker = random.Random(seed)
    visiting: dict[int, list[EidIdentity]] = {h: [] for h in open_hours}
    for identity in identities:
        visiting[picker.choices(open_hours, weights)[0]].append(identity)
    opted_in = {identity.token for identity in identities}
    for h in hours:
        if h not in visiting:
            continue  # the store is closed
        sim = StoreSimulation(
            layout,
            visiting[h],
            start=midnight + h * HOUR_S,
            duration_s=HOUR_S,
            anonymous_phones=anonymous_by_hour[h],
            stranger_eid_phones=strangers_by_hour[h],
            seed=seed * 1000 + h,
        )
        expected = [
            ExpectedVisit(phone.identity.token, visit.zone, visit.arrive, visit.leave)
            for phone in sim.phones
            if phone.identity is not None and phone.identity.token in opted_in
            for visit in phone.visits
        ]
        yield SimulatedHour(h, sim, len(sim.phones), len(visiting[h]), expected)


def presences(events: Sequence[PresenceEvent]) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(token, zone) → every presence as (enter time, exit time)."""
    opened: dict[tuple[str, str], float] = {}
    spans: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for event in events:
        key = (event.device, event.zone)
        if event.type == "enter":
            opened[key] = event.ts
        elif event.type == "exit" and key in opened:
            spans[key].append((opened.pop(key), event.ts))
    for key, entered in opened.items():  # the run ended first (flush closes all, normally)
        spans[key].append((entered, float("inf")))
    return spans


def check_visits(
    expected: Sequence[ExpectedVisit], events: Sequence[PresenceEvent]
) -> tuple[list[ExpectedVisit], list[float], int]:
    """Visits without an overlapping presence, enter latencies, and presences matching none."""
    spans = presences(events)
    missing: list[ExpectedVisit] = []
    latencies: list[float] = []
    used: set[tuple[str, str, float]] = set()
    for visit in expected:
        found = [
            (entered, left)
            for entered, left in spans.get((visit.token, visit.zone), [])
            if entered <= visit.leave and left >= visit.arrive - ENTER_LEAD_S
        ]
        if not found:
            missing.append(visit)
            continue
        entered = found[0][0]
        used.update((visit.token, visit.zone, e) for e, _ in found)
        latencies.append(entered - visit.arrive)
    unmatched = sum(
        1 for (token, zone), runs in spans.items() for e, _ in runs if (token, zone, e) not in used
    )
    return missing, latencies, unmatched
