"""RSSI smoothing and the path-loss distance model.

The filter is ESPresense's, which held up in the field better than the laggy
1-Euro and Kalman variants: over a sliding time window, the mean of the
samples inside Tukey's fences (Q1 - 1.5 IQR, Q3 + 1.5 IQR). Outliers (a body
in the way, a reflection) fall outside the fences; missing packets just leave
fewer samples in the window.
"""

from __future__ import annotations

from collections import deque

TUKEY_K = 1.5


def rssi_to_distance(rssi: float, measured_power_dbm: float, path_loss_exponent: float) -> float:
    """Log-distance path loss: metres at which the RSSI at 1 m decays to ``rssi``."""
    return float(10.0 ** ((measured_power_dbm - rssi) / (10.0 * path_loss_exponent)))


def fenced_mean(values: list[float]) -> float:
    """Mean of the values inside Tukey's fences (all of them when fewer than four)."""
    count = len(values)
    if count < 4:
        return sum(values) / count
    ordered = sorted(values)
    q1 = ordered[count // 4]
    q3 = ordered[(3 * count) // 4]
    spread = TUKEY_K * (q3 - q1)
    low, high = q1 - spread, q3 + spread
    kept = [v for v in ordered if low <= v <= high]
    return sum(kept) / len(kept)


class RssiWindow:
    """Samples of one transmitter at one receiver over the last ``window_s`` seconds."""

    __slots__ = ("_samples", "last_ts", "window_s")

    def __init__(self, window_s: float, max_samples: int = 32) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)
        self.last_ts = float("-inf")

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, ts: float, rssi: float) -> float:
        """Add a sample and return the smoothed RSSI."""
        samples = self._samples
        samples.append((ts, rssi))
        self.last_ts = max(self.last_ts, ts)
        horizon = self.last_ts - self.window_s
        while samples[0][0] < horizon:
            samples.popleft()
        return fenced_mean([value for _, value in samples])
