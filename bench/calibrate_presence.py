"""Calibrate and score presence tracking on real phone-to-phone RSSI at known distances.

Data: the Herald project's RSSI-distance recordings (Apache-2.0), read from
``../shared/data/rssi-distance-herald`` beside the repository (never copied
into it); the script skips cleanly when they are absent. Each recording
holds a phone at a series of fixed distances.

What it reports, every figure with a reference from the same run:

1. the path-loss fit (RSSI at 1 m, exponent n) on all data, and the
   defaults to ship;
2. per-distance median distance error, raw single samples vs the tracker's
   smoothing — with the model fitted leave-one-recording-out, so no figure
   is fitted on its own test data;
3. "within 1 m" / "within 2 m" accuracy (and balanced accuracy) of the
   tracker's zone state vs a naive raw-RSSI threshold;
4. flaps (enter/exit toggles while the phone stands still) per hour;
5. a coarse sweep of the tracker's timing parameters.

    python bench/calibrate_presence.py [--data DIR] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from gateway.presence.events import Observation
from gateway.presence.filters import RssiWindow, rssi_to_distance
from gateway.presence.zones import PresenceTracker, TrackerParams, ZoneSpec

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "rssi-distance-herald"
BUCKETS = ((0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 3.01))
EXIT_MARGIN_M = 1.0


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of samples with the phone standing at one distance."""

    recording: str
    distance_m: float
    samples: tuple[tuple[float, float], ...]  # (unix seconds, rssi)


@dataclass(frozen=True, slots=True)
class Model:
    power_1m: float
    exponent: float


def load(data: Path, quick: bool) -> list[Segment]:
    files = sorted(data.glob("2021*-?.csv"))
    if quick:
        files = files[:1]
    segments: list[Segment] = []
    for path in files:
        rows: list[tuple[float, float, float]] = []
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                ts = datetime.strptime(row["time"], "%Y-%m-%d %H:%M:%S").timestamp()
                rows.append((ts, float(row["rssi"]), float(row["distance"]) / 100.0))
        for distance, group in itertools.groupby(rows, key=lambda r: r[2]):
            samples = tuple((ts, rssi) for ts, rssi, _ in group)
            segments.append(Segment(path.stem, distance, samples))
    return segments


def fit(segments: Iterable[Segment]) -> Model:
    """Least squares of rssi = P1m - 10 n log10(d) over every sample with d > 0."""
    xs: list[float] = []
    ys: list[float] = []
    for segment in segments:
        if segment.distance_m <= 0:
            continue
        x = -10.0 * math.log10(segment.distance_m)
        for _, rssi in segment.samples:
            xs.append(x)
            ys.append(rssi)
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    var_x = sum((x - mean_x) ** 2 for x in xs)
    exponent = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var_x
    return Model(mean_y - exponent * mean_x, exponent)


def smoothed_distances(segment: Segment, model: Model, params: TrackerParams) -> list[float]:
    window = RssiWindow(params.smoothing_window_s, params.max_samples)
    return [
        rssi_to_distance(window.add(ts, rssi), model.power_1m, model.exponent)
        for ts, rssi in segment.samples
    ]


def raw_distances(segment: Segment, model: Model) -> list[float]:
    return [rssi_to_distance(r, model.power_1m, model.exponent) for _, r in segment.samples]


@dataclass(slots=True)
class Confusion:
    tp: int = 0
    tn: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, predicted: bool, truth: bool) -> None:
        if predicted and truth:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif truth:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def accuracy(self) -> float:
        total = self.tp + self.tn + self.fp + self.fn
        return (self.tp + self.tn) / total if total else math.nan

    @property
    def balanced(self) -> float:
        tpr = self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan
        tnr = self.tn / (self.tn + self.fp) if self.tn + self.fp else math.nan
        return (tpr + tnr) / 2


@dataclass(slots=True)
class ZoneScore:
    confusion: Confusion
    flaps: int
    hours: float


def tracker_states(
    segment: Segment, model: Model, params: TrackerParams, radius: float, margin: float
) -> tuple[list[bool], int]:
    """The tracker's inside/outside state after each sample, and its flaps in the segment."""
    zone = ZoneSpec("zone", "gw", radius, radius + margin, model.power_1m, model.exponent)
    tracker = PresenceTracker("store", [zone], params)
    inside = False
    states: list[bool] = []
    changes = 0
    for ts, rssi in segment.samples:
        for event in tracker.observe(Observation(ts, "gw", "phone", rssi)):
            if event.type in ("enter", "exit"):
                inside = event.type == "enter"
                changes += 1
        states.append(inside)
    return states, flaps(changes, segment.distance_m <= radius)


def naive_states(segment: Segment, model: Model, radius: float) -> tuple[list[bool], int]:
    states = [d <= radius for d in raw_distances(segment, model)]
    changes = sum(1 for a, b in itertools.pairwise([False, *states]) if a != b)
    return states, flaps(changes, segment.distance_m <= radius)


def flaps(changes: int, truly_inside: bool) -> int:
    """State changes beyond the one a phone standing inside the zone needs (its first enter)."""
    return max(0, changes - 1) if truly_inside else changes


def score(
    segments: Sequence[Segment],
    models: dict[str, Model],
    radius: float,
    params: TrackerParams | None,
    margin: float = EXIT_MARGIN_M,
    settle_s: float = 0.0,
) -> ZoneScore:
    """Tracker (``params``) or naive threshold (``None``) against the truth, per sample.

    Samples in the first ``settle_s`` of a segment are not scored: every
    segment starts a fresh tracker, as if the phone had just arrived.
    """
    result = ZoneScore(Confusion(), 0, 0.0)
    for segment in segments:
        model = models[segment.recording]
        if params is None:
            states, segment_flaps = naive_states(segment, model, radius)
        else:
            states, segment_flaps = tracker_states(segment, model, params, radius, margin)
        truth = segment.distance_m <= radius
        first = segment.samples[0][0]
        for (ts, _), state in zip(segment.samples, states, strict=True):
            if ts - first >= settle_s:
                result.confusion.add(state, truth)
        result.flaps += segment_flaps
        result.hours += (segment.samples[-1][0] - segment.samples[0][0]) / 3600.0
    return result


def leave_one_out_models(segments: Sequence[Segment]) -> dict[str, Model]:
    recordings = sorted({s.recording for s in segments})
    if len(recordings) == 1:
        return {recordings[0]: fit(segments)}
    return {r: fit(s for s in segments if s.recording != r) for r in recordings}


def distance_errors(
    segments: Sequence[Segment], models: dict[str, Model], params: TrackerParams
) -> list[tuple[str, int, float, float]]:
    rows = []
    for low, high in BUCKETS:
        raw: list[float] = []
        smooth: list[float] = []
        for segment in segments:
            if not low < segment.distance_m <= high and not (low == 0 < segment.distance_m <= high):
                continue
            model = models[segment.recording]
            raw += [abs(d - segment.distance_m) for d in raw_distances(segment, model)]
            smoothed = smoothed_distances(segment, model, params)
            smooth += [abs(d - segment.distance_m) for d in smoothed]
        if raw:
            label = f"{low:.1f}-{min(high, 3.0):.1f} m"
            rows.append((label, len(raw), statistics.median(raw), statistics.median(smooth)))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true", help="one recording, small sweep")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"skipped: data not found at {args.data}")
        return 0
    started = time.perf_counter()
    segments = load(args.data, args.quick)
    defaults = TrackerParams()
    samples = sum(len(s.samples) for s in segments)
    recordings = sorted({s.recording for s in segments})
    print(
        "# Presence calibration on Herald phone-to-phone RSSI (python bench/calibrate_presence.py)"
    )
    print(f"{samples} samples, {len(segments)} stationary segments, {len(recordings)} recordings\n")

    overall = fit(segments)
    print("## Path-loss fit, all data")
    print(f"RSSI at 1 m = {overall.power_1m:.1f} dBm, exponent n = {overall.exponent:.2f}")
    print(
        f"ship: measured_power_dbm = {round(overall.power_1m)}, path_loss_exponent = "
        f"{max(1.0, round(overall.exponent, 1)):.1f}\n"
    )
    models = leave_one_out_models(segments)
    for recording, model in models.items():
        print(f"  fit without {recording}: {model.power_1m:.1f} dBm, n = {model.exponent:.2f}")

    print("\n## Median distance error (m), model fitted leave-one-recording-out")
    print(f"{'true distance':<14} {'samples':>8} {'raw sample':>11} {'smoothed':>9}")
    for label, count, raw, smooth in distance_errors(segments, models, defaults):
        print(f"{label:<14} {count:>8} {raw:>11.2f} {smooth:>9.2f}")

    print("\n## Zone state vs truth, per sample (current defaults)")
    print("scored: every sample / only after the first 60 s at a spot (the tracker has settled)")
    print(
        f"{'zone':<6} {'method':<26} {'accuracy':>8} {'balanced':>8} "
        f"{'acc@60s':>8} {'bal@60s':>8} {'flaps':>6} {'flaps/h':>8}"
    )
    for radius in (1.0, 2.0):
        for name, params in (("naive raw-RSSI threshold", None), ("nahfeld tracker", defaults)):
            result = score(segments, models, radius, params)
            settled = score(segments, models, radius, params, settle_s=60.0)
            print(
                f"{f'{radius:.0f} m':<6} {name:<26} {result.confusion.accuracy:>8.3f} "
                f"{result.confusion.balanced:>8.3f} {settled.confusion.accuracy:>8.3f} "
                f"{settled.confusion.balanced:>8.3f} {result.flaps:>6} "
                f"{result.flaps / result.hours:>8.1f}"
            )

    print("\n## Sweep of timing parameters (2 m zone; by balanced accuracy, then flaps)")
    windows = (5.0, 10.0) if args.quick else (5.0, 10.0, 20.0)
    candidates = []
    for window, enter_after, exit_after, margin in itertools.product(
        windows, (0.0, 2.0), (3.0, 6.0, 12.0), (0.5, 1.0, 1.5)
    ):
        params = replace(
            defaults, smoothing_window_s=window, enter_after_s=enter_after, exit_after_s=exit_after
        )
        result = score(segments, models, 2.0, params, margin)
        candidates.append((result.confusion.balanced, -result.flaps, params, margin, result))
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    print(f"{'window':>6} {'enter':>6} {'exit':>5} {'margin':>6} {'balanced':>8} {'flaps':>6}")
    for balanced, _, params, margin, result in candidates[:5]:
        print(
            f"{params.smoothing_window_s:>6.0f} {params.enter_after_s:>6.0f} "
            f"{params.exit_after_s:>5.0f} {margin:>6.1f} {balanced:>8.3f} {result.flaps:>6}"
        )
    print(
        f"current defaults: window {defaults.smoothing_window_s:.0f} s, enter after "
        f"{defaults.enter_after_s:.0f} s, exit after {defaults.exit_after_s:.0f} s, "
        f"margin {EXIT_MARGIN_M} m"
    )
    print(f"\n(done in {time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
