"""The resolver's table: every opted-in install's EIDs around now, looked up in O(1).

EIDs are precomputed per rotation window for all installs: the current
window, ``drift`` windows either side (a phone's clock may be off), and
``ahead`` windows further, so that when a window turns its EIDs are already
there (:meth:`EidResolverTable.advance`, run by a scheduler, computes the next
one). Installs are addressed by the caller's integer id (the database's primary
key): nothing else about a person is held here. Per install the table keeps 16
bytes of identity key, 16 of temporary key and, per window, 8 bytes of EID
plus its entry in the group's hash index: flat numpy arrays, no Python object per
install. Pure: time is always an argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.ble.eid import (
    COUNTER_MODULUS,
    IDENTITY_KEY_LENGTH,
    MAX_EXPONENT,
    derive_temporary_key,
    eid_from_temporary_key,
)

from .index import I64, NOT_FOUND, U64, EidIndex

Keys = npt.NDArray[np.uint8]  # (n, 16)
_EID_HEX_DIGITS = 16
_HEX = frozenset("0123456789abcdef")
_WINDOW_BITS = 8  # windows are told apart by their number mod 256 (a few are held)
_WINDOW_MASK = (1 << _WINDOW_BITS) - 1


@dataclass(frozen=True, slots=True)
class Resolution:
    """An EID found: whose it is, until when to trust it, and the EID that follows it."""

    eid: str
    install: int
    valid_until: float
    next_eid: str | None
    next_valid_until: float | None


@dataclass(slots=True)
class _Window:
    eids: U64  # by slot; 0 where the slot is not in this group or was gone


def _entries(slots: I64, window: int) -> I64:
    """What the index stores for each EID: its slot and its window's number mod 256."""
    return (slots << _WINDOW_BITS) | (window & _WINDOW_MASK)


def _grown(array: npt.NDArray[np.generic], size: int, fill: int = 0) -> npt.NDArray[np.generic]:
    """``array`` with room for ``size`` rows (doubling), new rows set to ``fill``."""
    if size <= len(array):
        return array
    extra = np.full((max(size, 2 * len(array)) - len(array), *array.shape[1:]), fill, array.dtype)
    return np.concatenate([array, extra])


class _ExponentGroup:
    """The installs sharing a rotation exponent K turn windows together."""

    __slots__ = ("epoch", "exponent", "index", "keys", "size", "slots", "temporary", "windows")

    def __init__(self, exponent: int) -> None:
        self.exponent = exponent
        self.size = 0
        self.slots: I64 = np.zeros(16, dtype=np.int64)  # the table's slot of each member
        self.keys: Keys = np.zeros((16, IDENTITY_KEY_LENGTH), dtype=np.uint8)
        self.temporary: Keys = np.zeros((16, IDENTITY_KEY_LENGTH), dtype=np.uint8)
        self.epoch = -1  # the counter's top half the temporary keys are for; -1: none yet
        self.windows: dict[int, _Window] = {}
        self.index = EidIndex()  # every held window's EIDs → _entries(slot, window)

    def reindex(self) -> None:
        """One index over all held windows: a batch is looked up once, not per window."""
        parts = [
            (window.eids[self.slots[: self.size]], _entries(self.slots[: self.size], number))
            for number, window in self.windows.items()
        ]
        if not parts:
            self.index = EidIndex()
            return
        eids = np.concatenate([eids for eids, _ in parts])
        entries = np.concatenate([entries for _, entries in parts])
        self.index = EidIndex.build(eids, entries)

    def extend(self, slots: I64, keys: Keys) -> None:
        """New members: their table slots and identity keys."""
        n, end = self.size, self.size + len(slots)
        self.slots = _grown(self.slots, end)  # type: ignore[assignment]
        self.keys = _grown(self.keys, end)  # type: ignore[assignment]
        self.temporary = _grown(self.temporary, end)  # type: ignore[assignment]
        self.slots[n:end] = slots
        self.keys[n:end] = keys
        self.size = end
        if self.epoch >= 0:  # windows exist: the newcomers need this epoch's temporary keys
            for member in range(n, end):
                key = self.keys[member].tobytes()
                temporary = derive_temporary_key(key, self.epoch << 16)
                self.temporary[member] = np.frombuffer(temporary, np.uint8)

    def counter(self, window: int) -> int:
        return (window << self.exponent) % COUNTER_MODULUS

    def ensure_epoch(self, counter: int) -> None:
        """Temporary keys for ``counter`` (they change every 65,536 s; a window never
        spans two epochs, as K <= 15)."""
        epoch = counter >> 16
        if epoch == self.epoch:
            return
        for n in range(self.size):
            key = self.keys[n].tobytes()
            self.temporary[n] = np.frombuffer(derive_temporary_key(key, counter), np.uint8)
        self.epoch = epoch

    def eid(self, member: int, counter: int) -> int:
        temporary = self.temporary[member].tobytes()
        return int.from_bytes(eid_from_temporary_key(temporary, self.exponent, counter), "big")

    def keep(self, members: I64) -> None:
        """Only ``members`` (positions) stay: removed installs' keys are forgotten."""
        self.slots, self.keys = self.slots[members], self.keys[members]
        self.temporary, self.size = self.temporary[members], len(members)


class EidResolverTable:
    """EID → install for all opted-in installs, for the windows around a moving now."""

    def __init__(self, drift_windows: int = 1, ahead_windows: int = 1) -> None:
        self.drift = drift_windows
        self.ahead = ahead_windows
        self._groups: dict[int, _ExponentGroup] = {}
        self._installs: I64 = np.full(1024, NOT_FOUND, dtype=np.int64)  # slot → install
        self._active: npt.NDArray[np.bool_] = np.zeros(1024, dtype=np.bool_)
        self._slot_of = EidIndex()  # install → slot (the same hash index, keyed by install id)
        self._size = 0
        self._removed = 0
        self.eids_computed = 0

    # ------------------------------------------------------------ membership

    def __len__(self) -> int:
        return self._size - self._removed

    def __contains__(self, install: int) -> bool:
        slot = self._slot_of.get(install)
        return slot != NOT_FOUND and bool(self._active[slot])

    def add_many(self, installs: Iterable[tuple[int, bytes, int]]) -> None:
        """Register ``(install, identity key, K)``; computed windows include them at once.

        Done in bulk: a million installs load in seconds, not minutes."""
        rows = list(installs)
        for install, key, exponent in rows:
            if len(key) != IDENTITY_KEY_LENGTH:
                raise ValueError(f"identity key must be {IDENTITY_KEY_LENGTH} bytes")
            if not 0 <= exponent <= MAX_EXPONENT:
                raise ValueError(f"rotation exponent K must be 0-{MAX_EXPONENT}")
            if install < 0:
                raise ValueError("install ids are non-negative integers")
        latest = {install: n for n, (install, _, _) in enumerate(rows)}  # the last key wins
        rows = [rows[n] for n in sorted(latest.values())]
        ids = np.array([install for install, _, _ in rows], dtype=np.uint64)
        self._deactivate(self._slot_of.lookup_many(ids))  # re-opt-in: old EIDs stop resolving
        first = self._size
        self._size += len(rows)
        self._installs = _grown(self._installs, self._size, NOT_FOUND)  # type: ignore[assignment]
        self._active = _grown(self._active, self._size)  # type: ignore[assignment]
        slots = np.arange(first, self._size, dtype=np.int64)
        self._installs[slots] = ids.astype(np.int64)
        self._active[slots] = True
        self._slot_of.upsert_many(ids, slots)
        by_exponent: dict[int, list[int]] = {}
        for n, (_, _, exponent) in enumerate(rows):
            by_exponent.setdefault(exponent, []).append(n)
        for exponent, members in by_exponent.items():
            group = self._groups.setdefault(exponent, _ExponentGroup(exponent))
            start = group.size
            keys = np.frombuffer(b"".join(rows[n][1] for n in members), np.uint8)
            group.extend(slots[members], keys.reshape(-1, IDENTITY_KEY_LENGTH))
            for number, window in group.windows.items():
                counter = group.counter(number)
                eids = np.array(
                    [group.eid(m, counter) for m in range(start, group.size)], dtype=np.uint64
                )
                self.eids_computed += len(eids)
                window.eids = _grown(window.eids, self._size)  # type: ignore[assignment]
                window.eids[slots[members]] = eids
                group.index.upsert_many(eids, _entries(slots[members], number))

    def remove(self, install: int) -> bool:
        """Opt-out or erasure: its EIDs stop resolving at once. False if unknown."""
        return self._deactivate(np.array([self._slot_of.get(install)], dtype=np.int64)) > 0

    def _deactivate(self, slots: I64) -> int:
        slots = slots[slots != NOT_FOUND]
        slots = slots[self._active[slots]]
        self._active[slots] = False
        self._removed += len(slots)
        return len(slots)

    # ------------------------------------------------------------ windows

    def wanted_windows(self, exponent: int, unix_seconds: float) -> range:
        current = int(unix_seconds) >> exponent
        return range(max(0, current - self.drift), current + self.drift + self.ahead + 1)

    def advance(self, unix_seconds: float) -> int:
        """Compute the windows now wanted, drop the passed ones; returns EIDs computed."""
        before = self.eids_computed
        for exponent, group in self._groups.items():
            wanted = self.wanted_windows(exponent, unix_seconds)
            held = set(group.windows)
            for number in held - set(wanted):
                del group.windows[number]
            live = np.flatnonzero(self._active[group.slots[: group.size]])
            if len(live) < group.size:
                group.keep(live)
            for number in wanted:
                if number not in group.windows:
                    group.windows[number] = self._compute(group, number)
            if set(group.windows) != held or len(live) < group.size:
                group.reindex()
        return self.eids_computed - before

    def _compute(self, group: _ExponentGroup, window: int) -> _Window:
        counter = group.counter(window)
        group.ensure_epoch(counter)
        members = np.array(
            [group.eid(n, counter) for n in range(group.size)], dtype=np.uint64
        ).reshape(-1)
        self.eids_computed += group.size
        eids = np.zeros(max(self._size, 1), dtype=np.uint64)
        eids[group.slots[: group.size]] = members
        return _Window(eids)

    # ------------------------------------------------------------ lookups

    def resolve(self, eids: Iterable[str], unix_seconds: float) -> list[Resolution]:
        """The known ones among ``eids`` (16 lowercase hex digits); the rest are not kept."""
        wanted = [e for e in eids if len(e) == _EID_HEX_DIGITS and _HEX.issuperset(e)]
        if not wanted:
            return []
        values = np.frombuffer(bytes.fromhex("".join(wanted)), dtype=">u8").astype(np.uint64)
        results: list[Resolution] = []
        for exponent, group in self._groups.items():
            size = 1 << exponent
            current = int(unix_seconds) >> exponent
            entries = group.index.lookup_many(values)
            for i in np.flatnonzero(entries != NOT_FOUND).tolist():
                slot, low = int(entries[i]) >> _WINDOW_BITS, int(entries[i]) & _WINDOW_MASK
                # the held window with this number mod 256 (they are all near now)
                number = current + ((low - current + 128) & _WINDOW_MASK) - 128
                if abs(number - current) > self.drift or not self._active[slot]:
                    continue
                following = group.windows.get(number + 1)
                next_eid = int(following.eids[slot]) if following is not None else 0
                valid_until = float((number + 1 + self.drift) * size)  # drifting clocks
                results.append(
                    Resolution(
                        eid=wanted[i],
                        install=int(self._installs[slot]),
                        valid_until=valid_until,
                        next_eid=f"{next_eid:016x}" if next_eid else None,
                        next_valid_until=valid_until + size if next_eid else None,
                    )
                )
        return results

    @property
    def nbytes(self) -> int:
        """Bytes held in the table's arrays (all of its bulk)."""
        held = self._installs.nbytes + self._active.nbytes + self._slot_of.nbytes
        for group in self._groups.values():
            held += group.slots.nbytes + group.keys.nbytes + group.temporary.nbytes
            held += group.index.nbytes + sum(w.eids.nbytes for w in group.windows.values())
        return int(held)
