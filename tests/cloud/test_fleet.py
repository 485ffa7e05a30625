"""Stores, zones and gateways: CRUD, pagination, provisioning credentials shown once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from cloud.db.engine import make_sessionmaker
from cloud.db.models import Gateway
from cloud.services.credentials import mosquitto_verify
from tests.cloud.conftest import STORE, Api, rule_body

SID = STORE["id"]


def test_store_round_trip(api: Api, store: dict[str, Any]) -> None:
    assert store["opening_hours"]["mon"] == [{"start": "09:00:00", "end": "20:00:00"}]
    assert store["opening_hours"]["sun"] == []
    changed = {"name": "Mitte", "timezone": "Europe/Vienna"}
    api.ok(api.put("admin", f"/v1/stores/{SID}", json=changed))
    got = api.ok(api.get("viewer", f"/v1/stores/{SID}"))
    assert (got["name"], got["timezone"]) == ("Mitte", "Europe/Vienna")
    assert api.post("admin", "/v1/stores", json=STORE).status_code == 409
    api.ok(api.delete("admin", f"/v1/stores/{SID}"), 204)
    assert api.get("viewer", f"/v1/stores/{SID}").status_code == 404
    # the store's zones went with it (foreign keys are enforced on SQLite too)
    api.ok(api.post("admin", "/v1/stores", json=STORE), 201)
    assert api.ok(api.get("viewer", f"/v1/stores/{SID}/zones"))["total"] == 0


def test_lists_paginate(api: Api, store: dict[str, Any]) -> None:
    for n in range(7):
        api.ok(api.post("marketer", "/v1/segments", json={"id": f"seg-{n}"}), 201)
    first = api.ok(api.get("viewer", "/v1/segments", params={"limit": 3}))
    assert first["total"] == 8 and first["limit"] == 3 and first["offset"] == 0
    assert [s["id"] for s in first["items"]] == ["regulars", "seg-0", "seg-1"]
    last = api.ok(api.get("viewer", "/v1/segments", params={"limit": 3, "offset": 6}))
    assert [s["id"] for s in last["items"]] == ["seg-5", "seg-6"]
    zones = api.ok(api.get("viewer", f"/v1/stores/{SID}/zones", params={"limit": 1, "offset": 1}))
    assert [z["id"] for z in zones["items"]] == ["entrance"] and zones["total"] == 2


def test_a_zone_in_use_cannot_be_deleted(api: Api, store: dict[str, Any]) -> None:
    api.ok(api.post("marketer", "/v1/rules", json=rule_body()), 201)
    response = api.delete("admin", f"/v1/stores/{SID}/zones/coffee")
    assert response.status_code == 409
    assert "latte-at-coffee" in response.json()["detail"]
    api.ok(api.delete("admin", f"/v1/stores/{SID}/zones/entrance"), 204)


def test_gateway_password_is_shown_once(api: Api, store: dict[str, Any], engine: Engine) -> None:
    created = api.ok(
        api.post("admin", f"/v1/stores/{SID}/gateways", json={"id": "gw-1", "name": "till"}), 201
    )
    assert created["mqtt_username"] == "gw-1@berlin-mitte"
    password = created["mqtt_password"]
    assert len(password) >= 40
    fetched = api.ok(api.get("viewer", f"/v1/stores/{SID}/gateways/gw-1"))
    listed = api.ok(api.get("admin", f"/v1/stores/{SID}/gateways"))
    for shown in (fetched, *listed["items"]):
        assert "mqtt_password" not in shown
        assert password not in str(shown)
    assert fetched["mqtt_username"] == "gw-1@berlin-mitte"
    with make_sessionmaker(engine)() as session:
        stored = session.scalars(select(Gateway.password_hash)).one()
    assert password not in stored
    assert stored.startswith("$7$") and mosquitto_verify(password, stored)
    assert api.post("admin", f"/v1/stores/{SID}/gateways", json={"id": "gw-1"}).status_code == 409


def test_gateway_password_rotation(api: Api, store: dict[str, Any], engine: Engine) -> None:
    first = api.ok(api.post("admin", f"/v1/stores/{SID}/gateways", json={"id": "gw-1"}), 201)
    second = api.ok(api.post("admin", f"/v1/stores/{SID}/gateways/gw-1/credentials"))
    assert second["mqtt_password"] != first["mqtt_password"]
    with make_sessionmaker(engine)() as session:
        stored = session.scalars(select(Gateway.password_hash)).one()
    assert mosquitto_verify(second["mqtt_password"], stored)
    assert not mosquitto_verify(first["mqtt_password"], stored)
    api.ok(api.delete("admin", f"/v1/stores/{SID}/gateways/gw-1"), 204)
    assert api.get("admin", f"/v1/stores/{SID}/gateways/gw-1").status_code == 404


def test_marketing_objects_round_trip(api: Api, store: dict[str, Any]) -> None:
    campaign = api.ok(api.get("viewer", "/v1/campaigns/spring"))
    assert campaign["budget"] == {"redemptions": None, "euro_cents": None}
    api.ok(
        api.put(
            "marketer",
            "/v1/campaigns/spring",
            json={"status": "paused", "budget": {"redemptions": 500, "euro_cents": 125_000}},
        )
    )
    campaign = api.ok(api.get("viewer", "/v1/campaigns/spring"))
    assert campaign["status"] == "paused"
    assert campaign["budget"] == {"redemptions": 500, "euro_cents": 125_000}
    offer = {
        "campaign": "spring",
        "title": "Cake",
        "body": "Any cake half price",
        "deep_link": "shopapp://offers/cake",
        "image_url": "https://cdn.example.com/cake.png",
        "sku": "CAKE",
        "coupon_codes": ["CAKE-1", "CAKE-2"],
        "value_cents": 250,
    }
    api.ok(api.post("marketer", "/v1/offers", json={"id": "cake", **offer}), 201)
    got = api.ok(api.get("viewer", "/v1/offers/cake"))
    assert {key: got[key] for key in offer} == offer
    rule = api.ok(api.post("marketer", "/v1/rules", json=rule_body(offer="cake")), 201)
    assert rule["campaign"] == "spring" and rule["trigger"]["dwell_s"] == 20
    assert api.delete("marketer", "/v1/offers/cake").status_code == 409
    assert api.delete("marketer", "/v1/campaigns/spring").status_code == 409
    api.ok(api.delete("marketer", "/v1/rules/latte-at-coffee"), 204)
    api.ok(api.delete("marketer", "/v1/offers/cake"), 204)
    assert api.get("viewer", "/v1/offers/cake").status_code == 404
