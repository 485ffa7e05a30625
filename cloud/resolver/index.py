"""A hash index from 64-bit EIDs to install slots, in two flat numpy arrays.

A Python dict of a million EIDs costs ~100 bytes an entry; this costs 24 at
half load. EIDs are AES output, uniformly random, so their low bits are the
hash as they are. Open addressing with linear probing: a lookup is one probe
almost always, and a batch of a gateway's EIDs is looked up in a few vector
operations.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
NOT_FOUND = -1
_EMPTY = np.uint64(0)  # a zero EID (odds 2^-64) is kept aside in ``_zero``
_MAX_LOAD = 0.75


def _capacity(n: int) -> int:
    """The power of two that keeps ``n`` entries at or under half load."""
    return 1 << max(4, (2 * n - 1).bit_length())


class EidIndex:
    """EID (as uint64) → slot (int ≥ 0). Built in bulk, grown one insert at a time."""

    __slots__ = ("_count", "_keys", "_mask", "_slots", "_zero")

    def __init__(self, capacity: int = 16) -> None:
        capacity = _capacity(capacity // 2)
        self._keys: U64 = np.zeros(capacity, dtype=np.uint64)
        self._slots: I64 = np.full(capacity, NOT_FOUND, dtype=np.int64)
        self._mask = capacity - 1
        self._count = 0
        self._zero = NOT_FOUND

    @classmethod
    def build(cls, eids: U64, slots: I64) -> EidIndex:
        """An index of ``eids[i] → slots[i]``; on a repeated EID the first one wins."""
        index = cls(_capacity(len(eids)))
        index._insert_many(eids, slots)
        return index

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return int(self._keys.nbytes + self._slots.nbytes)

    def _insert_many(self, eids: U64, slots: I64) -> None:
        zero = np.flatnonzero(eids == _EMPTY)
        if zero.size and self._zero == NOT_FOUND:
            self._zero = int(slots[zero[0]])
            self._count += 1
        pending = np.flatnonzero(eids != _EMPTY)
        position = (eids[pending] & np.uint64(self._mask)).astype(np.int64)
        keys, mask = self._keys, self._mask
        while pending.size:
            here = keys[position]
            duplicate = here == eids[pending]
            free = here == _EMPTY
            # among the keys aiming at the same free cell, the first takes it
            cells, first = np.unique(position[free], return_index=True)
            winners = np.flatnonzero(free)[first]
            keys[cells] = eids[pending[winners]]
            self._slots[cells] = slots[pending[winners]]
            self._count += len(winners)
            done = duplicate.copy()
            done[winners] = True
            # a cell held by another key: probe the next; a cell lost in a tie: look again
            position[~free] = (position[~free] + 1) & mask
            pending, position = pending[~done], position[~done]

    def upsert_many(self, keys: U64, slots: I64) -> None:
        """Set ``keys[i] → slots[i]``: new keys are added, present ones get the new slot."""
        present = self.lookup_many(keys) != NOT_FOUND
        for key, slot in zip(keys[present].tolist(), slots[present].tolist(), strict=True):
            self._replace(key, slot)
        fresh_keys, fresh_slots = keys[~present], slots[~present]
        if self._count + len(fresh_keys) > _MAX_LOAD * len(self._keys):
            self._resize(_capacity(self._count + len(fresh_keys)))
        self._insert_many(fresh_keys, fresh_slots)

    def _replace(self, key: int, slot: int) -> None:
        if key == 0:
            self._zero = slot
            return
        position = key & self._mask
        while int(self._keys[position]) != key:
            position = (position + 1) & self._mask
        self._slots[position] = slot

    def _resize(self, capacity: int) -> None:
        used = np.flatnonzero(self._keys != _EMPTY)
        keys, slots, zero = self._keys[used], self._slots[used], self._zero
        self._keys = np.zeros(capacity, dtype=np.uint64)
        self._slots = np.full(capacity, NOT_FOUND, dtype=np.int64)
        self._mask, self._count, self._zero = capacity - 1, 0, NOT_FOUND
        self._insert_many(keys, slots)
        if zero != NOT_FOUND:
            self._zero, self._count = zero, self._count + 1

    def get(self, key: int) -> int:
        """The slot of one key, ``NOT_FOUND`` when absent."""
        return int(self.lookup_many(np.array([key], dtype=np.uint64))[0])

    def lookup_many(self, eids: U64) -> I64:
        """The slot of each EID, ``NOT_FOUND`` (-1) for the unknown ones."""
        found = np.full(len(eids), NOT_FOUND, dtype=np.int64)
        found[eids == _EMPTY] = self._zero
        active = np.flatnonzero(eids != _EMPTY)
        position = (eids[active] & np.uint64(self._mask)).astype(np.int64)
        while active.size:
            here = self._keys[position]
            hit = here == eids[active]
            found[active[hit]] = self._slots[position[hit]]
            going = ~hit & (here != _EMPTY)
            active, position = active[going], (position[going] + 1) & self._mask
        return found
