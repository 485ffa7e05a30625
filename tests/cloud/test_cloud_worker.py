"""The cloud worker on a real Mosquitto: EIDs resolved from the database's installs,
offer decisions ingested through the shared subscription and pushed to the app."""

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

from cloud.settings import CloudSettings
from cloud.worker import CloudWorker, build_worker
from gateway.ble.eid import eid_at
from gateway.contract import (
    OfferDecisionMessage,
    OfferPush,
    ResolveRequest,
    ResolveResponse,
    app_offers_topic,
    encode,
    gateway_topic,
    parse_message,
)
from tests.support.mosquitto import Broker, Listener, wait_until

from .conftest import STORE, Api
from .test_app_api import app_headers, opt_in

STORE_ID, GATEWAY = str(STORE["id"]), "gw-1"
RESOLVED = gateway_topic(STORE_ID, GATEWAY, "resolved")


def start_worker(database_url: str, broker: Broker, name: str) -> CloudWorker:
    settings = CloudSettings(
        database_url=database_url,
        mqtt_port=broker.port,
        mqtt_username=None,
        cap_per_person_per_day=None,
    )
    worker = build_worker(settings, name=name, advance_every_s=0.5)
    worker.start()
    return worker


@pytest.fixture
def gateway(broker: Broker) -> Iterator[Listener]:
    listener = Listener(broker.port, [RESOLVED], "gw-1-probe")
    yield listener
    listener.close()


def resolve(gateway: Listener, eid: str, n: int) -> ResolveResponse:
    request = ResolveRequest(
        request_id=f"req-{n:08d}", store=STORE_ID, gateway=GATEWAY, ts=time.time(), eids=[eid]
    )
    gateway.client.publish(gateway_topic(STORE_ID, GATEWAY, "resolve"), encode(request), 1)

    def answer() -> ResolveResponse | None:
        for payload in gateway.on(RESOLVED):
            message = parse_message(RESOLVED, payload)
            if isinstance(message, ResolveResponse) and message.request_id == request.request_id:
                return message
        return None

    wait_until(lambda: answer() is not None, 10, f"the answer to {request.request_id}")
    response = answer()
    assert response is not None
    return response


def decision(token: str, n: int, **overrides: Any) -> bytes:
    fields: dict[str, Any] = {
        "event_id": f"dec-{n:08d}",
        "trigger_event_id": f"evt-{n:08d}",
        "store": STORE_ID,
        "gateway": GATEWAY,
        "zone": "coffee",
        "token": token,
        "ts": time.time(),
        "campaign": "spring",
        "offer": "latte",
        "expires_at": time.time() + 600,
    }
    fields.update(overrides)
    return encode(OfferDecisionMessage(**fields))


def offers(app: Listener, install: str) -> list[OfferPush]:
    topic = app_offers_topic(install)
    return [m for p in app.on(topic) if isinstance(m := parse_message(topic, p), OfferPush)]


def test_an_opted_in_phone_is_resolved_and_its_offer_pushed(
    api: Api, store: dict[str, Any], database_url: str, broker: Broker, gateway: Listener
) -> None:
    created = opt_in(api, "phone-1")
    assert api.client.put(
        "/v1/app/me/channels/mqtt", json={}, headers=app_headers(created)
    ).is_success
    app = Listener(broker.port, [app_offers_topic("phone-1")], "phone-1")
    worker = start_worker(database_url, broker, "a")
    try:
        key, k = bytes.fromhex(created["identity_key"]), created["rotation_exponent"]
        response = resolve(gateway, eid_at(key, k, time.time()).hex(), 1)
        [resolved] = response.resolved
        assert "phone-1" not in resolved.token  # a per-store pseudonym, never the install id
        stranger = resolve(gateway, "00112233445566ff", 2)
        assert stranger.resolved == []

        publish = gateway.client.publish
        publish(gateway_topic(STORE_ID, GATEWAY, "events"), decision(resolved.token, 1), 1)
        wait_until(lambda: offers(app, "phone-1"), 10, "the offer on the app's topic")
        [offer] = offers(app, "phone-1")
        assert (offer.campaign, offer.offer, offer.title) == ("spring", "latte", "2-for-1 latte")
        funnel = api.get("viewer", "/v1/funnel", params={"campaign": "spring"}).json()
        assert (funnel["triggered"], funnel["sent"]) == (1, 1)

        # opting out: the next resolve answers nothing for the phone and revokes its token
        assert api.client.post("/v1/app/me/opt-out", headers=app_headers(created)).is_success
        assert resolve(gateway, eid_at(key, k, time.time()).hex(), 3).resolved == []  # at once
        answers = iter(range(4, 1000))  # the relay of revocations is read every 2 s at most

        def revoked() -> bool:
            response = resolve(gateway, "00112233445566ff", next(answers))
            return resolved.token in response.revoked_tokens

        wait_until(revoked, 10, "the revoked token in a resolve answer")
    finally:
        worker.stop()
        app.close()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_workers_share_the_events_and_each_offer_goes_out_once(
    api: Api, store: dict[str, Any], database_url: str, broker: Broker, gateway: Listener
) -> None:
    """PostgreSQL: several workers need a database that takes concurrent writers."""
    installs = [f"phone-{n}" for n in range(1, 11)]
    keys: dict[str, tuple[bytes, int]] = {}
    for install in installs:
        created = opt_in(api, install)
        keys[install] = bytes.fromhex(created["identity_key"]), created["rotation_exponent"]
        headers = app_headers(created)
        assert api.client.put("/v1/app/me/channels/mqtt", json={}, headers=headers).is_success
    app = Listener(broker.port, [app_offers_topic(i) for i in installs], "all-phones")
    workers = [start_worker(database_url, broker, name) for name in ("a", "b")]
    try:
        tokens = {}  # as a gateway gets them: by resolving each phone's EID
        for n, install in enumerate(installs):
            [resolved] = resolve(gateway, eid_at(*keys[install], time.time()).hex(), n).resolved
            tokens[install] = resolved.token
        events = 60
        topic = gateway_topic(STORE_ID, GATEWAY, "events")
        for n in range(events):
            gateway.client.publish(topic, decision(tokens[installs[n % len(installs)]], n), 1)
        wait_until(
            lambda: sum(len(offers(app, i)) for i in installs) >= events, 30, "every offer pushed"
        )
        ids = [offer.delivery_id for i in installs for offer in offers(app, i)]
        assert len(ids) == len(set(ids)) == events
        # a handler counts as done after it returns, a moment after its push arrived
        wait_until(
            lambda: sum(w.ingest.bus.stats.handled for w in workers) == events, 10, "handled"
        )
        handled = [w.ingest.bus.stats.handled for w in workers]
        assert min(handled) > 0, handled
        funnel = api.get("viewer", "/v1/funnel").json()
        assert (funnel["triggered"], funnel["sent"]) == (events, events)
    finally:
        for worker in workers:
            worker.stop()
        app.close()


def test_nahfeld_cloud_worker_runs_until_told_to_stop(
    database_url: str, broker: Broker, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "NAHFELD_CLOUD_DATABASE_URL": database_url,
        "NAHFELD_CLOUD_MQTT_PORT": str(broker.port),
        "NAHFELD_CLOUD_MQTT_USERNAME": "",
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "cloud", "worker", "--name", "cli"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        try:
            wait_until(lambda: b"cloud worker running" in log.read_bytes(), 30, "the worker")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
        finally:
            process.kill()
