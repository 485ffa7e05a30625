"""Per-advert cost of the gateway core, beside reference decoders on the same adverts.

A deterministic busy-store stream (several hundred phones, ~10 % of them
opted-in EID advertisers, ~30 store beacons, the rest anonymous phones with
manufacturer data) goes through the whole core per advert (decode →
recognise → track). On the same adverts, in the same run: beacontools'
``parse_packet`` and, if it imports, TheengsDecoder's ``decodeBLE`` — decode
only. Figures are medians over rounds; the ratio is what to read, the
absolute numbers depend on the machine.

    python bench/core.py            # full run (< 1 min)
    python bench/core.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bluetooth_data_tools import parse_advertisement_data_bytes

from gateway.ble import decode as decode_module
from gateway.ble.eid import EidIdentity, EidTable
from gateway.core import GatewayCore
from gateway.layout import StoreLayout
from gateway.recognise import EidCache
from gateway.sim.store import StoreSimulation, demo_identities

Record = tuple[float, str, int, bytes]
START = 1_767_261_600.0
BEACON_UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"


def build_layout(zones: int, beacons: int) -> StoreLayout:
    return StoreLayout.model_validate(
        {
            "store": "bench-store",
            "timezone": "Europe/Berlin",
            "zones": [
                {"id": f"zone-{z}", "gateway": f"gw-{z}", "radius_m": 2.5} for z in range(zones)
            ],
            "beacons": [
                {
                    "id": f"beacon-{b}",
                    "zone": f"zone-{b % zones}",
                    "ibeacon": {"uuid": BEACON_UUID, "major": 1, "minor": b},
                }
                for b in range(beacons)
            ],
        }
    )


def build_stream(
    phones: int, duration_s: float, seed: int
) -> tuple[StoreLayout, list[EidIdentity], list[Record], dict[str, int]]:
    layout = build_layout(zones=4, beacons=30)
    app = max(1, phones // 10)
    strangers = max(1, phones // 50)
    anonymous = phones - app - strangers
    identities = demo_identities(app, seed=seed)
    sim = StoreSimulation(
        layout,
        identities,
        start=START,
        duration_s=duration_s,
        anonymous_phones=anonymous,
        stranger_eid_phones=strangers,
        seed=seed,
    )
    records = [(r.ts, r.gateway, r.rssi, r.ad) for r in sim.records()]
    mix = {"app phones": app, "stranger EID phones": strangers, "anonymous phones": anonymous}
    mix["store beacons"] = len(layout.beacons)
    return layout, identities, records, mix


def clear_decode_caches() -> None:
    decode_module.decode_ad.cache_clear()
    decode_module._manufacturer_frame.cache_clear()
    decode_module._eddystone_frame.cache_clear()
    parse_advertisement_data_bytes.cache_clear()


def time_core(
    layout: StoreLayout, identities: list[EidIdentity], records: Sequence[Record]
) -> tuple[float, int]:
    """Seconds for one pass of a fresh core over ``records``, and the events it produced."""
    core = GatewayCore(layout, EidCache(local=EidTable(identities)))
    on_advert = core.on_advert
    events = 0
    started = time.perf_counter_ns()
    for ts, gateway, rssi, ad in records:
        events += len(on_advert(ts, gateway, rssi, ad))
    events += len(core.flush())
    return (time.perf_counter_ns() - started) / 1e9, events


def time_calls(fn: Callable[[Any], object], inputs: Sequence[Any]) -> float:
    started = time.perf_counter_ns()
    for item in inputs:
        fn(item)
    return (time.perf_counter_ns() - started) / 1e9


def theengs_inputs(records: Sequence[Record]) -> list[str]:
    """Each advert as TheengsDecoder's JSON input (built outside the timing, in its favour)."""
    out = []
    for _, _, rssi, ad in records:
        _, _, service_data, manufacturer, _ = parse_advertisement_data_bytes(ad)
        doc: dict[str, Any] = {"id": "AA:BB:CC:DD:EE:FF", "rssi": rssi}
        for company, payload in manufacturer.items():
            doc["manufacturerdata"] = company.to_bytes(2, "little").hex() + payload.hex()
        for uuid, payload in service_data.items():
            doc["servicedata"] = payload.hex()
            doc["servicedatauuid"] = "0x" + uuid[4:8]
        out.append(json.dumps(doc))
    return out


def us_per(seconds: float, count: int) -> float:
    return seconds / count * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small stream, one round")
    parser.add_argument("--phones", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    phones = args.phones or (60 if args.quick else 400)
    duration = 60.0 if args.quick else 240.0
    rounds = args.rounds or (1 if args.quick else 5)
    reference_size = 3_000 if args.quick else 10_000
    theengs_size = 500 if args.quick else 2_000  # ~1.7 ms an advert: a smaller sample

    t0 = time.perf_counter()
    layout, identities, records, mix = build_stream(phones, duration, args.seed)
    built_s = time.perf_counter() - t0
    subset = records[:reference_size]
    distinct = len({ad for *_, ad in records})

    print("# Nahfeld core benchmark (python bench/core.py)")
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpu(s)")
    print(
        f"stream: {len(records)} adverts over {duration:.0f} s, {distinct} distinct payloads, "
        + ", ".join(f"{v} {k}" for k, v in mix.items())
        + f" (built in {built_s:.1f} s)"
    )
    print(f"reference subset: first {len(subset)} adverts; {rounds} round(s), medians\n")

    clear_decode_caches()
    cold_s, _ = time_core(layout, identities, subset)
    warm = [time_core(layout, identities, subset)[0] for _ in range(rounds)]
    full = [time_core(layout, identities, records) for _ in range(max(1, rounds // 2))]
    events = full[0][1]
    decode_only = [
        time_calls(decode_module.decode_ad, [ad for *_, ad in subset]) for _ in range(rounds)
    ]

    from beacontools import parse_packet

    beacontools_inputs = [ad for *_, ad in subset]
    beacontools_s = [time_calls(parse_packet, beacontools_inputs) for _ in range(rounds)]
    ours_found = sum(1 for ad in beacontools_inputs if decode_module.decode_ad(ad).frames)
    theirs_found = sum(1 for ad in beacontools_inputs if parse_packet(ad) is not None)

    rows: list[tuple[str, float]] = [
        (
            "nahfeld core, whole pipeline (warm caches)",
            us_per(statistics.median(warm), len(subset)),
        ),
        ("nahfeld core, whole pipeline (cold: first pass)", us_per(cold_s, len(subset))),
        ("nahfeld core, whole stream", us_per(statistics.median(s for s, _ in full), len(records))),
        ("nahfeld decode only (warm)", us_per(statistics.median(decode_only), len(subset))),
        (
            "beacontools parse_packet (decode only)",
            us_per(statistics.median(beacontools_s), len(subset)),
        ),
    ]
    theengs_note = ""
    try:
        from TheengsDecoder import decodeBLE

        theengs_json = theengs_inputs(subset[:theengs_size])
        theengs_s = [time_calls(decodeBLE, theengs_json) for _ in range(min(rounds, 3))]
        rows.append(
            (
                f"TheengsDecoder decodeBLE (decode only, {len(theengs_json)} adverts)",
                us_per(statistics.median(theengs_s), len(theengs_json)),
            )
        )
    except ImportError as exc:
        theengs_note = f"TheengsDecoder not measured: {exc}"

    print(f"{'what':<52} {'µs/advert':>10}")
    for name, value in rows:
        print(f"{name:<52} {value:>10.2f}")
    core_warm = rows[0][1]
    core_cold = rows[1][1]
    beacontools_us = rows[4][1]
    print()
    print(f"ratio core (warm) / beacontools decode: {core_warm / beacontools_us:.3f}")
    print(f"ratio core (cold) / beacontools decode: {core_cold / beacontools_us:.3f}")
    if len(rows) > 5:
        print(f"ratio core (warm) / TheengsDecoder decode: {core_warm / rows[5][1]:.3f}")
    if theengs_note:
        print(theengs_note)
    print(f"adverts with a beacon frame: nahfeld {ours_found}, beacontools {theirs_found}")
    print(f"presence events from the whole stream: {events}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
