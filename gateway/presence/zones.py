"""Zone membership with hysteresis in distance and in time.

A device enters a zone once its smoothed distance to the zone's gateway has
stayed within ``enter_radius_m`` for ``enter_after_s``; it leaves when it has
stayed beyond the larger ``exit_radius_m`` for ``exit_after_s``, or has not
been heard for ``exit_timeout_s``. Dwell events fire at fixed thresholds
after the enter.

Pure: state lives in this object, time comes only from the observations, so
the same input always gives the same events. State is keyed by (gateway,
device) for signals and (zone, device) for membership, so a store-level
arbiter across gateways can be added on top without a rewrite.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .events import EventType, Observation, PresenceEvent
from .filters import RssiWindow, rssi_to_distance


@dataclass(frozen=True, slots=True)
class TrackerParams:
    """Timing and smoothing; the defaults are calibrated in ``bench/calibrate_presence.py``."""

    smoothing_window_s: float = 10.0
    max_samples: int = 32
    min_samples: int = 3
    enter_after_s: float = 2.0
    exit_after_s: float = 6.0
    exit_timeout_s: float = 20.0
    dwell_thresholds_s: tuple[float, ...] = (30.0, 120.0, 300.0)


@dataclass(frozen=True, slots=True)
class ZoneSpec:
    """One zone: the gateway that watches it and its radii."""

    id: str
    gateway: str
    enter_radius_m: float
    exit_radius_m: float
    measured_power_dbm: float
    path_loss_exponent: float
    trust_advertised_power: bool = False


@dataclass(slots=True)
class _Membership:
    candidate_since: float | None = None
    inside: bool = False
    entered_at: float = 0.0
    last_seen: float = 0.0
    last_inside: float = 0.0
    outside_since: float | None = None
    next_dwell: int = 0


@dataclass(slots=True)
class _Signal:
    window: RssiWindow
    memberships: dict[str, _Membership] = field(default_factory=dict)


class PresenceTracker:
    """Enter / dwell / exit per (device, zone) for one store."""

    __slots__ = (
        "_next_due",
        "_now",
        "_signals",
        "_zone_by_id",
        "_zones_by_gateway",
        "params",
        "store",
    )

    def __init__(self, store: str, zones: Iterable[ZoneSpec], params: TrackerParams) -> None:
        self.store = store
        self.params = params
        self._zones_by_gateway: dict[str, tuple[ZoneSpec, ...]] = {}
        self._zone_by_id: dict[str, ZoneSpec] = {}
        for zone in zones:
            self._zone_by_id[zone.id] = zone
            self._zones_by_gateway[zone.gateway] = (
                *self._zones_by_gateway.get(zone.gateway, ()),
                zone,
            )
        self._signals: dict[tuple[str, str], _Signal] = {}
        self._now = float("-inf")
        self._next_due = float("inf")

    @property
    def tracked(self) -> int:
        """Signals currently held (gateway, device pairs)."""
        return len(self._signals)

    def watches(self, gateway: str) -> bool:
        return gateway in self._zones_by_gateway

    def observe(self, obs: Observation) -> list[PresenceEvent]:
        """Feed one sighting; returns the events it (and the time it carries) caused."""
        events = self.advance(obs.ts)
        zones = self._zones_by_gateway.get(obs.gateway)
        if zones is None:
            return events
        key = (obs.gateway, obs.device)
        signal = self._signals.get(key)
        if signal is None:
            signal = _Signal(RssiWindow(self.params.smoothing_window_s, self.params.max_samples))
            self._signals[key] = signal
            self._next_due = min(self._next_due, obs.ts + self.params.exit_timeout_s)
        smoothed = signal.window.add(obs.ts, obs.rssi)
        if len(signal.window) < self.params.min_samples:
            # too few samples to judge distance, but the device was heard: a sparse
            # phone that is inside must not be timed out for it
            for member in signal.memberships.values():
                member.last_seen = obs.ts
            return events
        for zone in zones:
            power = zone.measured_power_dbm
            if zone.trust_advertised_power and obs.measured_power_dbm is not None:
                power = obs.measured_power_dbm
            distance = rssi_to_distance(smoothed, power, zone.path_loss_exponent)
            event = self._update(signal, zone, obs, distance)
            if event is not None:
                events.append(event)
        return events

    def _update(
        self, signal: _Signal, zone: ZoneSpec, obs: Observation, distance: float
    ) -> PresenceEvent | None:
        ts = obs.ts
        member = signal.memberships.get(zone.id)
        if member is None or not member.inside:
            if distance > zone.enter_radius_m:
                if member is not None:
                    del signal.memberships[zone.id]
                return None
            if member is None:
                member = _Membership(candidate_since=ts, last_seen=ts)
                signal.memberships[zone.id] = member
            member.last_seen = ts
            assert member.candidate_since is not None
            if ts - member.candidate_since < self.params.enter_after_s:
                return None
            member.inside = True
            member.candidate_since = None
            member.entered_at = member.last_inside = ts
            if self.params.dwell_thresholds_s:
                self._next_due = min(self._next_due, ts + self.params.dwell_thresholds_s[0])
            return self._event(ts, "enter", zone, obs.device, None, distance)
        member.last_seen = ts
        if distance <= zone.exit_radius_m:
            member.outside_since = None
            member.last_inside = ts
            return None
        if member.outside_since is None:
            member.outside_since = ts
            return None
        if ts - member.outside_since < self.params.exit_after_s:
            return None
        del signal.memberships[zone.id]
        return self._event(
            ts, "exit", zone, obs.device, member.last_inside - member.entered_at, distance
        )

    def _event(
        self,
        ts: float,
        kind: EventType,
        zone: ZoneSpec,
        device: str,
        dwell_s: float | None,
        distance: float | None = None,
    ) -> PresenceEvent:
        return PresenceEvent(ts, kind, self.store, zone.id, device, zone.gateway, dwell_s, distance)

    def advance(self, now: float) -> list[PresenceEvent]:
        """Let time pass: dwell thresholds reached, devices not heard for too long."""
        self._now = max(self._now, now)
        if self._now < self._next_due:
            return []
        return self._sweep(self._now)

    def flush(self) -> list[PresenceEvent]:
        """Close everything as if time ran on past every timeout (end of a replay, or a
        step of the wall clock); the tracker then starts afresh, from whatever time the
        next observation brings."""
        horizon = (
            self._now + self.params.exit_timeout_s + max(self.params.dwell_thresholds_s, default=0)
        )
        events = self._sweep(horizon + 1.0)
        self._signals.clear()
        self._now, self._next_due = float("-inf"), float("inf")
        return events

    def _sweep(self, now: float) -> list[PresenceEvent]:
        params = self.params
        thresholds = params.dwell_thresholds_s
        events: list[PresenceEvent] = []
        next_due = float("inf")
        for key in list(self._signals):
            signal = self._signals[key]
            device = key[1]
            for zone_id in list(signal.memberships):
                member = signal.memberships[zone_id]
                timeout_at = member.last_seen + params.exit_timeout_s
                if not member.inside:
                    if timeout_at <= now:
                        del signal.memberships[zone_id]
                    else:
                        next_due = min(next_due, timeout_at)
                    continue
                zone = self._zone_by_id[zone_id]
                while member.next_dwell < len(thresholds):
                    dwell_at = member.entered_at + thresholds[member.next_dwell]
                    if dwell_at > now or dwell_at > timeout_at:
                        break
                    events.append(
                        self._event(dwell_at, "dwell", zone, device, thresholds[member.next_dwell])
                    )
                    member.next_dwell += 1
                if timeout_at <= now:
                    del signal.memberships[zone_id]
                    events.append(
                        self._event(
                            timeout_at, "exit", zone, device, member.last_inside - member.entered_at
                        )
                    )
                    continue
                next_due = min(next_due, timeout_at)
                if member.next_dwell < len(thresholds):
                    next_due = min(next_due, member.entered_at + thresholds[member.next_dwell])
            signal_expiry = signal.window.last_ts + params.exit_timeout_s
            if not signal.memberships and signal_expiry <= now:
                del self._signals[key]
            elif not signal.memberships:
                next_due = min(next_due, signal_expiry)
        self._next_due = next_due
        events.sort(key=lambda e: (e.ts, e.zone, e.device, e.type))
        return events
