"""Gateway process CPU and memory at a fixed advert rate, through the real pipeline.

Adverts from the simulated busy store are fed at ``--rate`` adverts/s for
``--seconds`` into the daemon's ``Gateway`` (core, offer engine, SQLite
outbox, paho MQTT link to a real Mosquitto started here); only bleak is left
out. Beside it, in the same run, the core alone on the same adverts. The
figure to read: CPU % of one core per 1,000 adverts/s, and the process RSS.

    python -m bench.gateway_pipeline [--rate 1000] [--seconds 20] [--quick]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.core import Profile, build_stream
from gateway.ble.decode import decode_ad
from gateway.ble.eid import EidIdentity, EidTable
from gateway.contract import Ruleset, store_topic
from gateway.core import GatewayCore
from gateway.daemon import Gateway
from gateway.layout import StoreLayout
from gateway.recognise import EidCache
from gateway.scanner import Advert
from gateway.settings import GatewaySettings, MqttSettings
from tests.support.mosquitto import Broker, wait_until


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def welcome_ruleset(layout: StoreLayout) -> Ruleset:
    return Ruleset.model_validate(
        {
            "store": layout.store,
            "version": 1,
            "compiled_at": "2026-01-01T00:00:00Z",
            "timezone": layout.timezone,
            "rules": [
                {
                    "id": "welcome",
                    "campaign": "spring",
                    "offer": "ten-percent",
                    "trigger": {"type": "enter", "zones": [z.id for z in layout.zones]},
                    "caps": {"per_user_per_day": 1},
                }
            ],
        }
    )


def connected_gateway(
    layout: StoreLayout, identities: Sequence[EidIdentity], workdir: Path, port: int
) -> Gateway:
    """The daemon's ``Gateway`` as ``gw-0``, the stream's identities resolved locally (no
    cloud), the welcome ruleset applied, connected to the broker on ``port``."""
    settings = GatewaySettings(
        store=layout.store,
        gateway="gw-0",
        layout=workdir / "layout.toml",
        data_dir=workdir / "data",
        mqtt=MqttSettings(port=port),
        metrics_port=0,
    )
    gateway = Gateway(settings, layout)
    gateway.core.eids.local = EidTable(list(identities))
    gateway.on_message(store_topic(layout.store, "ruleset"), welcome_ruleset(layout))
    gateway.link.start()
    wait_until(gateway.link.connected.is_set, 10, "the broker")
    return gateway


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="adverts per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="3 s, for the smoke test")
    args = parser.parse_args(argv)
    seconds = 3.0 if args.quick else args.seconds
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        print("skipped: mosquitto is not installed (scripts/test.sh installs it)")
        return 0
    count = int(args.rate * seconds)
    # phones walk in over the first half of the simulated day: start the feed in
    # the middle, when the store is busy and phones enter zones
    profile = Profile(
        phones=400, duration_s=max(240.0, seconds * 12), rounds=1, reference_adverts=0
    )
    # dated now: fed in real time, its offers must not expire in the outbox
    stream = build_stream(profile, seed=7, start=time.time())
    layout, identities = stream.layout, stream.identities
    middle = len(stream.records) // 2
    records = stream.records[middle : middle + count]
    adverts = [
        (ts, gw, Advert(0.0, ts, "AA:BB:CC:DD:EE:FF", rssi, decode_ad(ad)), ad)
        for ts, gw, rssi, ad in records
    ]

    print("# Gateway pipeline benchmark (python -m bench.gateway_pipeline)")
    print(f"{count} adverts at {args.rate:.0f}/s for {seconds:.0f} s; 400 phones, 30 beacons\n")

    # reference: the core alone, same adverts, as fast as it goes
    core = GatewayCore(layout, EidCache(local=EidTable(identities)))
    before = cpu_seconds()
    for ts, gw, advert, _ in adverts:
        core.on_decoded(ts, gw, advert.rssi, advert.decoded)
    core_cpu = cpu_seconds() - before

    with tempfile.TemporaryDirectory() as workdir:
        broker = Broker(Path(workdir))
        broker.start()
        try:
            gateway = connected_gateway(layout, identities, Path(workdir), broker.port)
            rss_before = rss_mib()
            started_wall, started_cpu = time.monotonic(), cpu_seconds()
            interval = 1.0 / args.rate
            for n, (_, _, advert, _) in enumerate(adverts):
                due = started_wall + n * interval
                pause = due - time.monotonic()
                if pause > 0.002:
                    time.sleep(pause)  # pacing the feed, not synchronising anything
                gateway.on_advert(advert)
            wait_until(lambda: len(gateway.outbox) == 0, 30, "the outbox to drain")
            wall = time.monotonic() - started_wall
            cpu = cpu_seconds() - started_cpu
            rss_after = rss_mib()
            outbox = gateway.outbox.stats
            gateway.link.stop()
        finally:
            broker.stop()

    per_k = cpu / wall * 100 * 1000 / args.rate
    print(f"{'what':<52} {'figure':>12}")
    print(f"{'core alone, CPU per advert':<52} {core_cpu / count * 1e6:>10.1f} µs")
    print(f"{'gateway pipeline, CPU per advert':<52} {cpu / count * 1e6:>10.1f} µs")
    print(f"{'gateway pipeline, CPU % of one core per 1,000/s':<52} {per_k:>11.1f} %")
    print(f"{'process RSS before / after the run':<52} {rss_before:>5.0f} / {rss_after:.0f} MiB")
    delivered = f"{outbox.queued} / {outbox.acked}"
    print(f"{'messages queued / delivered to Mosquitto':<52} {delivered:>12}")
    dropped = outbox.dropped_expired + outbox.dropped_overflow
    print(f"{'messages dropped (expired or overflow)':<52} {dropped:>12}")
    print(f"ratio pipeline / core alone (CPU per advert): {cpu / core_cpu:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
