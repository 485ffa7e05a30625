"""A 24-hour store day through the pure gateway core: memory over the day, and no lost enters.

The demo store (``firmware-config/stores/demo-store/layout.toml``: three zones on
three gateways, two store beacons) simulated for a whole day by
``gateway.sim.store.StoreSimulation`` and replayed through ``GatewayCore`` as
fast as it goes: no real time, every timestamp comes from the simulation.

The day is ``gateway.sim.day.store_day`` (the one ``nahfeld demo`` plays): 24
consecutive simulated hours, each its own ``StoreSimulation`` with its own
start and seed, generated lazily one hour at a time (a simulation materialises
and sorts its hour's records; nothing holds the day). A simulation puts
arrivals in the first half of its duration, so within each hour phones walk in
during the first 30 minutes; every visit is over before the hour ends (the
longest route is about 15 minutes).

Visitors over the day follow an hourly traffic curve (quiet at night, peaks at
lunch and after work): ``OPTED_IN`` opted-in phones advertising Eddystone-EID
(each visiting once, in an hour drawn from the curve), ``ANONYMOUS`` phones
sending manufacturer data, ``STRANGERS`` EID phones of other apps. Phones
advertise once a second, beacons once a second (every tenth of a beacon's
adverts its Eddystone-TLM telemetry): the realistic rate, no
reduction was needed to stay well under a minute. The core's EID cache
resolves through an ``EidTable`` of the opted-in identities, as ``nahfeld
replay`` does; resolved EIDs are expired once a simulated minute, as the
daemon's housekeeping does.

Measured: adverts, events by type, process RSS (``VmRSS``) after every
simulated hour beside the core's own state (signals tracked, EID cache
entries, decode cache entries) and the interpreter's allocated blocks after
a collection, the growth from hour 2 to hour 24, wall time and adverts/s. A
second day follows (``--days 2``, the default): once the caches are full and
the allocator has its arenas, memory that still grows from the end of the first
day to the end of the second is growth a gateway running for weeks would see.
The reference in the same run: the time spent generating the simulation
beside the time spent in the core. The check: every opted-in phone's visit
to a zone (``SimPhone.visits``) has an enter event for that zone and that
phone's token whose presence overlaps the visit; expected vs produced, and
every missing one, are printed.

Reading the RSS: over the first day it grows by more than the core keeps. With
``--tracemalloc`` (several times slower) the live memory allocated during the
replay is also printed, and it stays small (a quarter of a MiB at hour 2,
under 3 MiB at hour 24: mostly the decode cache filling towards its bound of
4,096 payloads). The simulation alone (the same hours generated and
dropped, no core; measured once, not by this script) stays at 42-47 MiB all
day. The rest looks like the allocator keeping the arenas that held the
busiest hours' simulated records, pinned by long-lived cache entries
allocated among them: an effect of replaying in hour-sized batches that a
live gateway, fed one advert at a time, should not see to this extent.

    python -m bench.store_day [--days 2] [--hours 24] [--from-hour 0] [--seed 7] [--quick]

``--quick`` replays two busy hours (11:00-13:00) of the same day.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.ble.decode import decode_ad
from gateway.ble.eid import EidTable
from gateway.core import GatewayCore
from gateway.layout import load_layout
from gateway.presence.events import PresenceEvent
from gateway.recognise import EidCache
from gateway.sim.day import DAY_S, ExpectedVisit, check_visits, store_day
from gateway.sim.store import demo_identities

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = ROOT / "firmware-config" / "stores" / "demo-store" / "layout.toml"
#: visitors a day: a busy small store open around the clock
OPTED_IN = 300
ANONYMOUS = 2_700
STRANGERS = 30
#: --quick: two busy hours, so the check has visits to look at
QUICK_FROM_HOUR = 11
QUICK_HOURS = 2


@dataclass(frozen=True, slots=True)
class HourSample:
    hour: int
    adverts: int
    events: int
    signals: int
    eid_cache: int
    decode_cache: int
    blocks: int
    rss_mib: float
    traced_mib: float | None


def rss_mib() -> float:
    """This process's resident set (psutil is not a dependency)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=2, help="days to replay, one after another")
    parser.add_argument("--hours", type=int, default=24, help="simulated hours of each day")
    parser.add_argument("--from-hour", type=int, default=0, help="first hour (0: from midnight)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also trace live Python memory (slower)"
    )
    parser.add_argument("--quick", action="store_true", help="11:00-13:00 only, for the smoke test")
    args = parser.parse_args(argv)
    first = QUICK_FROM_HOUR if args.quick else min(max(0, args.from_hour), 23)
    hours = range(first, min(24, first + (QUICK_HOURS if args.quick else max(1, args.hours))))
    days = 1 if args.quick else max(1, args.days)

    layout = load_layout(LAYOUT)
    identities = demo_identities(OPTED_IN, seed=args.seed)
    opted_in = {identity.token for identity in identities}
    day_start = datetime(2026, 3, 2, tzinfo=ZoneInfo(layout.timezone)).timestamp()
    core = GatewayCore(layout, EidCache(local=EidTable(identities)))
    on_advert = core.on_advert

    print("# Store day benchmark (python -m bench.store_day" + (" --quick)" if args.quick else ")"))
    print(
        f"{layout.store}: {len(layout.zones)} zones, {len(layout.beacons)} store beacons; "
        f"{len(hours)} simulated hour(s) from 2026-03-02 {first:02d}:00 {layout.timezone}, "
        f"seed {args.seed}, {days} day(s)"
    )

    expected: list[ExpectedVisit] = []
    app_events: list[PresenceEvent] = []
    samples: list[HourSample] = []
    adverts = phones = opted_in_phones = 0
    sim_s = core_s = 0.0
    if args.tracemalloc:
        tracemalloc.start()
    started = time.perf_counter()
    next_expiry = day_start
    for day, hour in (
        (d, h)
        for d in range(days)
        for h in store_day(
            layout,
            identities,
            day_start + d * DAY_S,
            hours,
            args.seed + d,
            anonymous=ANONYMOUS,
            strangers=STRANGERS,
        )
    ):
        t0 = time.perf_counter()
        records = list(hour.sim.records())
        t1 = time.perf_counter()
        for record in records:
            events = on_advert(record.ts, record.gateway, record.rssi, record.ad)
            if events:
                app_events.extend(e for e in events if e.device in opted_in)
            if record.ts >= next_expiry:  # the daemon's housekeeping, once a simulated minute
                core.eids.expire(record.ts)
                next_expiry = record.ts + 60.0
        t2 = time.perf_counter()
        sim_s, core_s = sim_s + t1 - t0, core_s + t2 - t1
        adverts += len(records)
        phones += hour.phones
        opted_in_phones += hour.opted_in
        expected.extend(hour.expected)
        del records
        gc.collect()
        samples.append(
            HourSample(
                day * 24 + hour.hour + 1,
                adverts,
                sum(core.stats.events.values()),
                core.tracker.tracked,
                len(core.eids),
                decode_ad.cache_info().currsize,
                sys.getallocatedblocks(),
                rss_mib(),
                tracemalloc.get_traced_memory()[0] / 2**20 if args.tracemalloc else None,
            )
        )
    app_events.extend(e for e in core.flush() if e.device in opted_in)
    wall = time.perf_counter() - started

    print(f"visitors: {phones} phones ({opted_in_phones} opted-in EID), {adverts} adverts heard\n")
    print(
        f"{'hour':>4} {'adverts':>10} {'events':>8} {'signals':>8} {'EID cache':>10} "
        f"{'decode cache':>13} {'alloc. blocks':>14} {'RSS MiB':>8}"
        + (f" {'traced MiB':>11}" if args.tracemalloc else "")
    )
    for s in samples:
        print(
            f"{s.hour:>4} {s.adverts:>10} {s.events:>8} {s.signals:>8} {s.eid_cache:>10} "
            f"{s.decode_cache:>13} {s.blocks:>14} {s.rss_mib:>8.1f}"
            + (f" {s.traced_mib:>11.2f}" if s.traced_mib is not None else "")
        )
    print()
    # from the second hour on: the first pays for imports, caches and the allocator's arenas
    base, last = samples[1 if len(samples) > 2 else 0], samples[-1]
    growth = last.rss_mib - base.rss_mib
    print(
        f"RSS growth hour {base.hour} → hour {last.hour}: {growth:+.1f} MiB "
        f"({100 * growth / base.rss_mib:+.1f} %); allocated blocks {last.blocks - base.blocks:+d}"
    )
    if days > 1:
        per_day = len(hours)
        first_day, last_day = samples[per_day - 1], samples[-1]
        print(
            f"end of day 1 → end of day {days}: RSS {first_day.rss_mib:.1f} → "
            f"{last_day.rss_mib:.1f} MiB ({last_day.rss_mib - first_day.rss_mib:+.1f} MiB); "
            f"allocated blocks {last_day.blocks - first_day.blocks:+d}"
        )
    by_type = core.stats.events
    print(
        f"events: {sum(by_type.values())} ("
        + ", ".join(f"{k} {v}" for k, v in sorted(by_type.items()))
        + f"); {core.stats.app_sightings} app sightings, "
        f"{core.stats.beacon_sightings} beacon sightings, {core.stats.unrecognised} unrecognised, "
        f"{core.stats.not_beacon} not a beacon"
    )
    info = decode_ad.cache_info()
    print(f"decode cache: {info.currsize} entries, {info.hits} hits, {info.misses} misses")
    print(
        f"wall time {wall:.1f} s: simulation {sim_s:.1f} s, core {core_s:.1f} s; "
        f"{adverts / wall:,.0f} adverts/s overall, {adverts / core_s:,.0f} adverts/s through "
        f"the core ({core_s / adverts * 1e6:.2f} µs per advert; simulating one: "
        f"{sim_s / adverts * 1e6:.2f} µs, ratio core / simulation {core_s / sim_s:.2f})"
    )

    missing, latencies, unmatched = check_visits(expected, app_events)
    produced = len(expected) - len(missing)
    verdict = "yes" if not missing else "NO"
    print(
        f"every expected event produced: {verdict}: {produced} / {len(expected)} opted-in "
        f"visits have their enter event ({len(missing)} missing)"
    )
    if latencies:
        ordered = sorted(latencies)
        print(
            f"enter after arriving at the spot: median {statistics.median(ordered):.1f} s, "
            f"p95 {ordered[int(0.95 * (len(ordered) - 1))]:.1f} s, "
            f"earliest {ordered[0]:.1f} s"
        )
    print(f"opted-in presences overlapping no visit (e.g. a zone walked through): {unmatched}")
    for visit in missing[:20]:
        print(
            f"  missing: {visit.token} in {visit.zone}, "
            f"{datetime.fromtimestamp(visit.arrive, ZoneInfo(layout.timezone)):%H:%M:%S}"
            f" for {visit.leave - visit.arrive:.0f} s"
        )
    if len(missing) > 20:
        print(f"  ... and {len(missing) - 20} more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
