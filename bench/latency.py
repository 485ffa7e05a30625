"""Latency from an advert reaching the gateway to the offer on the app's topic.

Run: ``python -m bench.latency [--phones N] [--quick]``

The real path, through a real Mosquitto started for the run: the daemon's
``Gateway`` (core, offer engine, SQLite outbox, MQTT link), the cloud worker
(resolver and ingestion with its final checks, on SQLite) and the cloud API's
ruleset publisher; one rule, ``enter`` at the entrance. Only bleak is left
out: each advert is handed to ``Gateway.on_advert`` as the scanner would. The
clock starts when a phone's advert is handed over and stops when its offer
arrives on its app topic. Phones come one at a time, so each figure is one
offer's own path. Two cases:

- warm: the phone's EID was resolved a little earlier (it was heard from
  afar, outside the zone), as for a shopper walking in from the street;
- cold: the first advert the gateway ever hears from the phone, so the EID's
  resolve round trip (gateway → cloud → gateway, asked every 0.2 s) is in it.

Reference, in the same run: one MQTT hop through the same broker (paho
publisher to paho subscriber, QoS 1); a warm offer makes two such hops
(gateway → cloud → app), a cold one four.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import paho.mqtt.client as mqtt
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from cloud.api.app import create_app
from cloud.db.engine import make_engine, make_sessionmaker
from cloud.db.migrate import upgrade
from cloud.services.auth import Role, bootstrap_api_key
from cloud.settings import CloudSettings
from cloud.worker import build_worker
from demo.app_client import AppClient
from gateway.ble.decode import decode_ad
from gateway.contract import ROOT
from gateway.daemon import RESOLVE_INTERVAL_S, Gateway
from gateway.layout import parse_layout
from gateway.scanner import Advert
from gateway.settings import GatewaySettings, MqttSettings
from tests.support.layouts import door_layout
from tests.support.mosquitto import Broker

STORE, GATEWAY, TENANT = "bench-store", "gw-1", "bench"
LAYOUT = door_layout(STORE, GATEWAY)
NEAR_RSSI, FAR_RSSI = -55, -95  # about 0.7 m, and 35 m: heard, but outside the zone
ADVERT_INTERVAL_S = 0.1


class Arrivals:
    """Every offer on ``apps/+/offers``, timed on arrival."""

    def __init__(self, port: int) -> None:
        self.at: dict[str, float] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-phones")
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(f"{ROOT}/apps/+/offers", qos=1)
        if not subscribed.wait(10):
            raise RuntimeError("no SUBACK for the phones' topics")

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.at.setdefault(msg.topic.split("/")[3], time.perf_counter())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def one_hop(port: int, count: int) -> list[float]:
    """The reference: one QoS 1 message through the broker, publisher to subscriber."""
    arrived = threading.Event()
    receiver = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-ref-sub")
    subscribed = threading.Event()
    receiver.on_subscribe = lambda *_: subscribed.set()
    receiver.on_message = lambda *_: arrived.set()
    receiver.connect("127.0.0.1", port)
    receiver.loop_start()
    receiver.subscribe("bench/ref", qos=1)
    subscribed.wait(10)
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-ref-pub")
    sender.connect("127.0.0.1", port)
    sender.loop_start()
    samples = []
    for _ in range(count):
        arrived.clear()
        started = time.perf_counter()
        sender.publish("bench/ref", b"x" * 300, qos=1)
        if not arrived.wait(5):
            raise TimeoutError("the reference message did not arrive")
        samples.append(time.perf_counter() - started)
    for client in (sender, receiver):
        client.disconnect()
        client.loop_stop()
    return samples


def seed(client: TestClient, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    for path, body in [
        ("/v1/stores", {"id": STORE, "name": "Bench", "timezone": "Europe/Berlin"}),
        (f"/v1/stores/{STORE}/zones", {"id": "entrance"}),
        ("/v1/campaigns", {"id": "welcome", "status": "active"}),
        ("/v1/offers", {"id": "hello", "campaign": "welcome", "title": "Hello!"}),
        (
            "/v1/rules",
            {
                "id": "hello-at-door",
                "store": STORE,
                "offer": "hello",
                "trigger": {"type": "enter", "zones": ["entrance"]},
            },
        ),
    ]:
        response = client.post(path, json=body, headers=headers)
        if response.status_code != 201:
            raise RuntimeError(f"{path}: {response.status_code} {response.text}")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(
    gateway: Gateway, apps: list[AppClient], arrivals: Arrivals, warm: bool
) -> list[float]:
    """Each phone walks in, one after another; returns seconds from advert to offer."""

    async def resolve_loop() -> None:  # the daemon's cadence
        while True:
            await asyncio.sleep(RESOLVE_INTERVAL_S)
            gateway.resolve_pending()

    resolver = asyncio.create_task(resolve_loop())
    samples = []
    try:
        for app in apps:
            now = time.time()
            decoded = decode_ad(app.advert(now))
            if warm:  # heard from the street first: the EID is resolved before it counts
                gateway.on_advert(Advert(time.monotonic(), now, "AA:00", FAR_RSSI, decoded))
                await _until(partial(gateway.core.eids.knows, app.eid(now).hex()), 5)
            started = time.perf_counter()
            # the phone advertises every 100 ms, as the app does, until its offer arrives
            while app.install_id not in arrivals.at:
                if time.perf_counter() - started > 10:
                    raise TimeoutError(f"no offer for {app.install_id} within 10 s")
                advert = Advert(time.monotonic(), time.time(), "AA:00", NEAR_RSSI, decoded)
                gateway.on_advert(advert)
                await asyncio.sleep(ADVERT_INTERVAL_S)
            samples.append(arrivals.at[app.install_id] - started)
    finally:
        resolver.cancel()
    return samples


async def _until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the phone's EID was not resolved")
        await asyncio.sleep(0.005)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phones", type=int, default=60, help="phones per case (default 60)")
    parser.add_argument("--quick", action="store_true", help="10 phones per case (smoke test)")
    args = parser.parse_args(argv)
    phones = 10 if args.quick else args.phones

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = Broker(work)
        broker.start()
        url = f"sqlite:///{work / 'cloud.db'}"
        upgrade(url)
        engine = make_engine(url)
        with make_sessionmaker(engine)() as session:
            key = bootstrap_api_key(session, TENANT, Role.ADMIN)[1]
        settings = CloudSettings(
            database_url=url,
            mqtt_port=broker.port,
            mqtt_username=None,
            cap_per_person_per_day=None,
            mqtt_session_expiry_s=0,
        )
        arrivals = Arrivals(broker.port)
        worker = build_worker(settings, name="bench", advance_every_s=1.0)
        layout_path = work / "layout.toml"
        layout_path.write_text(LAYOUT)
        gateway = Gateway(
            GatewaySettings(
                store=STORE,
                gateway=GATEWAY,
                layout=layout_path,
                data_dir=work / "gateway",
                mqtt=MqttSettings(port=broker.port),
                flush_s=0.5,
            ),
            parse_layout(LAYOUT),
        )
        try:
            with TestClient(create_app(settings, engine=engine, publish=True)) as client:
                seed(client, key)
                apps = []
                for n in range(2 * phones):
                    app = AppClient(client, TENANT, f"phone-{n:04d}")
                    app.opt_in()
                    apps.append(app)
                worker.start()  # after the opt-ins: its table starts with every phone

                async def run() -> tuple[list[float], list[float]]:
                    gateway.loop = asyncio.get_running_loop()
                    gateway.link.start()
                    await _until(lambda: gateway.engine is not None, 10)
                    warm = await measure(gateway, apps[:phones], arrivals, warm=True)
                    cold = await measure(gateway, apps[phones:], arrivals, warm=False)
                    return warm, cold

                warm, cold = asyncio.run(run())
            reference = one_hop(broker.port, 200)
        finally:
            gateway.link.stop()
            gateway.outbox.close()
            worker.stop()
            arrivals.close()
            engine.dispose()
            broker.stop()

    hop = statistics.median(reference)
    print(
        f"reference: one MQTT hop through Mosquitto (QoS 1): p50 {hop * 1000:.2f} ms, "
        f"p99 {percentile(reference, 0.99) * 1000:.2f} ms"
    )
    for name, samples, hops in (("warm", warm, 2), ("cold", cold, 4)):
        p50, p99 = statistics.median(samples), percentile(samples, 0.99)
        print(
            f"{name} (advert → offer on the app topic, {len(samples)} phones): "
            f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms; "
            f"p50 / ({hops} hops x reference p50) = {p50 / (hops * hop):.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
