"""Ruleset publish fan-out: one marketer change that touches 1,000 stores, on the wire.

Run: ``python -m bench.ruleset_fanout [--stores N] [--quick]``

The cloud API runs as ``nahfeld cloud serve`` runs it (its publisher on, SQLite,
a real Mosquitto started for the run). Every store has two zones, three rules
of one fleet-wide campaign and stock for their SKUs. A subscriber on
``stores/+/ruleset`` stands in for the fleet's gateways. Figures, each a
median of several rounds:

- one change for the whole fleet: ``PUT /v1/campaigns/{id}`` (priority), from
  the request to the last store's new version received;
- a republish of everything, as after a broker restart (every ruleset and
  stock snapshot compiled and published again);
- one store's change, from the request to its ruleset received (p50, p99):
  the issue's "within one second".

Reference, in the same run: the same 1,000 rulesets, already encoded, published
straight from paho to the same broker and subscriber (no API, no database, no
compiling), so the fan-out reads as a ratio over what the broker itself costs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from cloud.api.app import create_app
from cloud.db.engine import make_engine, make_sessionmaker
from cloud.db.migrate import upgrade
from cloud.db.models import Campaign, Offer, Rule, StockLevel, Store, Tenant, Zone
from cloud.publisher import StorePublisher
from cloud.services.auth import Role, bootstrap_api_key
from cloud.settings import CloudSettings
from gateway.contract import ROOT
from tests.support.mosquitto import Broker

RULES_PER_STORE = 3


class Fleet:
    """One wildcard subscriber: the newest ruleset version seen per store, and when."""

    def __init__(self, port: int) -> None:
        self.versions: dict[str, int] = {}
        self.changed = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(f"{ROOT}/stores/+/ruleset", qos=1)
        if not subscribed.wait(10):
            raise RuntimeError("the fleet subscriber got no SUBACK")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if not msg.payload:
            return
        store = msg.topic.split("/")[3]
        version = int(json.loads(msg.payload)["version"])
        with self.changed:
            if version > self.versions.get(store, 0):
                self.versions[store] = version
            self.changed.notify_all()

    def wait_for(self, wanted: dict[str, int], timeout_s: float = 60.0) -> None:
        """Until every store in ``wanted`` was seen at that version or newer."""
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while any(self.versions.get(s, 0) < v for s, v in wanted.items()):
                if not self.changed.wait(deadline - time.monotonic()):
                    missing = sum(self.versions.get(s, 0) < v for s, v in wanted.items())
                    raise TimeoutError(f"{missing} store(s) never got their ruleset")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def seed(url: str, stores: int) -> None:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        tenant = Tenant(slug="bench")
        session.add(tenant)
        session.flush()
        session.add(Campaign(tenant_id=tenant.id, id="fleet", status="active", priority=1))
        for n in range(RULES_PER_STORE):
            session.add(
                Offer(
                    tenant_id=tenant.id, id=f"offer-{n}", campaign_id="fleet",
                    title=f"Offer {n}", sku=f"SKU-{n}",
                )
            )  # fmt: skip
        session.flush()
        names = [f"store-{s:04d}" for s in range(stores)]
        session.add_all(
            Store(id=n, tenant_id=tenant.id, name=n, timezone="Europe/Berlin") for n in names
        )
        session.add_all(Zone(store_id=name, id=z) for name in names for z in ("entrance", "coffee"))
        session.flush()  # no ORM relationships: rows a foreign key names go in first
        for store in names:
            for n in range(RULES_PER_STORE):
                session.add(
                    Rule(
                        tenant_id=tenant.id, id=f"{store}-r{n}", store_id=store,
                        offer_id=f"offer-{n}",
                        trigger={"type": "dwell", "zones": ["coffee"], "dwell_s": 20 + n},
                        audience={}, schedule={}, caps={"per_user_per_day": 1},
                    )
                )  # fmt: skip
                session.add(StockLevel(store_id=store, sku=f"SKU-{n}", quantity=10))
        session.commit()
    engine.dispose()


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def reference(port: int, payloads: dict[str, bytes], fleet: Fleet, round_: int) -> float:
    """The broker's floor: encoded rulesets published straight from paho, retained."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="reference")
    client.connect("127.0.0.1", port)
    client.loop_start()
    # topics of their own each round, so what the fleet saw before cannot count
    bumped = {f"ref{round_}-{store}": payload for store, payload in payloads.items()}
    wanted = {store: json.loads(payload)["version"] for store, payload in bumped.items()}

    def publish() -> None:
        infos = [
            client.publish(f"{ROOT}/stores/{store}/ruleset", payload, qos=1, retain=True)
            for store, payload in bumped.items()
        ]
        for info in infos:
            info.wait_for_publish(30)
        fleet.wait_for(wanted)

    seconds = timed(publish)
    client.disconnect()
    client.loop_stop()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stores", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="100 stores, 2 rounds (smoke test)")
    args = parser.parse_args(argv)
    stores, rounds = (100, 2) if args.quick else (args.stores, args.rounds)

    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp))
        broker.start()
        url = f"sqlite:///{tmp}/cloud.db"
        upgrade(url)
        seeded = timed(lambda: seed(url, stores))
        print(f"{stores} stores, {stores * RULES_PER_STORE} rules seeded in {seeded:.1f} s")
        settings = CloudSettings(database_url=url, mqtt_port=broker.port, mqtt_username=None)
        engine = make_engine(url)
        with make_sessionmaker(engine)() as session:
            key = bootstrap_api_key(session, "bench", Role.MARKETER)[1]
        headers = {"Authorization": f"Bearer {key}"}
        fleet = Fleet(broker.port)
        try:
            app = create_app(settings, publish=True)
            with TestClient(app) as client:
                publisher: StorePublisher = app.state.publisher
                # the first connection publishes every store: wait for the whole fleet
                all_stores = {f"store-{s:04d}": 1 for s in range(stores)}
                fleet.wait_for(all_stores)

                def version_of(store: str) -> int:
                    response = client.get(f"/v1/stores/{store}/ruleset", headers=headers)
                    return int(response.json()["version"])

                fleet_change, republish, reference_s = [], [], []
                payloads = {
                    store: json.dumps(
                        client.get(f"/v1/stores/{store}/ruleset", headers=headers).json()
                        | {"kind": "ruleset", "schema": 1, "compiled_at": "2026-01-01T00:00:00Z"}
                    ).encode()
                    for store in all_stores
                }
                for r in range(rounds):

                    def change_everything(priority: int = r + 2, version: int = r + 2) -> None:
                        response = client.put(
                            "/v1/campaigns/fleet",
                            json={"status": "active", "priority": priority},
                            headers=headers,
                        )
                        response.raise_for_status()
                        fleet.wait_for({store: version for store in all_stores})

                    fleet_change.append(timed(change_everything))

                    def everything() -> None:
                        publisher.publish_everything()
                        # idle: the broker acknowledged every message of the round
                        if not publisher.wait_idle(60):
                            raise TimeoutError("the republish did not finish in 60 s")

                    republish.append(timed(everything))
                    reference_s.append(reference(broker.port, payloads, fleet, r))

                one_store: list[float] = []
                store = "store-0000"
                for n in range(20 if args.quick else 100):

                    def change_one(n: int = n) -> None:
                        body = {
                            "store": store, "offer": "offer-0",
                            "trigger": {"type": "enter", "zones": ["entrance"]},
                            "ttl_s": 60 + n,
                        }  # fmt: skip
                        response = client.put(f"/v1/rules/{store}-r0", json=body, headers=headers)
                        response.raise_for_status()
                        fleet.wait_for({store: version_of(store)})

                    one_store.append(timed(change_one))
        finally:
            fleet.close()
            engine.dispose()
            broker.stop()

    med_change = statistics.median(fleet_change)
    med_all = statistics.median(republish)
    med_ref = statistics.median(reference_s)
    one_store.sort()
    p99 = one_store[min(len(one_store) - 1, int(len(one_store) * 0.99))]
    print(
        f"reference (encoded rulesets straight from paho, retained QoS 1): "
        f"{med_ref * 1000:.0f} ms for {stores} stores"
    )
    print(
        f"one change for the whole fleet (PUT campaign -> every store's new version received): "
        f"{med_change * 1000:.0f} ms, ratio to reference {med_change / med_ref:.1f}"
    )
    print(
        f"republish everything (rulesets + stock, as after a broker restart): "
        f"{med_all * 1000:.0f} ms, ratio to reference {med_all / med_ref:.1f}"
    )
    print(
        f"one store's change (PUT rule -> its ruleset received): "
        f"p50 {statistics.median(one_store) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
        f"over {len(one_store)} changes"
    )
    print(f"medians of {rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
