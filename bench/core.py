"""Per-advert cost of the gateway core, beside reference decoders on the same adverts.

Why: the gateway runs on a small box in a busy store, and "is our Python
core fast enough?" needs a number with a yardstick next to it. The yardsticks
are the decoders people would otherwise reach for: beacontools'
``parse_packet`` and TheengsDecoder's ``decodeBLE`` (decode only: they do not
recognise or track anything, so they do strictly less work than our core).

The stream is a deterministic simulated busy store (``gateway.sim.store``):
four zones on four gateways, 30 registered iBeacons, several hundred phones,
about 10 % of them opted-in Eddystone-EID advertisers, a few stranger EID
phones, the rest anonymous manufacturer data. Our decoding is cached on the
payload by design (beacons and EID phones repeat byte-identical adverts), so
the core is reported both warm (steady state) and cold (process-level caches
cleared before the pass), and decode is also reported with every payload a
cache miss, which is the like-for-like comparison with the references.

Figures are medians over rounds of the mean per advert; the ratios are what
to read, absolute numbers depend on the machine and its load.

    python bench/core.py            # full run (well under a minute)
    python bench/core.py --quick    # tiny run for the smoke test
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from beacontools import parse_packet
from bluetooth_data_tools import parse_advertisement_data_bytes

from gateway.ble import decode as decode_module
from gateway.ble.decode import decode_ad
from gateway.ble.eid import EidIdentity, EidTable, temporary_key
from gateway.ble.frames import EddystoneEid, IBeacon
from gateway.core import GatewayCore
from gateway.layout import StoreLayout
from gateway.recognise import EidCache
from gateway.sim.store import StoreSimulation, demo_identities

T = TypeVar("T")
#: what a gateway hands the core: (unix time, gateway id, RSSI, raw AD bytes)
Record = tuple[float, str, int, bytes]
TheengsDecode = Callable[[str], "str | None"]

START = 1_767_261_600.0  # 2026-01-01 10:00 UTC: a fixed clock keeps the stream deterministic
BEACON_UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
ZONES = 4
STORE_BEACONS = 30
THEENGS_ID = "AA:BB:CC:DD:EE:FF"
BLUETOOTH_BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"

KIND_APP = "opted-in EID phones"
KIND_STRANGER = "stranger EID phones"
KIND_ANONYMOUS = "anonymous phones"
KIND_BEACON = "store beacons"
KINDS = (KIND_BEACON, KIND_APP, KIND_STRANGER, KIND_ANONYMOUS)


@dataclass(frozen=True, slots=True)
class Profile:
    """Stream size and repetitions; ``--quick`` only has to prove the script works."""

    phones: int
    duration_s: float
    rounds: int
    reference_adverts: int  # TheengsDecoder costs ~2 ms per advert, so references get a sample


FULL = Profile(phones=400, duration_s=240.0, rounds=5, reference_adverts=2_000)
QUICK = Profile(phones=60, duration_s=60.0, rounds=2, reference_adverts=300)


@dataclass(frozen=True, slots=True)
class Stream:
    layout: StoreLayout
    identities: list[EidIdentity]
    records: list[Record]
    senders: Counter[str]  # kind → how many phones or beacons
    adverts: Counter[str]  # kind → how many adverts they produced
    built_s: float


@dataclass(frozen=True, slots=True)
class Figure:
    """Per-advert microseconds of every round; the median is the figure."""

    name: str
    rounds_us: list[float]
    items: int

    @property
    def median(self) -> float:
        return statistics.median(self.rounds_us)


class BenchError(RuntimeError):
    """A reference decoder disagrees with ours, or the run was not reproducible."""


def require(condition: bool, message: str) -> None:
    """A check that survives ``python -O``: a benchmark of a wrong decoder is worthless."""
    if not condition:
        raise BenchError(message)


def build_layout() -> StoreLayout:
    """Four zones on four gateways and 30 registered iBeacons, through the real validator."""
    return StoreLayout.model_validate(
        {
            "store": "bench-store",
            "timezone": "Europe/Berlin",
            "gateways": [{"id": f"gw-{z}"} for z in range(ZONES)],
            "zones": [
                {"id": f"zone-{z}", "gateway": f"gw-{z}", "radius_m": 3.0} for z in range(ZONES)
            ],
            "beacons": [
                {
                    "id": f"beacon-{b:02d}",
                    "zone": f"zone-{b % ZONES}",
                    "ibeacon": {"uuid": BEACON_UUID, "major": 1 + b % ZONES, "minor": b},
                }
                for b in range(STORE_BEACONS)
            ],
        }
    )


def build_stream(profile: Profile, seed: int, start: float = START) -> Stream:
    """Generate the records once; every measurement below replays this same list. A
    ``start`` near now keeps offers valid when the stream is fed in real time."""
    started = time.perf_counter_ns()
    layout = build_layout()
    app = max(1, profile.phones // 10)
    strangers = max(1, profile.phones // 50)
    anonymous = profile.phones - app - strangers
    identities = demo_identities(app, seed=seed)
    sim = StoreSimulation(
        layout,
        identities,
        start=start,
        duration_s=profile.duration_s,
        anonymous_phones=anonymous,
        stranger_eid_phones=strangers,
        seed=seed,
    )
    app_tokens = {identity.token for identity in identities}
    kind_by_address: dict[str, str] = {}
    for phone in sim.phones:
        if phone.identity is None:
            kind_by_address[phone.address] = KIND_ANONYMOUS
        elif phone.identity.token in app_tokens:
            kind_by_address[phone.address] = KIND_APP
        else:
            kind_by_address[phone.address] = KIND_STRANGER
    records: list[Record] = []
    adverts: Counter[str] = Counter()
    for record in sim.records():
        records.append((record.ts, record.gateway, record.rssi, record.ad))
        adverts[kind_by_address.get(record.address, KIND_BEACON)] += 1
    senders = Counter(kind_by_address.values())
    senders[KIND_BEACON] = sum(1 for beacon in layout.beacons if beacon.ibeacon is not None)
    built_s = (time.perf_counter_ns() - started) / 1e9
    return Stream(layout, identities, records, senders, adverts, built_s)


def clear_process_caches() -> None:
    """Forget every payload-keyed cache, so the next pass pays each first sighting again."""
    decode_ad.cache_clear()
    decode_module._manufacturer_frame.cache_clear()
    decode_module._eddystone_frame.cache_clear()
    parse_advertisement_data_bytes.cache_clear()  # bluetooth-data-tools caches too
    temporary_key.cache_clear()  # EID derivation, used when the EID table turns a window


def core_pass(stream: Stream) -> tuple[float, GatewayCore]:
    """µs per advert for a fresh core over the whole stream (flush is end of input, untimed)."""
    core = GatewayCore(stream.layout, EidCache(local=EidTable(stream.identities)))
    on_advert = core.on_advert
    records = stream.records
    started = time.perf_counter_ns()
    for ts, gateway, rssi, ad in records:
        on_advert(ts, gateway, rssi, ad)
    elapsed_ns = time.perf_counter_ns() - started
    core.flush()
    return elapsed_ns / len(records) / 1000, core


def per_item_us(fn: Callable[[T], object], items: Sequence[T]) -> float:
    """Mean µs per call; one clock read around the loop, so the timer costs nothing per item."""
    started = time.perf_counter_ns()
    for item in items:
        fn(item)
    return (time.perf_counter_ns() - started) / len(items) / 1000


def repeat(name: str, rounds: int, items: int, measure: Callable[[], float]) -> Figure:
    return Figure(name, [measure() for _ in range(rounds)], items)


def decode_all_misses(payloads: Sequence[bytes]) -> float:
    """Our decode with no cache help: every distinct payload once, caches cleared first."""
    clear_process_caches()
    return per_item_us(decode_ad, payloads)


def sample(records: Sequence[Record], size: int) -> list[Record]:
    """Every n-th advert across the whole stream, so the sample has the stream's mix."""
    step = max(1, len(records) // size)
    return list(records[::step][:size])


def theengs_json(rssi: int, ad: bytes) -> str:
    """One advert as TheengsDecoder's input document (hex fields, 16-bit service UUID)."""
    _, _, service_data, manufacturer_data, _ = parse_advertisement_data_bytes(ad)
    doc: dict[str, object] = {"id": THEENGS_ID, "rssi": rssi}
    for company, payload in manufacturer_data.items():  # Theengs takes one of each
        doc["manufacturerdata"] = company.to_bytes(2, "little").hex() + payload.hex()
    for uuid, payload in service_data.items():
        if uuid.startswith("0000") and uuid.endswith(BLUETOOTH_BASE_UUID_TAIL):
            doc["servicedatauuid"] = "0x" + uuid[4:8]
            doc["servicedata"] = payload.hex()
    return json.dumps(doc, separators=(",", ":"))


def load_theengs() -> tuple[TheengsDecode | None, str]:
    """TheengsDecoder is a compiled wheel that not every platform has; its absence is a note."""
    try:
        module = importlib.import_module("TheengsDecoder")
    except ImportError as exc:
        return None, f"TheengsDecoder not measured: cannot import it ({exc})"
    decode: TheengsDecode = module.decodeBLE
    return decode, ""


def check_beacontools(ads: Iterable[bytes]) -> Counter[str]:
    """beacontools must read every iBeacon and EID advert exactly as we do; count what it found."""
    found: Counter[str] = Counter()
    for ad in ads:
        theirs: Any = parse_packet(ad)
        found[type(theirs).__name__ if theirs is not None else "nothing"] += 1
        for frame in decode_ad(ad).frames:
            if isinstance(frame, IBeacon):
                require(
                    type(theirs).__name__ == "IBeaconAdvertisement"
                    and (theirs.uuid, theirs.major, theirs.minor)
                    == (frame.uuid, frame.major, frame.minor),
                    f"beacontools misread iBeacon {ad.hex()}: {theirs}",
                )
            elif isinstance(frame, EddystoneEid):
                require(
                    type(theirs).__name__ == "EddystoneEIDFrame" and theirs.eid.hex() == frame.eid,
                    f"beacontools misread Eddystone-EID {ad.hex()}: {theirs}",
                )
    return found


def check_theengs(decode: TheengsDecode, docs: Sequence[str], ads: Sequence[bytes]) -> Counter[str]:
    """Theengs must read our iBeacons; it has no Eddystone-EID model: counted, not failed."""
    found: Counter[str] = Counter()
    for doc, ad in zip(docs, ads, strict=True):
        answer = decode(doc)
        result: dict[str, Any] = json.loads(answer) if answer else {}
        found[str(result.get("model_id", "nothing"))] += 1
        for frame in decode_ad(ad).frames:
            if isinstance(frame, IBeacon):
                require(
                    result.get("model_id") == "IBEACON"
                    and (result.get("uuid"), result.get("major"), result.get("minor"))
                    == (frame.uuid.replace("-", ""), frame.major, frame.minor),
                    f"TheengsDecoder misread iBeacon {ad.hex()}: {answer}",
                )
    return found


def ours_found(ads: Iterable[bytes]) -> Counter[str]:
    found: Counter[str] = Counter()
    for ad in ads:
        frames = decode_ad(ad).frames
        if not frames:
            found["nothing"] += 1
        for frame in frames:
            found[frame.type] += 1
    return found


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def machine() -> str:
    """What the figures were taken on: they mean little without it."""
    processor = platform.processor()
    if not processor:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
                processor = next(
                    (line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line),
                    "",
                )
        except OSError:
            processor = ""
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.machine()}, processor {processor or 'unknown'!r}, nproc {nproc}"


def ratio(numerator: float, denominator: float) -> str:
    value = numerator / denominator
    if value < 1:
        return f"{value:.3f}  (the reference takes {1 / value:.1f}x as long)"
    return f"{value:.3f}  (ours takes {value:.1f}x as long)"


def print_table(figures: Sequence[Figure]) -> None:
    print(f"{'per advert':<52} {'median µs':>10} {'min':>8} {'max':>8} {'adverts':>9}")
    for figure in figures:
        print(
            f"  {figure.name:<50} {figure.median:>10.3f} {min(figure.rounds_us):>8.3f} "
            f"{max(figure.rounds_us):>8.3f} {figure.items:>9}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Per-advert cost of the Nahfeld gateway core.")
    parser.add_argument("--quick", action="store_true", help="tiny stream (smoke test)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per figure")
    parser.add_argument("--seed", type=int, default=7, help="simulation seed")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    rounds = max(1, args.rounds or profile.rounds)

    stream = build_stream(profile, args.seed)
    records = stream.records
    n = len(records)
    ads = [ad for *_, ad in records]
    distinct = list(dict.fromkeys(ads))

    print("# Nahfeld core benchmark: python bench/core.py" + (" --quick" if args.quick else ""))
    print(f"python {platform.python_version()} ({platform.python_implementation()}), {machine()}")
    print(
        f"beacontools {version('beacontools')}, TheengsDecoder {version('theengsdecoder')}, "
        f"bluetooth-data-tools {version('bluetooth-data-tools')}"
    )
    print()
    print(
        f"stream: {n} adverts, {profile.duration_s:.0f} s of store, "
        f"{ZONES} zones on {ZONES} gateways, {len(distinct)} distinct payloads, "
        f"seed {args.seed}, built in {stream.built_s:.1f} s"
    )
    for kind in KINDS:
        print(f"  {kind:<22} {stream.senders[kind]:>5}  sending {stream.adverts[kind]:>7} adverts")

    # Cold and warm rounds alternate, so neither profits from running later (CPU clocks,
    # allocator): a cold round clears the caches, the warm round after it reuses them.
    cold_us: list[float] = []
    warm_us: list[float] = []
    cores: list[GatewayCore] = []
    hits = misses = 0
    for _ in range(rounds):
        clear_process_caches()
        us, core = core_pass(stream)
        cold_us.append(us)
        cores.append(core)
        info = decode_ad.cache_info()
        hits, misses = hits + info.hits, misses + info.misses
        us, core = core_pass(stream)
        warm_us.append(us)
        cores.append(core)
    core_cold = Figure("nahfeld core, cold (caches cleared, first pass)", cold_us, n)
    core_warm = Figure("nahfeld core, warm (steady state)", warm_us, n)
    stats = [core.stats.as_dict() for core in cores]
    require(all(s == stats[0] for s in stats), "the core gave different results on the same input")
    core_stats = cores[0].stats

    decode_warm = repeat(
        "nahfeld decode only, warm (cached)", rounds, n, lambda: per_item_us(decode_ad, ads)
    )
    decode_miss = repeat(
        "nahfeld decode only, every payload a miss",
        rounds,
        len(distinct),
        lambda: decode_all_misses(distinct),
    )

    subset = sample(records, profile.reference_adverts)
    subset_ads = [ad for *_, ad in subset]
    decode_subset = repeat(
        "nahfeld decode only, reference sample, warm",
        rounds,
        len(subset),
        lambda: per_item_us(decode_ad, subset_ads),
    )
    beacontools = repeat(
        "beacontools parse_packet",
        rounds,
        len(subset),
        lambda: per_item_us(parse_packet, subset_ads),
    )
    figures = [core_warm, core_cold, decode_warm, decode_miss, decode_subset, beacontools]

    found = {"nahfeld": ours_found(subset_ads), "beacontools": check_beacontools(subset_ads)}
    theengs_decode, theengs_note = load_theengs()
    theengs: Figure | None = None
    if theengs_decode is not None:
        decode_theengs = theengs_decode
        docs = [theengs_json(rssi, ad) for _, _, rssi, ad in subset]  # built untimed
        theengs = repeat(
            "TheengsDecoder decodeBLE (JSON in, untimed build)",
            rounds,
            len(subset),
            lambda: per_item_us(decode_theengs, docs),
        )
        figures.append(theengs)
        found["theengs"] = check_theengs(decode_theengs, docs, subset_ads)

    print()
    print(f"{rounds} round(s); references on every n-th advert of the stream ({len(subset)})")
    print_table(figures)
    if theengs_note:
        print(theengs_note)
    print()
    bt = beacontools.median
    print(f"ratio core (warm) / beacontools decode:       {ratio(core_warm.median, bt)}")
    print(f"ratio core (cold) / beacontools decode:       {ratio(core_cold.median, bt)}")
    print(f"ratio decode-miss / beacontools decode:       {ratio(decode_miss.median, bt)}")
    if theengs is not None:
        te = theengs.median
        print(f"ratio core (warm) / TheengsDecoder decode:    {ratio(core_warm.median, te)}")
        print(f"ratio core (cold) / TheengsDecoder decode:    {ratio(core_cold.median, te)}")
    else:
        print("ratio core / TheengsDecoder decode: not measured")
    print()
    print(
        f"decode cache in a cold pass: {hits // rounds} hits, {misses // rounds} misses "
        f"({100 * hits / max(1, hits + misses):.2f} % hits)"
    )
    print(f"frames found in the reference sample ({len(subset)} adverts):")
    for who, counts in found.items():
        print(f"  {who:<12} " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    print(
        f"core over the whole stream: {core_stats.app_sightings} app sightings, "
        f"{core_stats.beacon_sightings} beacon sightings, {core_stats.unrecognised} unrecognised, "
        f"{core_stats.not_beacon} not a beacon, {sum(core_stats.malformed.values())} malformed"
    )
    events = core_stats.events
    print(
        f"presence events from the whole stream: {sum(events.values())} ("
        + ", ".join(f"{k} {v}" for k, v in sorted(events.items()))
        + ")"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
