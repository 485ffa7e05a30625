"""What the presence tracker says, and what it listens to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

EventType = Literal["enter", "dwell", "exit"]
Source = Literal["radio", "checkin"]


@dataclass(frozen=True, slots=True)
class Observation:
    """One sighting of a recognised device by one gateway.

    ``source`` is ``radio`` for an advert the gateway heard itself and
    ``checkin`` for a sighting relayed from the app through the cloud (iOS,
    which cannot advertise in the background). ``measured_power_dbm`` is the
    transmitter's own 1 m calibration when its frame carries one.
    """

    ts: float
    gateway: str
    device: str
    rssi: float
    measured_power_dbm: int | None = None
    source: Source = "radio"


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """A device entered, dwells in, or left a zone. ``dwell_s`` is set for dwell and exit."""

    ts: float
    type: EventType
    store: str
    zone: str
    device: str
    gateway: str
    dwell_s: float | None = None
    distance_m: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ts": round(self.ts, 3),
            "type": self.type,
            "store": self.store,
            "zone": self.zone,
            "device": self.device,
            "gateway": self.gateway,
        }
        if self.dwell_s is not None:
            out["dwell_s"] = round(self.dwell_s, 3)
        if self.distance_m is not None:
            out["distance_m"] = round(self.distance_m, 2)
        return out
