"""The gateway's pure core: advert → frames → who → presence events.

No I/O and no wall clock: every call carries its own timestamp, so the live
daemon, ``nahfeld replay``, the tests and the benchmarks run this same code
and the same input always gives the same events.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .ble.decode import Decoded, decode_ad
from .layout import StoreLayout
from .presence.events import Observation, PresenceEvent, Source
from .presence.zones import PresenceTracker
from .recognise import BeaconRegistry, EidCache, recognise


@dataclass(slots=True)
class CoreStats:
    """Counters the shell exports as metrics; ``malformed`` is keyed by reason."""

    adverts: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    not_beacon: int = 0
    unrecognised: int = 0
    app_sightings: int = 0
    beacon_sightings: int = 0
    events: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "adverts": self.adverts,
            "malformed": dict(sorted(self.malformed.items())),
            "not_beacon": self.not_beacon,
            "unrecognised": self.unrecognised,
            "app_sightings": self.app_sightings,
            "beacon_sightings": self.beacon_sightings,
            "events": dict(sorted(self.events.items())),
        }


class GatewayCore:
    """One store's core state: EID cache, store-beacon registry, presence tracker."""

    __slots__ = ("beacon_last_seen", "beacons", "eids", "stats", "store", "tracker")

    def __init__(self, layout: StoreLayout, eids: EidCache) -> None:
        self.store = layout.store
        self.eids = eids
        self.beacons = BeaconRegistry(layout.beacons)
        self.tracker = PresenceTracker(layout.store, layout.zone_specs(), layout.tracker_params())
        self.stats = CoreStats()
        #: store beacon id → last time heard, for fleet health
        self.beacon_last_seen: dict[str, float] = {}

    def on_advert(self, ts: float, gateway: str, rssi: float, ad: bytes) -> list[PresenceEvent]:
        """Raw advertising data as heard by ``gateway``."""
        return self.on_decoded(ts, gateway, rssi, decode_ad(ad))

    def on_decoded(
        self, ts: float, gateway: str, rssi: float, decoded: Decoded, source: Source = "radio"
    ) -> list[PresenceEvent]:
        """An advert already decoded (the bleak path decodes bleak's fields instead of bytes)."""
        stats = self.stats
        stats.adverts += 1
        if decoded.problem is not None:
            stats.malformed[decoded.problem.reason] += 1
        if not decoded.frames:
            if decoded.problem is None:
                stats.not_beacon += 1
            return self._count(self.tracker.advance(ts))
        who = recognise(decoded.frames, ts, self.eids, self.beacons)
        if who is None:
            stats.unrecognised += 1
            return self._count(self.tracker.advance(ts))
        if who.kind == "beacon":
            stats.beacon_sightings += 1
            self.beacon_last_seen[who.id] = ts
            return self._count(self.tracker.advance(ts))
        stats.app_sightings += 1
        obs = Observation(ts, gateway, who.id, rssi, who.measured_power_dbm, source)
        return self._count(self.tracker.observe(obs))

    def on_device(self, ts: float, gateway: str, rssi: float, device: str) -> list[PresenceEvent]:
        """A sighting of an already-identified device (calibration and evaluation data)."""
        self.stats.adverts += 1
        self.stats.app_sightings += 1
        return self._count(self.tracker.observe(Observation(ts, gateway, device, rssi)))

    def advance(self, now: float) -> list[PresenceEvent]:
        return self._count(self.tracker.advance(now))

    def flush(self) -> list[PresenceEvent]:
        """End of input: close every open presence."""
        return self._count(self.tracker.flush())

    def _count(self, events: list[PresenceEvent]) -> list[PresenceEvent]:
        for event in events:
            self.stats.events[event.type] += 1
        return events
