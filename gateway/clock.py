"""Noticing when the wall clock steps.

Events, EID windows and offers are about the real time of day, so the
gateway works in wall time. Normally it advances with the monotonic clock,
NTP slewing included; a step of the wall clock — NTP setting the time after a
Raspberry Pi booted without a real-time clock, an operator's ``date -s`` —
shows as the difference between the two changing at once. The presence state
built on the old time then means nothing on the new one, so the daemon closes
it (checked before each advert and every second) and starts over on the new time. Pure: no clock
of its own, the caller passes both readings.
"""

from __future__ import annotations

#: wall clock steps smaller than this are taken as jitter between the two readings
STEP_TOLERANCE_S = 2.0


class ClockStepDetector:
    __slots__ = ("_offset", "steps", "tolerance_s")

    def __init__(self, tolerance_s: float = STEP_TOLERANCE_S) -> None:
        self.tolerance_s = tolerance_s
        self._offset: float | None = None
        self.steps = 0

    def step(self, unix: float, monotonic: float) -> float | None:
        """The size of the wall clock's step since the last reading (signed, seconds), or
        ``None`` when it kept pace with the monotonic clock."""
        offset = unix - monotonic
        previous, self._offset = self._offset, offset
        if previous is None or abs(offset - previous) <= self.tolerance_s:
            return None
        self.steps += 1
        return offset - previous
