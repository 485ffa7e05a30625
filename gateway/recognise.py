"""Who sent this advert? An opted-in app install (by EID), a store beacon, or nobody we keep.

Everything not recognised here is dropped in memory: no MAC address and no
unresolved EID survives this step (the privacy model in docs/privacy.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from .ble.eid import EidMatch
from .ble.frames import EddystoneEid, EddystoneUid, Frame, IBeacon, measured_power_at_1m
from .layout import StoreBeacon

MAX_PENDING_EIDS = 4096


@dataclass(frozen=True, slots=True)
class Recognised:
    kind: Literal["app", "beacon"]
    id: str
    measured_power_dbm: int | None


class EidLookup(Protocol):
    """A synchronous resolver (EIDs in lowercase hex), as replay, tests and benchmarks use."""

    def lookup(self, eid: str, unix_seconds: float) -> EidMatch | None: ...


class EidCache:
    """Resolved EIDs until their window ends; misses wait in a bounded queue for the resolver."""

    __slots__ = ("_entries", "_pending", "local", "max_pending")

    def __init__(self, local: EidLookup | None = None, max_pending: int = MAX_PENDING_EIDS) -> None:
        self.local = local
        self.max_pending = max_pending
        self._entries: dict[str, EidMatch] = {}
        self._pending: dict[str, None] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, eid: str, now: float) -> EidMatch | None:
        match = self._entries.get(eid)
        if match is not None:
            if match.valid_until > now:
                return match
            del self._entries[eid]
        if self.local is not None:
            match = self.local.lookup(eid, now)
            if match is not None:
                self._entries[eid] = match
                return match
            return None
        if eid not in self._pending and len(self._pending) < self.max_pending:
            self._pending[eid] = None
        return None

    def knows(self, eid: str) -> bool:
        """Resolved already (no lookup, so nothing is queued for the resolver)."""
        return eid in self._entries

    def learn(self, eid: str, match: EidMatch) -> None:
        """Store a resolver answer (including the next window's EID it sends ahead)."""
        self._entries[eid] = match
        self._pending.pop(eid, None)

    def take_pending(self) -> list[str]:
        """The EIDs to send to the resolver; forgotten here whatever the answer."""
        pending = list(self._pending)
        self._pending.clear()
        return pending

    def forget_token(self, token: str) -> int:
        """Drop every EID of a token (opt-out: effective at once, not at window end)."""
        gone = [eid for eid, match in self._entries.items() if match.token == token]
        for eid in gone:
            del self._entries[eid]
        return len(gone)

    def expire(self, now: float) -> int:
        stale = [eid for eid, match in self._entries.items() if match.valid_until <= now]
        for eid in stale:
            del self._entries[eid]
        return len(stale)


class BeaconRegistry:
    """The store's own fixed beacons, by their broadcast identity."""

    __slots__ = ("_ibeacons", "_uids")

    def __init__(self, beacons: Iterable[StoreBeacon]) -> None:
        self._ibeacons: dict[tuple[str, int, int], str] = {}
        self._uids: dict[tuple[str, str], str] = {}
        for beacon in beacons:
            if beacon.ibeacon is not None:
                key = (str(beacon.ibeacon.uuid), beacon.ibeacon.major, beacon.ibeacon.minor)
                self._ibeacons[key] = beacon.id
            if beacon.eddystone_uid is not None:
                uid = (
                    beacon.eddystone_uid.namespace.lower(),
                    beacon.eddystone_uid.instance.lower(),
                )
                self._uids[uid] = beacon.id

    def __len__(self) -> int:
        return len(self._ibeacons) + len(self._uids)

    def match(self, frame: Frame) -> str | None:
        if isinstance(frame, IBeacon):
            return self._ibeacons.get((frame.uuid, frame.major, frame.minor))
        if isinstance(frame, EddystoneUid):
            return self._uids.get((frame.namespace, frame.instance))
        return None


def recognise(
    frames: tuple[Frame, ...], now: float, eids: EidCache, beacons: BeaconRegistry
) -> Recognised | None:
    """The first frame that identifies someone we keep, or ``None``."""
    for frame in frames:
        if isinstance(frame, EddystoneEid):
            match = eids.lookup(frame.eid, now)
            if match is not None:
                return Recognised("app", match.token, measured_power_at_1m(frame))
            continue
        beacon_id = beacons.match(frame)
        if beacon_id is not None:
            return Recognised("beacon", beacon_id, measured_power_at_1m(frame))
    return None
