"""Rulesets and stock published retained on a real Mosquitto by the API's own publisher.

The app runs as `nahfeld cloud serve` runs it (``publish=True``); a plain paho
subscriber stands in for the store's gateways and reads what they would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cloud.api.app import create_app
from cloud.publisher import StorePublisher
from cloud.settings import CloudSettings
from gateway.contract import Ruleset, StockSnapshot, parse_message, store_topic
from gateway.offers.rules import RulesetBody
from tests.support.mosquitto import Broker, Listener, wait_until

from .conftest import STORE, Api, api_with_keys, rule_body

SID = str(STORE["id"])
RULESET, STOCK = store_topic(SID, "ruleset"), store_topic(SID, "stock")


@contextmanager
def publishing(database_url: str, engine: Engine, broker: Broker, **settings: Any) -> Iterator[Api]:
    """The API with its ruleset publisher on ``broker``."""
    configured = CloudSettings(
        database_url=database_url, mqtt_port=broker.port, mqtt_username=None, **settings
    )
    with TestClient(create_app(configured, engine=engine, publish=True)) as client:
        yield api_with_keys(client, engine)


@pytest.fixture
def publishing_api(database_url: str, engine: Engine, broker: Broker) -> Iterator[Api]:
    with publishing(database_url, engine, broker) as api:
        yield api


def publisher(api: Api) -> StorePublisher:
    found = api.client.app.state.publisher  # type: ignore[attr-defined]
    assert isinstance(found, StorePublisher)
    return found


def rulesets(listener: Listener) -> list[Ruleset]:
    return [
        m for p in listener.on(RULESET) if p and isinstance(m := parse_message(RULESET, p), Ruleset)
    ]


def version(api: Api) -> int:
    return int(api.ok(api.get("viewer", f"/v1/stores/{SID}/ruleset"))["version"])


def seeded(api: Api) -> None:
    api.ok(api.post("admin", "/v1/stores", json=STORE), 201)
    api.ok(api.post("admin", f"/v1/stores/{SID}/zones", json={"id": "coffee"}), 201)
    api.ok(api.post("marketer", "/v1/campaigns", json={"id": "spring", "status": "active"}), 201)
    offer = {"id": "latte", "campaign": "spring", "title": "2-for-1 latte", "sku": "LATTE"}
    api.ok(api.post("marketer", "/v1/offers", json=offer), 201)


def test_a_change_reaches_the_gateways_and_latecomers_get_it_retained(
    publishing_api: Api, broker: Broker
) -> None:
    api = publishing_api
    seeded(api)
    gateway = Listener(broker.port, [RULESET], "gw-1")
    try:
        api.ok(api.post("marketer", "/v1/rules", json=rule_body()), 201)
        latest = version(api)
        wait_until(
            lambda: any(r.version == latest for r in rulesets(gateway)), 10, f"ruleset v{latest}"
        )
        received = next(r for r in rulesets(gateway) if r.version == latest)
        compiled = RulesetBody.model_validate(
            {"store": received.store, "version": received.version,
             "timezone": received.timezone, "rules": received.rules}
        )  # fmt: skip
        assert [rule.id for rule in compiled.rules] == ["latte-at-coffee"]
    finally:
        gateway.close()
    # a gateway that was offline: the broker hands it the latest, marked retained
    late = Listener(broker.port, [RULESET], "gw-2")
    try:
        wait_until(lambda: rulesets(late), 10, "the retained ruleset")
        assert [r.version for r in rulesets(late)] == [latest]
        assert all(retained for topic, _, retained in late.messages if topic == RULESET)
    finally:
        late.close()


def test_a_burst_of_edits_ends_on_the_latest_version_never_going_back(
    publishing_api: Api, broker: Broker
) -> None:
    api = publishing_api
    seeded(api)
    api.ok(api.post("marketer", "/v1/rules", json=rule_body()), 201)
    gateway = Listener(broker.port, [RULESET], "gw-1")
    try:
        body = {k: v for k, v in rule_body().items() if k != "id"}
        for ttl in range(60, 90):
            api.ok(api.put("marketer", "/v1/rules/latte-at-coffee", json={**body, "ttl_s": ttl}))
        latest = version(api)
        wait_until(
            lambda: rulesets(gateway) and rulesets(gateway)[-1].version == latest, 10, "the latest"
        )
        seen = [r.version for r in rulesets(gateway)]
        assert seen == sorted(seen), seen  # a gateway never sees an older one after a newer
        assert rulesets(gateway)[-1].rules[0]["ttl_s"] == 89
        assert publisher(api).stats.failures == 0
    finally:
        gateway.close()


def test_stock_snapshots_carry_the_skus_the_rules_depend_on(
    publishing_api: Api, broker: Broker
) -> None:
    api = publishing_api
    seeded(api)
    api.ok(api.post("marketer", "/v1/rules", json=rule_body()), 201)
    gateway = Listener(broker.port, [STOCK], "gw-1")
    try:
        upload = {"items": [{"sku": "LATTE", "quantity": 12}, {"sku": "SOCKS", "quantity": 3}]}
        api.ok(api.put("marketer", f"/v1/stores/{SID}/stock", json=upload))

        def latest() -> dict[str, int] | None:
            snapshots = [parse_message(STOCK, p) for p in gateway.on(STOCK)]
            last = snapshots[-1] if snapshots else None
            return last.in_stock if isinstance(last, StockSnapshot) else None

        wait_until(lambda: latest() == {"LATTE": 12}, 10, "the stock snapshot with LATTE")
        api.ok(
            api.put(
                "marketer",
                f"/v1/stores/{SID}/stock",
                json={"items": [{"sku": "LATTE", "quantity": 0}]},
            )
        )
        wait_until(lambda: latest() == {"LATTE": 0}, 10, "LATTE sold out")
    finally:
        gateway.close()


def test_changes_while_the_broker_is_down_are_published_when_it_returns(
    publishing_api: Api, broker: Broker
) -> None:
    api = publishing_api
    seeded(api)
    assert publisher(api).wait_idle(10) and publisher(api).stats.rulesets > 0
    broker.stop()
    # the broker lost its retained messages too (its persistence file is gone)
    for stale in broker.config.parent.glob("mosquitto.db*"):
        stale.unlink()
    started = time.monotonic()
    api.ok(api.post("marketer", "/v1/rules", json=rule_body()), 201)  # the API does not wait
    answered_in = time.monotonic() - started
    latest = version(api)
    broker.start()
    gateway = Listener(broker.port, [RULESET], "gw-1")
    try:
        wait_until(
            lambda: any(r.version == latest for r in rulesets(gateway)), 20, f"ruleset v{latest}"
        )
    finally:
        gateway.close()
    assert answered_in < 5.0  # no wait for a publish acknowledgement that could not come


def test_a_deleted_store_withdraws_its_retained_ruleset(
    publishing_api: Api, broker: Broker
) -> None:
    api = publishing_api
    seeded(api)
    gateway = Listener(broker.port, [RULESET, STOCK], "gw-1")
    try:
        wait_until(lambda: rulesets(gateway), 10, "the store's first ruleset")
        assert api.delete("admin", f"/v1/stores/{SID}").status_code == 204
        wait_until(
            lambda: b"" in gateway.on(RULESET) and b"" in gateway.on(STOCK), 10, "withdrawal"
        )
    finally:
        gateway.close()
    assert publisher(api).wait_idle(10)
    late = Listener(broker.port, [RULESET, STOCK, "marker"], "gw-2")
    try:
        # retained messages come right after the SUBACK, so before a marker sent later
        late.client.publish("marker", b"x", qos=1)
        wait_until(lambda: late.on("marker"), 10, "the marker")
        assert late.on(RULESET) == [] and late.on(STOCK) == []  # nothing retained any more
    finally:
        late.close()


def test_every_store_is_published_again_without_a_change_every_refresh(
    database_url: str, engine: Engine, broker: Broker
) -> None:
    """So that a gateway whose ruleset grows old knows the cloud is not reaching it."""
    with publishing(database_url, engine, broker, ruleset_refresh_s=0.5) as api:
        seeded(api)
        api.ok(api.post("marketer", "/v1/rules", json=rule_body()), 201)
        latest = version(api)
        gateway = Listener(broker.port, [RULESET], "gw-refresh")
        try:
            # the retained copy on subscribing, then republished ones: no edit in between
            wait_until(lambda: len(rulesets(gateway)) >= 3, 10, "the ruleset republished")
            assert {r.version for r in rulesets(gateway)} == {latest}
            live = [retained for topic, _, retained in gateway.messages if topic == RULESET]
            assert live.count(False) >= 2
        finally:
            gateway.close()
