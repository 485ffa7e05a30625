"""Calibrate and score presence tracking on real phone-to-phone RSSI at known distances.

Why: the path-loss defaults and the tracker's timing decide whether a zone
says "inside" when a shopper is inside, and whether it flaps while they stand
still. Those defaults should come from measurements, with every figure next
to a naive baseline and scored on data it was not fitted on.

Data: the Herald project's RSSI-distance recordings (Apache-2.0), read from
``../shared/data/rssi-distance-herald`` beside the repository (never copied
into it; ``--data DIR`` points elsewhere). A robot moves one phone away from
the other in fixed steps and holds it still at each distance; every
contiguous run of one distance is a stationary segment. The distance-0
segments (the rest position after a test) are left out of everything: the
model cannot take log(0) and they are not part of the designed sweep.

Report (every model is made without the recording it is scored on):

1. path-loss fit rssi = P1m - 10 n log10(d) by least squares on all samples,
   leave-one-recording-out; and an alternative P1m, the smoothed RSSI that
   best separates "within 1 m" (the zone boundary is what a store sees);
2. median distance error per distance bucket, raw sample vs smoothed;
3. within-1 m / within-2 m accuracy and balanced accuracy: smoothed estimate
   and the tracker's zone state vs a naive raw-RSSI threshold;
4. enter/exit toggles while the phone stands still, tracker vs naive;
5. a sweep of TrackerParams by balanced accuracy of the 2 m zone state, with
   the pick itself checked leave-one-recording-out; then the defaults the
   figures support.

    python bench/calibrate_presence.py            # full run (well under a minute)
    python bench/calibrate_presence.py --quick    # one recording, small sweep (smoke test)
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import os
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from gateway.presence.events import Observation
from gateway.presence.filters import RssiWindow, rssi_to_distance
from gateway.presence.zones import PresenceTracker, TrackerParams, ZoneSpec

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "rssi-distance-herald"
)
COMMAND = "python bench/calibrate_presence.py"
#: (low, high]: the first bucket takes the 0.1 m samples
BUCKETS = ((0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 3.0))
RADII = (1.0, 2.0)
#: gateway/layout.py Defaults.exit_margin_m: exit radius = enter radius + margin
DEFAULT_EXIT_MARGIN_M = 1.0
SWEEP_RADIUS_M = 2.0
#: a swept timing replaces a default only when it gains this much held-out balanced accuracy
MIN_GAIN = 0.01
GATEWAY = "gw"
DEVICE = "phone"


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of samples with the phone standing still at one distance."""

    recording: str
    distance_m: float
    timestamps: tuple[float, ...]
    rssi: tuple[float, ...]
    observations: tuple[Observation, ...]

    @property
    def hours(self) -> float:
        return (self.timestamps[-1] - self.timestamps[0]) / 3600.0


@dataclass(frozen=True, slots=True)
class Model:
    """The log-distance path-loss model: RSSI at 1 m and exponent n."""

    power_1m: float
    exponent: float

    def rssi_at(self, distance_m: float) -> float:
        return self.power_1m - 10.0 * self.exponent * math.log10(distance_m)

    def distance(self, rssi: float) -> float:
        return rssi_to_distance(rssi, self.power_1m, self.exponent)


@dataclass(slots=True)
class Tally:
    """Per-sample confusion of an inside/outside state against the truth, plus its toggles.

    ``flaps`` are the toggles beyond the single enter a phone that really is
    inside needs when it arrives (every segment starts from "outside");
    ``timeouts`` are exits because the zone was not judged for ``exit_timeout_s``.
    """

    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0
    toggles: int = 0
    flaps: int = 0
    timeouts: int = 0
    segments: int = 0
    hours: float = 0.0

    def __iadd__(self, other: Tally) -> Tally:
        self.tp += other.tp
        self.fn += other.fn
        self.fp += other.fp
        self.tn += other.tn
        self.toggles += other.toggles
        self.flaps += other.flaps
        self.timeouts += other.timeouts
        self.segments += other.segments
        self.hours += other.hours
        return self

    def add_segment(
        self, truth: bool, samples: int, inside: int, toggles: int, hours: float
    ) -> None:
        if truth:
            self.tp += inside
            self.fn += samples - inside
        else:
            self.fp += inside
            self.tn += samples - inside
        self.toggles += toggles
        self.flaps += max(0, toggles - 1) if truth else toggles
        self.segments += 1
        self.hours += hours

    @property
    def accuracy(self) -> float:
        total = self.tp + self.fn + self.fp + self.tn
        return (self.tp + self.tn) / total if total else math.nan

    @property
    def tpr(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def tnr(self) -> float:
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else math.nan

    @property
    def balanced(self) -> float:
        """Mean of the two recalls: a classifier that always says "outside" scores 0.5."""
        return (self.tpr + self.tnr) / 2.0

    @property
    def prevalence(self) -> float:
        total = self.tp + self.fn + self.fp + self.tn
        return (self.tp + self.fn) / total if total else math.nan


def total(tallies: Iterable[Tally]) -> Tally:
    out = Tally()
    for tally in tallies:
        out += tally
    return out


# --- loading ---------------------------------------------------------------


def parse_time(text: str) -> float:
    """CSV wall-clock time as seconds; read as UTC so the result does not depend on the host."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def read_recording(path: Path) -> tuple[list[Segment], int]:
    """Stationary segments of one recording, and how many distance-0 samples were left out."""
    rows: list[tuple[float, float, float]] = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append((parse_time(row["time"]), float(row["rssi"]), float(row["distance"])))
    segments: list[Segment] = []
    skipped = 0
    for distance_cm, group in itertools.groupby(rows, key=lambda r: r[2]):
        run = list(group)
        if distance_cm <= 0:
            skipped += len(run)
            continue
        observations = tuple(Observation(ts, GATEWAY, DEVICE, rssi) for ts, rssi, _ in run)
        segments.append(
            Segment(
                path.stem,
                distance_cm / 100.0,
                tuple(ts for ts, _, _ in run),
                tuple(rssi for _, rssi, _ in run),
                observations,
            )
        )
    return segments, skipped


def recording_files(data: Path) -> list[Path]:
    return sorted(data.glob("2021*-[AB].csv"))


def phone_names(data: Path) -> dict[str, tuple[str, str]]:
    """Recording stem -> (phone that logged it, the phone it heard), from metadata.csv."""
    models: dict[str, str] = {}
    phones = data / "phones.csv"
    if phones.is_file():
        with phones.open(newline="") as handle:
            models = {row["name"]: row["model"] for row in csv.DictReader(handle)}
    out: dict[str, tuple[str, str]] = {}
    metadata = data / "metadata.csv"
    if not metadata.is_file():
        return out
    with metadata.open(newline="") as handle:
        for row in csv.DictReader(handle):
            a, b = row["phoneaname"], row["phonebname"]
            a_model, b_model = models.get(a, a), models.get(b, b)
            if row["filenamephonea"]:
                out[Path(row["filenamephonea"]).stem] = (a_model, b_model)
            if row["filenamephoneb"]:
                out[Path(row["filenamephoneb"]).stem] = (b_model, a_model)
    return out


# --- path-loss fit ------------------------------------------------------------


def fit(segments: Iterable[Segment]) -> Model:
    """Ordinary least squares of rssi on x = -10 log10(d): the slope is n, the intercept P1m."""
    count = 0
    sum_x = sum_y = sum_xx = sum_xy = 0.0
    for segment in segments:
        x = -10.0 * math.log10(segment.distance_m)
        k = len(segment.rssi)
        s = sum(segment.rssi)
        count += k
        sum_x += k * x
        sum_xx += k * x * x
        sum_y += s
        sum_xy += x * s
    mean_x, mean_y = sum_x / count, sum_y / count
    exponent = (sum_xy - count * mean_x * mean_y) / (sum_xx - count * mean_x * mean_x)
    return Model(mean_y - exponent * mean_x, exponent)


def fit_segment_medians(segments: Iterable[Segment]) -> Model:
    """The same fit with one point per segment (its median): no recording outweighs another."""
    points = [
        Segment(s.recording, s.distance_m, s.timestamps[:1], (statistics.median(s.rssi),), ())
        for s in segments
    ]
    return fit(points)


def rmse_db(segments: Iterable[Segment], model: Model) -> float:
    squares = [
        (rssi - model.rssi_at(segment.distance_m)) ** 2
        for segment in segments
        for rssi in segment.rssi
    ]
    return math.sqrt(statistics.fmean(squares))


def r_squared(segments: Sequence[Segment], model: Model) -> float:
    values = [rssi for segment in segments for rssi in segment.rssi]
    mean = statistics.fmean(values)
    total_ss = sum((v - mean) ** 2 for v in values)
    residual_ss = sum(
        (rssi - model.rssi_at(segment.distance_m)) ** 2
        for segment in segments
        for rssi in segment.rssi
    )
    return 1.0 - residual_ss / total_ss


def held_out_models(segments: Sequence[Segment], recordings: Sequence[str]) -> dict[str, Model]:
    """For each recording, the model fitted on every other one (in-sample when there is one)."""
    if len(recordings) == 1:
        return {recordings[0]: fit(segments)}
    return {r: fit(s for s in segments if s.recording != r) for r in recordings}


# --- estimates and states -----------------------------------------------------


def smoothed_rssi(segment: Segment, params: TrackerParams) -> list[float]:
    """The tracker's smoothed RSSI after each sample, fresh window per segment."""
    window = RssiWindow(params.smoothing_window_s, params.max_samples)
    return [window.add(ts, rssi) for ts, rssi in zip(segment.timestamps, segment.rssi, strict=True)]


def starved(segment: Segment, params: TrackerParams) -> int:
    """Samples after which the tracker's window is below min_samples, so it judges nothing.

    A fresh RssiWindow sees what the tracker's does: a gap longer than
    exit_timeout_s drops the tracker's signal, but it also empties a window
    shorter than that timeout.
    """
    window = RssiWindow(params.smoothing_window_s, params.max_samples)
    count = 0
    for ts, rssi in zip(segment.timestamps, segment.rssi, strict=True):
        window.add(ts, rssi)
        count += len(window) < params.min_samples
    return count


def threshold_tally(
    segment: Segment, signal: Sequence[float], threshold_dbm: float, radius: float
) -> Tally:
    """A stateless classifier "inside iff signal >= threshold", with its toggles."""
    states = [value >= threshold_dbm for value in signal]
    toggles = sum(1 for a, b in pairwise([False, *states]) if a != b)
    tally = Tally()
    tally.add_segment(
        segment.distance_m <= radius, len(states), sum(states), toggles, segment.hours
    )
    return tally


def tracker_tallies(
    segment: Segment, model: Model, params: TrackerParams, zones: Sequence[tuple[float, float]]
) -> list[Tally]:
    """Run a fresh PresenceTracker over one segment, one ZoneSpec per (radius, exit margin).

    The zones share one tracker (and so one smoothing window), which is the
    same as running them apart: zone memberships never read each other;
    ``check_shared_zones`` verifies that on every run. No flush at the end:
    the exits it would add are not flaps.
    """
    specs = [
        ZoneSpec(f"z{i}", GATEWAY, radius, radius + margin, model.power_1m, model.exponent)
        for i, (radius, margin) in enumerate(zones)
    ]
    tracker = PresenceTracker("bench", specs, params)
    index = {spec.id: i for i, spec in enumerate(specs)}
    inside = [False] * len(specs)
    inside_samples = [0] * len(specs)
    toggles = [0] * len(specs)
    timeouts = [0] * len(specs)
    for obs in segment.observations:
        for event in tracker.observe(obs):
            if event.type == "dwell":
                continue
            i = index[event.zone]
            inside[i] = event.type == "enter"
            toggles[i] += 1
            if event.type == "exit" and event.distance_m is None:
                timeouts[i] += 1
        for i, state in enumerate(inside):
            inside_samples[i] += state
    tallies = []
    for i, (radius, _) in enumerate(zones):
        tally = Tally(timeouts=timeouts[i])
        tally.add_segment(
            segment.distance_m <= radius,
            len(segment.observations),
            inside_samples[i],
            toggles[i],
            segment.hours,
        )
        tallies.append(tally)
    return tallies


def check_shared_zones(segments: Sequence[Segment], models: dict[str, Model]) -> None:
    """Zones sharing one tracker score exactly as one tracker per zone: the sweep relies on it."""
    params = TrackerParams()
    zones = [(r, m) for r in RADII for m in (0.5, 1.0)]
    for segment in segments[:40]:
        model = models[segment.recording]
        shared = tracker_tallies(segment, model, params, zones)
        for zone, tally in zip(zones, shared, strict=True):
            alone = tracker_tallies(segment, model, params, [zone])[0]
            if alone != tally:
                raise RuntimeError(f"zones interfere: {segment.recording} {zone} {alone} {tally}")


# --- tuned thresholds ---------------------------------------------------------


def best_threshold(points: Sequence[tuple[float, bool]]) -> float:
    """The threshold t maximising balanced accuracy of "inside iff value >= t" on ``points``."""
    positives = sum(1 for _, truth in points if truth)
    negatives = len(points) - positives
    if not positives or not negatives:
        return -math.inf if positives else math.inf
    ordered = sorted(points, key=lambda p: p[0], reverse=True)
    best, best_score = math.inf, 0.5
    tp = fp = 0
    for i, (value, truth) in enumerate(ordered):
        tp += truth
        fp += not truth
        if i + 1 < len(ordered) and ordered[i + 1][0] == value:
            continue
        score = (tp / positives + (negatives - fp) / negatives) / 2.0
        if score > best_score:
            best, best_score = value, score
    return best


# --- the sweep ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    params: TrackerParams
    margin: float
    per_recording: dict[str, Tally] = field(compare=False)

    @property
    def pooled(self) -> Tally:
        return total(self.per_recording.values())


def rank_key(tally: Tally) -> tuple[float, int]:
    """Balanced accuracy to three decimals first (finer differences are noise), then fewer flaps."""
    balanced = tally.balanced
    return (-math.inf if math.isnan(balanced) else round(balanced, 3), -tally.flaps)


_WORK: tuple[list[Segment], dict[str, Model]] = ([], {})


def _init_worker(segments: list[Segment], models: dict[str, Model]) -> None:
    global _WORK  # noqa: PLW0603 - per-process data for the pool, sent once
    _WORK = (segments, models)


def evaluate(params: TrackerParams, margins: Sequence[float]) -> list[Candidate]:
    """One tracker run per segment scores every exit margin at once (one zone per margin)."""
    segments, models = _WORK
    zones = [(SWEEP_RADIUS_M, margin) for margin in margins]
    per_margin: list[dict[str, Tally]] = [{} for _ in margins]
    for segment in segments:
        tallies = tracker_tallies(segment, models[segment.recording], params, zones)
        for by_recording, tally in zip(per_margin, tallies, strict=True):
            by_recording.setdefault(segment.recording, Tally())
            by_recording[segment.recording] += tally
    return [Candidate(params, m, r) for m, r in zip(margins, per_margin, strict=True)]


def _evaluate_star(args: tuple[TrackerParams, tuple[float, ...]]) -> list[Candidate]:
    return evaluate(*args)


def sweep(
    segments: list[Segment],
    models: dict[str, Model],
    grid: Sequence[TrackerParams],
    margins: tuple[float, ...],
) -> list[Candidate]:
    """Every candidate on every segment; over processes when there is more than one CPU."""
    jobs = [(params, margins) for params in grid]
    workers = min(os.cpu_count() or 1, 8)
    if workers == 1 or len(jobs) < 8:
        _init_worker(segments, models)
        results = [_evaluate_star(job) for job in jobs]
    else:
        with ProcessPoolExecutor(
            workers, initializer=_init_worker, initargs=(segments, models)
        ) as pool:
            results = list(
                pool.map(_evaluate_star, jobs, chunksize=max(1, len(jobs) // (4 * workers)))
            )
    return [candidate for batch in results for candidate in batch]


def sweep_grid(
    defaults: TrackerParams, quick: bool
) -> tuple[list[TrackerParams], tuple[float, ...]]:
    """The grid asked for; --quick keeps a corner of it so the smoke test stays fast."""
    windows: tuple[float, ...]
    mins: tuple[int, ...]
    enters: tuple[float, ...]
    exits: tuple[float, ...]
    if quick:
        windows, mins, enters, exits = (5.0, 10.0), (1, 3), (0.0, 2.0), (3.0, 6.0)
    else:
        windows, mins, enters, exits = (
            (5.0, 10.0, 15.0, 20.0),
            (1, 3, 5),
            (0.0, 2.0, 4.0),
            (3.0, 6.0, 10.0),
        )
    grid = [
        replace(defaults, smoothing_window_s=w, min_samples=m, enter_after_s=e, exit_after_s=x)
        for w, m, e, x in itertools.product(windows, mins, enters, exits)
    ]
    return grid, (0.5, 1.0, 1.5)


# --- printing ---------------------------------------------------------------


def fmt(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) or math.isinf(value) else f"{value:.{digits}f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1) -> None:
    """Left-align the first ``left`` (label) columns, right-align the figures."""
    body = [list(row) for row in rows]
    widths = [max(len(c) for c in column) for column in zip(headers, *body, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            f"{c:<{w}}" if i < left else f"{c:>{w}}"
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in body:
        print(line(row))
    print()


def params_cells(params: TrackerParams, margin: float) -> list[str]:
    return [
        f"{params.smoothing_window_s:g}",
        str(params.min_samples),
        f"{params.enter_after_s:g}",
        f"{params.exit_after_s:g}",
        f"{margin:g}",
    ]


def rates(tally: Tally) -> list[str]:
    return [fmt(tally.accuracy), fmt(tally.balanced), fmt(tally.tpr), fmt(tally.tnr)]


def flap_cells(tally: Tally) -> list[str]:
    hours = tally.hours or math.nan
    segs = tally.segments or math.nan
    return [
        str(tally.toggles),
        fmt(tally.toggles / hours, 1),
        fmt(tally.toggles / segs, 2),
        str(tally.flaps),
        fmt(tally.flaps / hours, 1),
        fmt(tally.flaps / segs, 2),
    ]


# --- report sections ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Calibration:
    """A path-loss calibration scored honestly: for each recording, the model made without it."""

    name: str
    models: dict[str, Model]
    shipped: Model  # the same recipe on every recording: what would go into the defaults


def least_squares_calibration(
    segments: Sequence[Segment], recordings: Sequence[str]
) -> Calibration:
    return Calibration("least squares", held_out_models(segments, recordings), fit(segments))


def zone_calibration(
    segments: Sequence[Segment], smoothed: Sequence[list[float]], recordings: Sequence[str]
) -> Calibration:
    """P1m := the smoothed RSSI that best separates <= 1 m from > 1 m; n from least squares.

    Why: P1m is by definition the RSSI at 1 m, and the zone boundary is what a
    store cares about; least squares instead chases the mean RSSI over every
    distance, which recordings with many samples and a flat curve dominate.
    """

    def make(indices: Sequence[int]) -> Model:
        points = [(v, segments[i].distance_m <= 1.0) for i in indices for v in smoothed[i]]
        return Model(best_threshold(points), fit(segments[i] for i in indices).exponent)

    everything = range(len(segments))
    models = {
        r: make([i for i in everything if segments[i].recording != r] or list(everything))
        for r in recordings
    }
    return Calibration("zone cut at 1 m", models, make(list(everything)))


def report_data(
    data: Path, segments: Sequence[Segment], recordings: Sequence[str], skipped: int
) -> None:
    print("## Data")
    print(f"{data}")
    names = phone_names(data)
    rows = []
    for recording in recordings:
        own = [s for s in segments if s.recording == recording]
        gaps = [b - a for s in own for a, b in pairwise(s.timestamps)]
        logged_by, heard = names.get(recording, ("?", "?"))
        rows.append(
            [
                recording,
                logged_by,
                heard,
                str(sum(len(s.rssi) for s in own)),
                str(len(own)),
                f"{min(s.distance_m for s in own):.1f}-{max(s.distance_m for s in own):.1f}",
                fmt(sum(s.hours for s in own), 1),
                fmt(statistics.median(gaps), 0),
                fmt(statistics.quantiles(gaps, n=10)[-1], 0),
            ]
        )
    headers = ["recording", "this phone's log", "other phone", "samples", "segments", "metres"]
    table([*headers, "hours", "gap s", "gap s p90"], rows, left=3)
    print(f"distance-0 samples left out (rest position after the test): {skipped}")
    print("gap s: median and 90th percentile of the seconds between samples within a segment\n")


def report_fit(
    segments: Sequence[Segment],
    recordings: Sequence[str],
    least_squares: Calibration,
    zone: Calibration,
) -> None:
    overall = least_squares.shipped
    print("## 1. Path-loss fit  rssi = P1m - 10 n log10(d)")
    print(
        f"all samples, least squares: P1m = {overall.power_1m:.1f} dBm, n = {overall.exponent:.2f}"
        f"  (RMSE {rmse_db(segments, overall):.1f} dB, R^2 {r_squared(segments, overall):.2f})"
    )
    medians = fit_segment_medians(segments)
    print(
        f"check, one median per segment: P1m = {medians.power_1m:.1f} dBm,"
        f" n = {medians.exponent:.2f}"
    )
    print(
        f"least-squares defaults: measured_power_dbm = {round(overall.power_1m)}, "
        f"path_loss_exponent = {round(overall.exponent, 1):.1f}"
    )
    print(
        f"alternative, zone cut at 1 m (smoothed RSSI best separating <= 1 m, n from least"
        f" squares): P1m = {zone.shipped.power_1m:.1f} dBm -> measured_power_dbm ="
        f" {round(zone.shipped.power_1m)}, path_loss_exponent ="
        f" {round(zone.shipped.exponent, 1):.1f}\n"
    )
    in_sample = len(recordings) == 1
    title = "in-sample (--quick has one recording)" if in_sample else "leave-one-recording-out"
    print(f"### {title}: made without the recording, scored on it")
    rows = []
    for recording in recordings:
        model = least_squares.models[recording]
        own = [s for s in segments if s.recording == recording]
        errors = [abs(model.distance(r) - s.distance_m) for s in own for r in s.rssi]
        rows.append(
            [
                recording,
                f"{model.power_1m:.1f}",
                f"{model.exponent:.2f}",
                f"{rmse_db(own, model):.1f}",
                f"{rmse_db(own, fit(own)):.1f}",
                f"{statistics.median(errors):.2f}",
                f"{zone.models[recording].power_1m:.1f}",
            ]
        )
    headers = ["held out", "P1m dBm", "n", "RMSE dB", "own-fit RMSE", "median |err| m"]
    table([*headers, "zone-cut P1m"], rows)
    print("own-fit RMSE: the recording fitted on itself, the floor any single model could reach\n")


def report_distance(
    segments: Sequence[Segment],
    smoothed: Sequence[list[float]],
    calibrations: Sequence[Calibration],
    params: TrackerParams,
) -> None:
    print("## 2. Median |distance error| per true-distance bucket (held-out models), metres")
    print(
        f"smoothed: RssiWindow(window {params.smoothing_window_s:g} s, max {params.max_samples}"
        " samples), fresh per segment, samples in time order; est: median estimated distance"
    )
    rows = []
    for low, high in BUCKETS:
        picked = [i for i, s in enumerate(segments) if low < s.distance_m <= high + 1e-9]
        if not picked:
            continue
        row = [f"{max(low, 0.1):.1f}-{high:.1f} m", str(sum(len(segments[i].rssi) for i in picked))]
        for calibration in calibrations:
            raw: list[float] = []
            smooth: list[float] = []
            estimates: list[float] = []
            for i in picked:
                segment = segments[i]
                model = calibration.models[segment.recording]
                raw += [abs(model.distance(v) - segment.distance_m) for v in segment.rssi]
                for value in smoothed[i]:
                    estimates.append(model.distance(value))
                    smooth.append(abs(estimates[-1] - segment.distance_m))
            row += [
                f"{statistics.median(raw):.2f}",
                f"{statistics.median(smooth):.2f}",
                f"{statistics.median(estimates):.2f}",
            ]
        rows.append(row)
    headers = ["true distance", "samples"]
    for calibration in calibrations:
        short = "LS" if calibration.name == "least squares" else "zone-cut"
        headers += [f"{short} raw", f"{short} smoothed", f"{short} smoothed est"]
    table(headers, rows)


@dataclass(slots=True)
class ZoneScores:
    """Per radius and calibration: the naive threshold's and the tracker's tallies."""

    naive: dict[tuple[float, str], Tally] = field(default_factory=dict)
    tracker: dict[tuple[float, str], Tally] = field(default_factory=dict)
    by_recording: dict[tuple[float, str, str], Tally] = field(default_factory=dict)


def report_classification(
    segments: Sequence[Segment],
    smoothed: Sequence[list[float]],
    recordings: Sequence[str],
    calibrations: Sequence[Calibration],
    params: TrackerParams,
) -> ZoneScores:
    """Score the classifiers per sample; the flaps section reuses the tallies."""
    print("## 3. Within 1 m / within 2 m, per sample (held-out models)")
    print(
        "truth: true distance <= radius; balanced = (TPR + TNR) / 2, chance = 0.5;"
        f" tracker: current TrackerParams, exit radius = radius + {DEFAULT_EXIT_MARGIN_M:g} m"
    )
    scores = ZoneScores()
    rows = []
    zones = [(r, DEFAULT_EXIT_MARGIN_M) for r in RADII]
    for calibration in calibrations:
        tracked = [
            tracker_tallies(s, calibration.models[s.recording], params, zones) for s in segments
        ]
        for zone_index, radius in enumerate(RADII):
            naive, smooth, tracker = Tally(), Tally(), Tally()
            for i, segment in enumerate(segments):
                cut = calibration.models[segment.recording].rssi_at(radius)
                naive += threshold_tally(segment, segment.rssi, cut, radius)
                smooth += threshold_tally(segment, smoothed[i], cut, radius)
                tracker += tracked[i][zone_index]
                key = (radius, calibration.name, segment.recording)
                scores.by_recording.setdefault(key, Tally())
                scores.by_recording[key] += tracked[i][zone_index]
            scores.naive[radius, calibration.name] = naive
            scores.tracker[radius, calibration.name] = tracker
            for method, tally in (
                ("naive: raw sample distance <= radius", naive),
                ("smoothed distance <= radius", smooth),
                ("nahfeld tracker zone state", tracker),
            ):
                rows.append(
                    [
                        f"{radius:g} m",
                        calibration.name,
                        method,
                        fmt(tally.prevalence),
                        *rates(tally),
                    ]
                )
    thresholds: list[list[str]] = []
    for radius in RADII:
        tuned_raw, tuned_smooth = Tally(), Tally()
        for recording in recordings:
            own = [i for i, s in enumerate(segments) if s.recording == recording]
            others = [i for i, s in enumerate(segments) if s.recording != recording] or own
            raw_cut = best_threshold(
                [(v, segments[i].distance_m <= radius) for i in others for v in segments[i].rssi]
            )
            smooth_cut = best_threshold(
                [(v, segments[i].distance_m <= radius) for i in others for v in smoothed[i]]
            )
            thresholds.append(
                [
                    f"{radius:g} m",
                    recording,
                    *(fmt(c.models[recording].rssi_at(radius), 1) for c in calibrations),
                    fmt(raw_cut, 1),
                    fmt(smooth_cut, 1),
                ]
            )
            for i in own:
                segment = segments[i]
                tuned_raw += threshold_tally(segment, segment.rssi, raw_cut, radius)
                tuned_smooth += threshold_tally(segment, smoothed[i], smooth_cut, radius)
        for method, tally in (
            ("raw RSSI cut tuned on the others", tuned_raw),
            ("smoothed RSSI cut tuned on the others", tuned_smooth),
        ):
            rows.append(
                [f"{radius:g} m", "reference", method, fmt(tally.prevalence), *rates(tally)]
            )
    headers = ["zone", "calibration", "method", "inside share", "accuracy", "balanced"]
    table([*headers, "TPR", "TNR"], rows, left=3)
    print("### RSSI cut-off (dBm) at the zone radius per held-out recording")
    names = [f"{c.name} model" for c in calibrations]
    table(["zone", "held out", *names, "tuned raw", "tuned smoothed"], thresholds, left=2)
    print("### nahfeld tracker per recording (current TrackerParams): TPR / TNR")
    rows = []
    for recording in recordings:
        mine = [s for s in segments if s.recording == recording]
        gaps = [b - a for s in mine for a, b in pairwise(s.timestamps)]
        blind = sum(starved(s, params) for s in mine) / sum(len(s.rssi) for s in mine)
        row = [recording, fmt(statistics.median(gaps), 0), f"{100 * blind:.0f}"]
        for calibration in calibrations:
            for radius in RADII:
                tally = scores.by_recording[radius, calibration.name, recording]
                row.append(f"{fmt(tally.tpr, 2)} / {fmt(tally.tnr, 2)}")
        rows.append(row)
    headers = [f"{c.name}, {r:g} m" for c in calibrations for r in RADII]
    table(["recording", "gap s", "blind %", *headers], rows)
    print(
        f"blind: samples after which the window holds fewer than min_samples ({params.min_samples})"
        f" within {params.smoothing_window_s:g} s;\nthe tracker judges nothing on them"
        " (a phone just arrived stays outside) but they count as heard for exit_timeout_s\n"
    )
    return scores


def report_flaps(scores: ZoneScores, params: TrackerParams) -> None:
    print("## 4. Toggles while the phone stands still (fresh tracker per segment, no flush)")
    print(
        "toggles: every enter + exit; flaps: toggles beyond the one enter a phone truly inside"
        " needs when it arrives;\ntimeouts: exits because no sample was judged for exit_timeout_s"
        f" ({params.exit_timeout_s:g} s)"
    )
    rows = []
    for (radius, name), naive in scores.naive.items():
        tracker = scores.tracker[radius, name]
        label = f"{radius:g} m (exit {radius + DEFAULT_EXIT_MARGIN_M:g} m)"
        rows.append([label, name, "naive raw threshold", fmt(naive.hours, 1), *flap_cells(naive)])
        rows.append(
            [
                label,
                name,
                "nahfeld tracker",
                fmt(tracker.hours, 1),
                *flap_cells(tracker),
                str(tracker.timeouts),
            ]
        )
        rows[-2].append("-")
    headers = ["zone", "calibration", "method", "hours", "toggles", "/h", "/segment", "flaps"]
    table([*headers, "/h", "/segment", "timeouts"], rows, left=3)


def choose(
    candidates: Sequence[Candidate], current: Candidate, steady: bool, skip: str = ""
) -> Candidate:
    """Best by balanced accuracy then flaps, scored without ``skip``.

    ``steady`` keeps only candidates that flap no more than the current
    defaults: a zone that flickers costs more than a few points of accuracy.
    """

    def score(candidate: Candidate) -> Tally:
        return total(t for r, t in candidate.per_recording.items() if r != skip)

    pool = candidates
    if steady:
        limit = score(current).flaps
        pool = [c for c in candidates if score(c).flaps <= limit]
    return max(pool, key=lambda c: rank_key(score(c)))


def describe(candidate: Candidate) -> str:
    p = candidate.params
    return (
        f"{p.smoothing_window_s:g}/{p.min_samples}/{p.enter_after_s:g}/{p.exit_after_s:g}"
        f"/{candidate.margin:g}"
    )


def report_sweep(
    segments: list[Segment],
    recordings: Sequence[str],
    calibration: Calibration,
    defaults: TrackerParams,
    quick: bool,
) -> Candidate:
    """Sweep, print, and return the timing to recommend (the defaults unless clearly beaten)."""
    grid, margins = sweep_grid(defaults, quick)
    print(
        f"## 5. TrackerParams sweep: {len(grid) * len(margins)} candidates,"
        f" {SWEEP_RADIUS_M:g} m zone state vs truth, calibration: {calibration.name}"
    )
    print(
        "ranked by balanced accuracy (to 3 decimals), then fewer flaps; exit_timeout_s"
        f" {defaults.exit_timeout_s:g} s and max_samples {defaults.max_samples} held"
    )
    models = calibration.models
    candidates = sweep(segments, models, grid, margins)
    ranked = sorted(candidates, key=lambda c: rank_key(c.pooled), reverse=True)
    current = next(
        c for c in candidates if c.params == defaults and c.margin == DEFAULT_EXIT_MARGIN_M
    )
    header = ["window s", "min samples", "enter s", "exit s", "margin m"]
    rows = []
    for candidate in ranked[:10]:
        pooled = candidate.pooled
        rows.append(
            [
                *params_cells(candidate.params, candidate.margin),
                *rates(pooled),
                str(pooled.flaps),
                fmt(pooled.flaps / pooled.hours, 1),
            ]
        )
    print("### top 10")
    table([*header, "accuracy", "balanced", "TPR", "TNR", "flaps", "flaps/h"], rows)

    best = ranked[0]
    steady = choose(candidates, current, steady=True)
    print(
        "### best in sweep vs current defaults, all recordings pooled"
        " (the 1 m zone scored with the same params)"
    )
    side: list[list[str]] = []
    for name, candidate in (
        ("current defaults", current),
        ("best in sweep", best),
        ("best, no more flaps than defaults", steady),
    ):
        one_m = Tally()
        for segment in segments:
            one_m += tracker_tallies(
                segment, models[segment.recording], candidate.params, [(1.0, candidate.margin)]
            )[0]
        pooled = candidate.pooled
        side.append(
            [
                name,
                *params_cells(candidate.params, candidate.margin),
                fmt(pooled.balanced),
                fmt(pooled.accuracy),
                fmt(pooled.flaps / pooled.hours, 1),
                fmt(one_m.balanced),
                fmt(one_m.flaps / one_m.hours, 1),
            ]
        )
    scores = ["2 m balanced", "2 m accuracy", "2 m flaps/h", "1 m balanced", "1 m flaps/h"]
    table(["", *header, *scores], side)

    if len(recordings) == 1:
        return current
    print("### is the pick overfitted? pick on the other recordings, score the held-out one")
    print("params: window s / min samples / enter s / exit s / margin m")
    held = {"best": Tally(), "steady": Tally(), "defaults": Tally()}
    rows = []
    for recording in recordings:
        row = [recording]
        for name, steady_only in (("best", False), ("steady", True)):
            pick = choose(candidates, current, steady_only, skip=recording)
            score = pick.per_recording[recording]
            held[name] += score
            row += [describe(pick), fmt(score.balanced), str(score.flaps)]
        score = current.per_recording[recording]
        held["defaults"] += score
        rows.append([*row, fmt(score.balanced), str(score.flaps)])
    rows.append(
        [
            "pooled",
            "",
            fmt(held["best"].balanced),
            str(held["best"].flaps),
            "",
            fmt(held["steady"].balanced),
            str(held["steady"].flaps),
            fmt(held["defaults"].balanced),
            str(held["defaults"].flaps),
        ]
    )
    headers = ["held out", "best: params", "balanced", "flaps", "steady: params", "balanced"]
    table([*headers, "flaps", "defaults: balanced", "flaps"], rows, left=1)
    print(f"n/a: the recording has no samples beyond {SWEEP_RADIUS_M:g} m")
    gain = held["steady"].balanced - held["defaults"].balanced
    print(
        f"steady pick vs defaults on held-out recordings: balanced {gain:+.3f},"
        f" flaps {held['steady'].flaps - held['defaults'].flaps:+d}\n"
    )
    return steady if gain >= MIN_GAIN else current


def report_summary(
    calibrations: Sequence[Calibration],
    scores: ZoneScores,
    timing: Candidate,
    defaults: TrackerParams,
    in_sample: bool,
) -> None:
    """The calibration whose tracker scores best on held-out data, and the timing to ship."""
    chosen = max(calibrations, key=lambda c: scores.tracker[SWEEP_RADIUS_M, c.name].balanced)
    print("## Defaults these measurements support")
    if in_sample:
        print("(--quick: one recording, scored on itself; not a basis for shipping anything)")
    rows = [
        ["measured_power_dbm", f"{round(chosen.shipped.power_1m)}", chosen.name],
        ["path_loss_exponent", f"{round(chosen.shipped.exponent, 1):.1f}", chosen.name],
    ]
    rule = f"steady sweep pick, held-out balanced gain >= {MIN_GAIN:g}"
    for name in ("smoothing_window_s", "min_samples", "enter_after_s", "exit_after_s"):
        value, current = getattr(timing.params, name), getattr(defaults, name)
        rows.append([name, f"{value:g}", "unchanged" if value == current else rule])
    unchanged = timing.margin == DEFAULT_EXIT_MARGIN_M
    rows.append(["exit_margin_m", f"{timing.margin:g}", "unchanged" if unchanged else rule])
    table(["setting", "value", "why"], rows, left=1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Herald data directory")
    parser.add_argument("--quick", action="store_true", help="one recording, small sweep")
    args = parser.parse_args(argv)
    command = COMMAND + (" --quick" if args.quick else "")
    data: Path = args.data
    files = recording_files(data) if data.is_dir() else []
    if not files:
        print(f"skipped: data not found at {data}")
        return 0
    started = time.perf_counter()
    segments: list[Segment] = []
    skipped = 0
    for path in files:
        found, zeros = read_recording(path)
        if args.quick and not any(s.distance_m > SWEEP_RADIUS_M for s in found):
            continue  # --quick wants one recording with both sides of the 2 m zone
        segments += found
        skipped += zeros
        if args.quick:
            break
    if not segments:
        print(f"skipped: no usable recording in {data}")
        return 0
    recordings = sorted({s.recording for s in segments})
    defaults = TrackerParams()
    smoothed = [smoothed_rssi(s, defaults) for s in segments]

    print("# Presence calibration on Herald phone-to-phone RSSI")
    print(f"command: {command}\n")
    report_data(data, segments, recordings, skipped)
    least_squares = least_squares_calibration(segments, recordings)
    zone = zone_calibration(segments, smoothed, recordings)
    calibrations = (least_squares, zone)
    check_shared_zones(segments, least_squares.models)
    report_fit(segments, recordings, least_squares, zone)
    report_distance(segments, smoothed, calibrations, defaults)
    scores = report_classification(segments, smoothed, recordings, calibrations, defaults)
    report_flaps(scores, defaults)
    sweep_calibration = max(
        calibrations, key=lambda c: scores.tracker[SWEEP_RADIUS_M, c.name].balanced
    )
    timing = report_sweep(segments, recordings, sweep_calibration, defaults, args.quick)
    report_summary(calibrations, scores, timing, defaults, len(recordings) == 1)
    print(f"command: {command}   ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
