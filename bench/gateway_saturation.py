"""The gateway process under a saturated BLE radio: 3,000 adverts/s for a minute.

Same path as ``bench/gateway_pipeline.py`` (whose helpers this imports): adverts
fed at ``--rate`` adverts/s for ``--seconds`` into the daemon's ``Gateway``
(core, offer engine with a welcome rule on every zone, SQLite outbox, paho MQTT
link to a real Mosquitto started here); only bleak is left out, the adverts
are decoded before the clock starts as the scanner would hand them over.
Like that benchmark, every advert is handed to the gateway as its own
(``gw-0``) radio, whichever simulated gateway heard it.

The stream is ``bench.core``'s simulated busy store (its layout, its mix:
10 % opted-in EID phones, 2 % other apps' EID phones, the rest anonymous) with
enough phones (1,600 for a minute) that it carries about 3,000 adverts per
simulated second where it is taken from (after 100 s, once the store has
filled). Simulated time therefore runs at about the speed of the wall clock,
events come at the rate such a crowd causes, and the simulation starts at the
current time so that offer decisions are still valid when they are sent (a
stream dated in the past would see them dropped as expired). The stream is
built in a child process, so the gateway process's RSS holds only the
adverts to feed (their share is printed).

Measured: CPU % of one core (process CPU time, all threads, over wall time
of the feed; the pacing loop's clock reads and sleeps are in it, as the
scanner's wake-ups would be), CPU per advert including the outbox drain, the
rate actually sustained and how far the feed fell behind its schedule,
process RSS at the start and end of the feed and its peak (sampled every
second), events and messages queued and delivered. Reference, same run,
same adverts: the core alone as fast as it goes, CPU per advert, and the
ratio. Nothing here asserts a speed. At another ``--rate`` the stream is the
same, so simulated time runs faster or slower than the wall clock.

    python -m bench.gateway_saturation [--rate 3000] [--seconds 60] [--quick]  # --quick: 5 s

The default run takes about 70 s: the minute of feed, plus building the
stream, the reference and the broker.
"""

from __future__ import annotations

import argparse
import bisect
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.core import build_layout
from bench.gateway_pipeline import connected_gateway, cpu_seconds, rss_mib
from gateway.ble.decode import decode_ad
from gateway.ble.eid import EidIdentity, EidTable
from gateway.core import GatewayCore
from gateway.recognise import EidCache
from gateway.scanner import Advert
from gateway.sim.store import StoreSimulation, demo_identities
from tests.support.mosquitto import Broker, wait_until

#: (unix time, RSSI, raw AD bytes) of one advert to feed
Record = tuple[float, int, bytes]

#: phones per 240 simulated seconds that make ~3,000 adverts/s once the store has filled
PHONES_PER_240_S = 1_600
#: the stream is taken from here on: phones walk in over the first half of the simulation
SKIP_S = 100.0
RSS_SAMPLE_S = 1.0
SEED = 7


def build_records(
    identities: list[EidIdentity], phones: int, start: float, duration_s: float, count: int
) -> list[Record]:
    """``count`` adverts of the simulated store from ``SKIP_S`` on (run in a child process)."""
    strangers = max(1, phones // 50)
    sim = StoreSimulation(
        build_layout(),
        identities,
        start=start,
        duration_s=duration_s,
        anonymous_phones=phones - len(identities) - strangers,
        stranger_eid_phones=strangers,
        seed=SEED,
    )
    records = [(r.ts, r.rssi, r.ad) for r in sim.records()]
    first = bisect.bisect_left(records, start + SKIP_S, key=lambda r: r[0])
    return records[first : first + count]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=3000.0, help="adverts per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="5 s, for the smoke test")
    args = parser.parse_args(argv)
    seconds = 5.0 if args.quick else args.seconds
    rate: float = args.rate
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        print("skipped: mosquitto is not installed (scripts/test.sh installs it)")
        return 0

    duration = max(240.0, SKIP_S + 20.0 + 2 * seconds)
    phones = round(PHONES_PER_240_S * duration / 240.0)
    layout = build_layout()
    identities = demo_identities(max(1, phones // 10), seed=SEED)
    wanted = int(rate * seconds)
    start = float(int(time.time() - SKIP_S))  # the part fed begins about now
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        records = pool.submit(build_records, identities, phones, start, duration, wanted).result()
    rss_empty = rss_mib()
    adverts = [
        Advert(0.0, ts, "AA:BB:CC:DD:EE:FF", rssi, decode_ad(ad)) for ts, rssi, ad in records
    ]
    count = len(adverts)
    simulated_s = records[-1][0] - records[0][0]
    del records
    adverts_mib = rss_mib() - rss_empty

    print("# Gateway saturation benchmark (python -m bench.gateway_saturation)")
    print(
        f"{count} adverts at {rate:.0f}/s for {count / rate:.0f} s "
        f"({simulated_s:.0f} s of simulated store); {phones} phones "
        f"({len(identities)} opted-in EID), {len(layout.beacons)} store beacons"
    )
    if count < wanted:
        print(f"note: the stream had only {count} of the {wanted} adverts asked for")
    print()

    # reference: the core alone, same adverts, as fast as it goes
    core = GatewayCore(layout, EidCache(local=EidTable(identities)))
    before = cpu_seconds()
    for advert in adverts:
        core.on_decoded(advert.unix, "gw-0", advert.rssi, advert.decoded)
    del core
    core_cpu = cpu_seconds() - before

    with tempfile.TemporaryDirectory() as workdir:
        broker = Broker(Path(workdir))
        broker.start()
        try:
            gateway = connected_gateway(layout, identities, Path(workdir), broker.port)
            rss_start = rss_mib()
            rss_samples = [rss_start]
            started_wall, started_cpu = time.monotonic(), cpu_seconds()
            next_sample = started_wall + RSS_SAMPLE_S
            interval = 1.0 / rate
            for n, advert in enumerate(adverts):
                now = time.monotonic()
                pause = started_wall + n * interval - now
                if pause > 0.002:
                    time.sleep(pause)  # pacing the feed, not synchronising anything
                elif now >= next_sample:
                    rss_samples.append(rss_mib())
                    next_sample += RSS_SAMPLE_S
                gateway.on_advert(advert)
            fed_wall = time.monotonic() - started_wall
            fed_cpu = cpu_seconds() - started_cpu
            behind = fed_wall - (count - 1) * interval
            rss_end = rss_mib()
            rss_samples.append(rss_end)
            wait_until(lambda: len(gateway.outbox) == 0, 60, "the outbox to drain")
            total_wall = time.monotonic() - started_wall
            total_cpu = cpu_seconds() - started_cpu
            queued, delivered = gateway.outbox.stats.queued, gateway.outbox.stats.acked
            dropped = gateway.outbox.stats.dropped_overflow + gateway.outbox.stats.dropped_expired
            events = gateway.core.stats.events
            gateway.link.stop()
            gateway.outbox.close()
        finally:
            broker.stop()

    high_water = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per_advert = total_cpu / count * 1e6
    core_per_advert = core_cpu / count * 1e6
    print(f"{'what':<58} {'figure':>16}")
    print(f"{'core alone, CPU per advert (reference)':<58} {core_per_advert:>13.1f} µs")
    print(f"{'gateway, CPU per advert (feed and outbox drain)':<58} {per_advert:>13.1f} µs")
    print(f"{'gateway, CPU % of one core during the feed':<58} {100 * fed_cpu / fed_wall:>14.1f} %")
    print(f"{'adverts/s sustained (fed / wall time of the feed)':<58} {count / fed_wall:>16.0f}")
    print(f"{'feed behind its schedule at the last advert':<58} {behind:>15.3f} s")
    print(
        f"{'process RSS at start / end / peak of the feed':<58} "
        f"{rss_start:>5.0f} / {rss_end:.0f} / {max(rss_samples):.0f} MiB"
    )
    print(f"{'  of which the pre-built adverts waiting to be fed':<58} {adverts_mib:>12.0f} MiB")
    print(f"{'process RSS high-water mark':<58} {high_water:>12.0f} MiB")
    print(
        f"{'presence events':<58} {sum(events.values()):>16}  ("
        + ", ".join(f"{k} {v}" for k, v in sorted(events.items()))
        + ")"
    )
    print(f"{'messages queued / delivered to Mosquitto':<58} {queued:>7} / {delivered}")
    print(f"{'messages dropped (outbox overflow or expiry)':<58} {dropped:>16}")
    print(f"{'outbox drained after the last advert':<58} {total_wall - fed_wall:>15.2f} s")
    print(f"ratio gateway / core alone (CPU per advert): {per_advert / core_per_advert:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
