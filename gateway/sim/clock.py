"""Store time for a store day replayed faster than real time.

``nahfeld demo`` plays a day of opening hours in minutes through the real
parts: the gateways and the cloud worker read this clock instead of the
machine's, so presence, dwell thresholds, EID windows, offer expiry and daily
caps all happen in store time, consistently on both sides.

Store time is how far the simulated radio has got (:meth:`reach`, called as
each advert is handed over), not machine time times the speed: a feed that
falls behind its pace for a moment (at 300x, 10 ms of a busy machine is three
store seconds) holds store time back with it, as a real radio's adverts and
the real clock never part. Otherwise a gateway's housekeeping, ahead of the
adverts, would see present phones as gone. The pace is kept separately
(:meth:`real_seconds_until`). Wall and monotonic readings move together, also
across :meth:`skip_to` (the night between two days), so a gateway sees no
clock step.
"""

from __future__ import annotations

import time


class SimulatedClock:
    __slots__ = ("_now", "_paced_from", "_real_origin", "speed", "start")

    def __init__(self, start: float, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.start = start
        self.speed = speed
        self._now = start
        self._paced_from = start  # store time when the pace was last set
        self._real_origin: float | None = None  # the machine's monotonic reading then

    def time(self) -> float:
        """Store time (unix seconds)."""
        return self._now

    def monotonic(self) -> float:
        """Store seconds since ``start``: the simulation's monotonic clock."""
        return self._now - self.start

    def reach(self, unix: float) -> None:
        """The simulation has got to ``unix`` (store time never goes back)."""
        self._now = max(self._now, unix)

    def real_seconds_until(self, unix: float) -> float:
        """How long the machine waits until the pace reaches ``unix``; negative when the
        feed is behind. The pace starts at the first call."""
        now_real = time.monotonic()
        if self._real_origin is None:
            self._real_origin, self._paced_from = now_real, self._now
        return (unix - self._paced_from) / self.speed - (now_real - self._real_origin)

    def skip_to(self, unix: float) -> None:
        """Jump to ``unix`` at once (the night: nothing happens) and pace on from there."""
        self.reach(unix)
        self._real_origin, self._paced_from = time.monotonic(), self._now
