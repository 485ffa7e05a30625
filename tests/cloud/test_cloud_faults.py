"""Faults the cloud survives, on PostgreSQL and a real Mosquitto: a worker killed with
``kill -9`` in the middle of ingesting, and the database restarting under a running
worker. After each: no event lost, none applied twice, the budget not exceeded. And a
worker taken away for good (``--retire``): its share goes to the workers that stay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from cloud.db.engine import make_sessionmaker
from cloud.db.models import Campaign
from gateway.ble.eid import eid_at
from gateway.contract import gateway_topic
from tests.support.mosquitto import Broker, Listener, wait_until
from tests.support.postgres import PostgresServer

from .conftest import Api
from .test_app_api import app_headers, opt_in
from .test_cloud_worker import GATEWAY, STORE_ID, decision, offers, resolve, start_worker

EVENTS = gateway_topic(STORE_ID, GATEWAY, "events")
PHONES = [f"phone-{n}" for n in range(1, 11)]


@pytest.fixture
def gateway(broker: Broker) -> Iterator[Listener]:
    listener = Listener(broker.port, [gateway_topic(STORE_ID, GATEWAY, "resolved")], "gw-1")
    yield listener
    listener.close()


def phones_with_tokens(
    api: Api, gateway: Listener, database_url: str, broker: Broker
) -> dict[str, str]:
    """Opt the phones in and learn their per-store tokens the way a gateway does."""
    keys = {}
    for install in PHONES:
        created = opt_in(api, install)
        keys[install] = bytes.fromhex(created["identity_key"]), created["rotation_exponent"]
        assert api.client.put(
            "/v1/app/me/channels/mqtt", json={}, headers=app_headers(created)
        ).is_success
    # named as the worker under test: a worker of another name would keep a persistent
    # session in the shared subscription, and with it a share of the events
    resolver = start_worker(database_url, broker, "w")
    try:
        return {
            install: resolve(gateway, eid_at(*keys[install], time.time()).hex(), n)
            .resolved[0]
            .token
            for n, install in enumerate(PHONES)
        }
    finally:
        resolver.stop()


def spent(engine: Engine) -> int:
    with make_sessionmaker(engine)() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.id == "spring"))
        assert campaign is not None
        return campaign.spent_redemptions


def funnel(api: Api) -> dict[str, Any]:
    result: dict[str, Any] = api.ok(api.get("viewer", "/v1/funnel", params={"campaign": "spring"}))
    return result


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_worker_killed_mid_stream_loses_nothing_and_sends_nothing_twice(
    api: Api,
    store: dict[str, Any],
    database_url: str,
    engine: Engine,
    broker: Broker,
    gateway: Listener,
    tmp_path: Path,
) -> None:
    api.ok(
        api.put(
            "marketer",
            "/v1/campaigns/spring",
            json={"status": "active", "budget": {"redemptions": 40}},
        )
    )
    tokens = phones_with_tokens(api, gateway, database_url, broker)
    app = Listener(broker.port, [f"nahfeld/v1/apps/{p}/offers" for p in PHONES], "all-phones")
    env = {
        **os.environ,
        "NAHFELD_CLOUD_DATABASE_URL": database_url,
        "NAHFELD_CLOUD_MQTT_PORT": str(broker.port),
        "NAHFELD_CLOUD_MQTT_USERNAME": "",
        "NAHFELD_CLOUD_CAP_PER_PERSON_PER_DAY": "1000",
    }

    def worker() -> subprocess.Popen[bytes]:
        log = (tmp_path / "worker.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "cloud", "worker", "--name", "w"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip

    def pushed() -> list[str]:
        return [o.delivery_id for p in PHONES for o in offers(app, p)]

    first = worker()
    try:
        wait_until(
            lambda: b"cloud worker running" in (tmp_path / "worker.log").read_bytes(),
            30,
            "the worker",
        )
        for n in range(60):
            gateway.client.publish(EVENTS, decision(tokens[PHONES[n % len(PHONES)]], n), 1)
        wait_until(lambda: len(pushed()) >= 10, 30, "the worker busy ingesting")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = len(pushed())
        second = worker()  # the same name: its broker session still holds the rest
        try:
            wait_until(lambda: funnel(api)["triggered"] == 60, 60, "every decision recorded")
            wait_until(
                lambda: len(set(pushed())) == 40,
                30,
                "40 offers pushed",
                lambda: (len(pushed()), len(set(pushed())), funnel(api), spent(engine)),
            )
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(15)
    finally:
        first.kill()
        app.close()
    result = funnel(api)
    assert result["sent"] == 40 and result["suppressed"] == {"budget_spent": 20}, result
    assert spent(engine) == 40  # the budget, exactly: never exceeded
    assert killed_at < 40  # the kill came before the end
    # at most the one offer in flight at the kill went out twice (same delivery id)
    assert len(pushed()) - len(set(pushed())) <= 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_database_restart_under_a_running_worker_loses_nothing(
    api: Api,
    store: dict[str, Any],
    database_url: str,
    engine: Engine,
    broker: Broker,
    gateway: Listener,
    postgres: PostgresServer,
) -> None:
    tokens = phones_with_tokens(api, gateway, database_url, broker)
    app = Listener(broker.port, [f"nahfeld/v1/apps/{p}/offers" for p in PHONES], "all-phones")
    running = start_worker(database_url, broker, "w")
    try:
        for n in range(10):
            gateway.client.publish(EVENTS, decision(tokens[PHONES[n]], n), 1)
        wait_until(lambda: funnel(api)["sent"] == 10, 30, "the first ten sent")
        postgres.stop()
        try:
            for n in range(10, 30):
                gateway.client.publish(EVENTS, decision(tokens[PHONES[n % 10]], n), 1)
            bus = running.ingest.bus
            wait_until(
                lambda: bus.stats.handler_errors >= 1, 30, "the worker failing on the database"
            )
        finally:
            postgres.start()
        wait_until(
            lambda: funnel(api)["sent"] == 30, 60, "every decision sent once the database is back"
        )
        ids = [o.delivery_id for p in PHONES for o in offers(app, p)]
        assert len(set(ids)) == 30
        assert funnel(api)["triggered"] == 30
        wait_until(lambda: running.ingest.bus.stats.retried >= 1, 5, "the retries counted")
    finally:
        running.stop()
        app.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_broker_restart_under_a_running_worker_loses_nothing(
    api: Api,
    store: dict[str, Any],
    database_url: str,
    broker: Broker,
    gateway: Listener,
) -> None:
    """Mosquitto restarts (keeping its sessions on disk) between two bursts of decisions;
    the worker reconnects on its own and every decision is sent once."""
    tokens = phones_with_tokens(api, gateway, database_url, broker)
    app = Listener(broker.port, [f"nahfeld/v1/apps/{p}/offers" for p in PHONES], "all-phones")
    running = start_worker(database_url, broker, "w")
    try:
        for n in range(10):
            gateway.client.publish(EVENTS, decision(tokens[PHONES[n]], n), 1)
        wait_until(lambda: funnel(api)["sent"] == 10, 30, "the first ten sent")
        broker.stop()
        broker.start()
        bus = running.ingest.bus
        wait_until(lambda: bus.connected.is_set() and bus.stats.connects >= 2, 30, "reconnected")
        wait_until(gateway.client.is_connected, 30, "the gateway back")
        for n in range(10, 20):
            gateway.client.publish(EVENTS, decision(tokens[PHONES[n % 10]], n), 1)
        wait_until(lambda: funnel(api)["sent"] == 20, 30, "all twenty sent")
        wait_until(
            lambda: len({o.delivery_id for p in PHONES for o in offers(app, p)}) == 20,
            30,
            "all twenty on the phones",
        )
        assert funnel(api)["triggered"] == 20
    finally:
        running.stop()
        app.close()


@pytest.mark.timeout(120)
def test_a_retired_worker_hands_over_its_share_and_leaves_nothing_queued(
    api: Api, store: dict[str, Any], database_url: str, broker: Broker, gateway: Listener
) -> None:
    # "w" resolved the phones' tokens and stopped: its session stays in the shared
    # subscription, so the broker queues a share of the next events for it
    tokens = phones_with_tokens(api, gateway, database_url, broker)
    staying = start_worker(database_url, broker, "b")
    try:
        for n in range(10):
            gateway.client.publish(EVENTS, decision(tokens[PHONES[n]], n), 1)
        wait_until(lambda: funnel(api)["triggered"] >= 1, 30, "the staying worker's share")
        retiring = start_worker(database_url, broker, "w")
        assert retiring.retire(quiet_s=1.0, timeout_s=30)
        wait_until(lambda: funnel(api)["sent"] == 10, 30, "the retired worker's queue handled")
        # from now on every event goes to the worker that stays: none waits for "w"
        for n in range(10, 20):
            gateway.client.publish(EVENTS, decision(tokens[PHONES[n % 10]], n), 1)
        wait_until(lambda: funnel(api)["sent"] == 20, 30, "all twenty sent by the other")
        assert funnel(api)["triggered"] == 20
    finally:
        staying.stop()
