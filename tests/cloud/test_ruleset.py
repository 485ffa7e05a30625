"""Compiling a store's ruleset (pure) and its version bumping on every change that matters."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from cloud.db import models
from cloud.services.ruleset import compile_ruleset
from gateway.contract import Ruleset, encode, parse_message, store_topic
from gateway.offers.engine import OfferEngine, UserContext
from gateway.offers.rules import RulesetBody
from gateway.presence.events import PresenceEvent
from tests.cloud.conftest import STORE, Api, StoreChanges, rule_body

SID = STORE["id"]

# ------------------------------------------------------------------ pure compile


def _rows(**campaign: Any) -> dict[str, Any]:
    store = models.Store(
        id="s1", tenant_id=1, name="S1", timezone="Europe/Berlin", ruleset_version=4
    )
    zones = [models.Zone(store_id="s1", id="coffee"), models.Zone(store_id="s1", id="door")]
    campaigns = [
        models.Campaign(
            tenant_id=1,
            id="spring",
            status=campaign.get("status", "active"),
            priority=7,
            start_date=campaign.get("start_date"),
            end_date=campaign.get("end_date"),
        )
    ]
    offers = [models.Offer(tenant_id=1, id="latte", campaign_id="spring", title="t", sku="LATTE")]
    rule = models.Rule(
        tenant_id=1,
        id="r1",
        store_id="s1",
        offer_id="latte",
        enabled=True,
        trigger={"type": "enter", "zones": ["coffee"]},
        audience={"segments": [], "consent_purpose": "marketing"},
        schedule={"start_date": "2026-03-01", "end_date": "2026-06-30"},
        caps={"per_user_per_day": 1},
        ttl_s=120.0,
    )
    return {
        "store": store,
        "zones": zones,
        "campaigns": campaigns,
        "offers": offers,
        "rules": [rule],
    }


def test_compile_gives_what_a_gateway_accepts_and_executes() -> None:
    body = compile_ruleset(**_rows())
    assert isinstance(body, RulesetBody)
    assert (body.store, body.version, body.timezone) == ("s1", 4, "Europe/Berlin")
    [rule] = body.rules
    assert (rule.campaign, rule.offer, rule.priority, rule.sku, rule.ttl_s) == (
        "spring", "latte", 7, "LATTE", 120.0,
    )  # fmt: skip
    # through the wire contract, exactly as the gateway daemon receives and validates it
    message = Ruleset(
        store=body.store,
        version=body.version,
        compiled_at=datetime(2026, 4, 1, tzinfo=UTC),
        timezone=body.timezone,
        rules=[r.model_dump(mode="json") for r in body.rules],
    )
    received = parse_message(store_topic("s1", "ruleset"), encode(message))
    assert isinstance(received, Ruleset)
    gateway_body = RulesetBody.model_validate(
        {"store": received.store, "version": received.version,
         "timezone": received.timezone, "rules": received.rules}
    )  # fmt: skip
    assert gateway_body == body
    engine = OfferEngine(gateway_body)
    ts = datetime(2026, 4, 1, 10, 0, tzinfo=UTC).timestamp()
    event = PresenceEvent(ts=ts, type="enter", store="s1", zone="coffee", device="t", gateway="g")
    decision = engine.decide(event, UserContext("t"), stock={"LATTE": 3})
    assert decision.rule is not None and decision.rule.offer == "latte"


def test_campaign_dates_narrow_the_rule_schedule() -> None:
    rows = _rows(start_date=date(2026, 4, 1), end_date=date(2026, 12, 31))
    [rule] = compile_ruleset(**rows).rules
    assert (rule.schedule.start_date, rule.schedule.end_date) == (
        date(2026, 4, 1),
        date(2026, 6, 30),
    )


def test_rules_that_cannot_fire_are_left_out() -> None:
    assert compile_ruleset(**_rows(status="paused")).rules == []
    assert compile_ruleset(**_rows(status="draft")).rules == []
    assert compile_ruleset(**_rows(start_date=date(2026, 7, 1))).rules == []  # no overlap
    rows = _rows()
    rows["rules"][0].enabled = False
    assert compile_ruleset(**rows).rules == []
    rows = _rows()
    rows["zones"] = [z for z in rows["zones"] if z.id != "coffee"]
    assert compile_ruleset(**rows).rules == []
    rows = _rows()
    rows["rules"][0].store_id = "elsewhere"
    assert compile_ruleset(**rows).rules == []
    rows = _rows()
    rows["offers"][0].tenant_id = 2  # another tenant's offer of the same id
    assert compile_ruleset(**rows).rules == []


# ------------------------------------------------------------------ versions through the API


def _without_id(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "id"}


def _version(api: Api) -> int:
    return int(api.ok(api.get("viewer", f"/v1/stores/{SID}/ruleset"))["version"])


def test_version_increases_on_every_change_that_affects_the_store(
    api: Api, store: dict[str, Any], store_changes: StoreChanges
) -> None:
    start = _version(api)
    api.ok(api.post("marketer", "/v1/rules", json=rule_body()), 201)
    after_rule = _version(api)
    assert after_rule > start
    compiled = api.ok(api.get("viewer", f"/v1/stores/{SID}/ruleset"))
    assert RulesetBody.model_validate(compiled).rules[0].id == "latte-at-coffee"

    api.ok(api.put("marketer", "/v1/campaigns/spring", json={"status": "paused"}))
    after_pause = _version(api)
    assert after_pause > after_rule
    assert api.ok(api.get("viewer", f"/v1/stores/{SID}/ruleset"))["rules"] == []

    changes = [
        ("PUT", "/v1/campaigns/spring", {"status": "active", "priority": 9}),
        ("PUT", "/v1/offers/latte", {"campaign": "spring", "title": "t", "sku": "TEA"}),
        ("PUT", "/v1/rules/latte-at-coffee", _without_id(rule_body(ttl_s=60))),
        ("PUT", f"/v1/stores/{SID}", {"name": "x", "timezone": "Europe/Vienna"}),
        ("DELETE", "/v1/rules/latte-at-coffee", None),
    ]
    last = after_pause
    for method, path, body in changes:
        response = api.call("admin", method, path, json=body)
        assert response.status_code in {200, 204}, response.text
        now = _version(api)
        assert now > last, (method, path)
        last = now
    assert store_changes.rulesets == [SID] * 8  # created (version 1), then 7 changes


def test_changes_that_do_not_affect_the_ruleset_keep_the_version(
    api: Api, store: dict[str, Any], store_changes: StoreChanges
) -> None:
    start = _version(api)
    announced = list(store_changes.rulesets)
    api.ok(api.post("marketer", "/v1/segments", json={"id": "students"}), 201)
    api.ok(api.post("admin", f"/v1/stores/{SID}/zones", json={"id": "bakery"}), 201)
    api.ok(api.put("marketer", f"/v1/stores/{SID}/stock", json={"items": []}))
    # a refused change neither bumps nor announces
    bad = rule_body(trigger={"type": "enter", "zones": ["nowhere"]})
    assert api.post("marketer", "/v1/rules", json=bad).status_code == 422
    assert _version(api) == start
    assert store_changes.rulesets == announced
    assert store_changes.stock == [SID]  # stock is published on its own topic


def test_other_stores_keep_their_version(
    api: Api, store: dict[str, Any], store_changes: StoreChanges
) -> None:
    api.ok(api.post("admin", "/v1/stores", json={**STORE, "id": "hamburg"}), 201)
    before = int(api.ok(api.get("viewer", "/v1/stores/hamburg/ruleset"))["version"])
    api.ok(api.post("marketer", "/v1/rules", json=rule_body()), 201)
    assert int(api.ok(api.get("viewer", "/v1/stores/hamburg/ruleset"))["version"]) == before
    assert store_changes.rulesets == [SID, "hamburg", SID]  # both created, then the rule
