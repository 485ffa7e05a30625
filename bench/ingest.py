"""Offer decisions ingested per second by one and by two cloud workers.

Run: ``python -m bench.ingest [--events N] [--quick]``

A real PostgreSQL and a real Mosquitto are started for the run. 200 opted-in
installs with an MQTT push channel, one active campaign; a gateway client
publishes N offer decisions (QoS 1) as fast as the broker takes them, and the
clock stops when every one of them has a finished delivery row (sent, or
suppressed by a check). Each decision goes the whole way: shared subscription,
contract parse, token decryption, final checks under a row lock, the budget's
conditional UPDATE, the push to the app's topic, three commits.

Reference, measured in the same run: the same decisions handed straight to
the ingestion service in one thread (no broker, no MQTT), so the figures are
read as ratios on a noisy machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.engine import make_engine, make_sessionmaker
from cloud.db.migrate import upgrade
from cloud.db.models import Campaign, Delivery, Install, Offer, PushChannelRow, Store, Tenant
from cloud.final_check import GlobalCaps
from cloud.ingest.service import Ingestor
from cloud.push import PushChannel, PushResult
from cloud.resolver.tokens import store_token
from cloud.services.installs import token_secret
from cloud.settings import CloudSettings
from cloud.worker import CloudWorker, build_worker
from gateway.contract import OfferDecisionMessage, OfferPush, encode, gateway_topic
from tests.support.mosquitto import Broker
from tests.support.postgres import PostgresServer, find_pg_bin

STORE, GATEWAY, INSTALLS = "bench-store", "gw-1", 200


def seed(sessions: sessionmaker[Session]) -> bytes:
    with sessions() as session:
        tenant = Tenant(slug="bench")
        session.add(tenant)
        session.flush()
        session.add(Store(id=STORE, tenant_id=tenant.id, name="Bench", timezone="Europe/Berlin"))
        session.add(Campaign(tenant_id=tenant.id, id="spring", status="active"))
        session.add(Offer(tenant_id=tenant.id, id="latte", campaign_id="spring", title="Latte"))
        for n in range(INSTALLS):
            install = Install(
                tenant_id=tenant.id,
                uid=f"phone-{n}",
                identity_key=bytes(16),
                rotation_exponent=10,
                timezone="Europe/Berlin",
                app_token_sha256=f"{n:064x}",
            )
            session.add(install)
            session.flush()
            session.add(PushChannelRow(install_id=install.id, kind="mqtt", address=install.uid))
        session.commit()
        return token_secret(session, None)


def decisions(secret: bytes, count: int, run: str) -> list[OfferDecisionMessage]:
    now = time.time()
    return [
        OfferDecisionMessage(
            event_id=f"{run}-{n:08d}",
            trigger_event_id=f"evt-{run}-{n:08d}",
            store=STORE,
            gateway=GATEWAY,
            zone="coffee",
            token=store_token(secret, STORE, f"phone-{n % INSTALLS}"),
            ts=now,
            campaign="spring",
            offer="latte",
            expires_at=now + 3600,
        )
        for n in range(count)
    ]


def finished(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        done = or_(Delivery.sent_at.is_not(None), Delivery.suppressed_reason.is_not(None))
        return int(session.scalar(select(func.count()).where(done)) or 0)


def reset(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        session.execute(delete(Delivery))
        session.execute(update(Campaign).values(spent_redemptions=0, spent_cents=0))
        session.commit()


class Accepting:
    def send(self, channel: PushChannel, offer: OfferPush) -> PushResult:
        return PushResult(True)


def direct_rate(sessions: sessionmaker[Session], secret: bytes, events: int) -> float:
    """The reference: the ingestion service alone, one thread, no broker."""
    reset(sessions)
    ingestor = Ingestor(sessions, secret, Accepting(), GlobalCaps())
    batch = decisions(secret, events, "direct")
    started = time.perf_counter()
    for message in batch:
        ingestor.handle(message)
    return events / (time.perf_counter() - started)


def worker_rate(
    url: str, broker: Broker, sessions: sessionmaker[Session], secret: bytes, events: int, n: int
) -> tuple[float, list[int]]:
    reset(sessions)
    settings = CloudSettings(
        database_url=url,
        mqtt_port=broker.port,
        mqtt_username=None,
        cap_per_person_per_day=None,
        mqtt_session_expiry_s=0,  # a stopped run's workers must not keep a share of the next
    )
    workers: list[CloudWorker] = [build_worker(settings, name=f"bench-{n}-{k}") for k in range(n)]
    for worker in workers:
        worker.start()
    gateway = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-gw-{n}")
    gateway.max_inflight_messages_set(200)
    gateway.connect("127.0.0.1", broker.port)
    gateway.loop_start()
    topic = gateway_topic(STORE, GATEWAY, "events")
    payloads = [encode(m) for m in decisions(secret, events, f"w{n}")]
    try:
        started = time.perf_counter()
        for payload in payloads:
            gateway.publish(topic, payload, qos=1)
        deadline = started + 120
        while finished(sessions) < events:  # a count every 50 ms: little load on the database
            if time.perf_counter() > deadline:
                raise TimeoutError(f"only {finished(sessions)} of {events} finished in 120 s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        handled = [w.ingest.bus.stats.handled for w in workers]
    finally:
        gateway.disconnect()
        gateway.loop_stop()
        for worker in workers:
            worker.stop()
    return events / elapsed, handled


def measure(events: int, repeats: int) -> None:
    if find_pg_bin() is None:
        sys.exit("PostgreSQL is not installed: bash scripts/test.sh installs it")
    with tempfile.TemporaryDirectory() as tmp:
        server = PostgresServer(find_pg_bin())  # type: ignore[arg-type]
        server.init()
        server.start()
        broker = Broker(Path(tmp))
        broker.start()
        engine: Engine | None = None
        try:
            url = server.create_database("bench_ingest")
            upgrade(url)
            engine = make_engine(url)
            sessions = make_sessionmaker(engine)
            secret = seed(sessions)
            rates: dict[str, list[float]] = {"direct": [], "1 worker": [], "2 workers": []}
            shares: list[int] = []
            for _ in range(repeats):
                rates["direct"].append(direct_rate(sessions, secret, events))
                rates["1 worker"].append(worker_rate(url, broker, sessions, secret, events, 1)[0])
                rate, shares = worker_rate(url, broker, sessions, secret, events, 2)
                rates["2 workers"].append(rate)
            report(events, repeats, rates, shares)
        finally:
            if engine is not None:
                engine.dispose()
            broker.stop()
            server.destroy()


def report(events: int, repeats: int, rates: dict[str, list[float]], shares: list[int]) -> None:
    median: Callable[[list[float]], float] = statistics.median
    direct = median(rates["direct"])
    print(f"ingest: {events} offer decisions per run, {repeats} runs, medians")
    print("  PostgreSQL and Mosquitto started for the run; 200 installs, 1 campaign")
    print(f"  reference (ingestion service alone, 1 thread, no MQTT): {direct:8.0f} events/s")
    for label in ("1 worker", "2 workers"):
        rate = median(rates[label])
        print(
            f"  {label:9} over MQTT (shared subscription):      {rate:8.0f} events/s"
            f"   ratio to reference {rate / direct:.2f}"
        )
    one, two = median(rates["1 worker"]), median(rates["2 workers"])
    print(f"  2 workers / 1 worker: {two / one:.2f}   (last run's split: {shares})")
    print("command: python -m bench.ingest" + (f" --events {events}" if events != 300 else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300, help="decisions per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.repeats = 100, 1
    measure(args.events, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
