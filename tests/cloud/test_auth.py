"""Who may do what: 401 without a valid key, 403 for a role that may not, 404 across tenants."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cloud.conftest import STORE, Api, rule_body

NO_KEY_PATHS = ["/v1/stores", "/v1/campaigns", "/v1/api-keys", "/v1/stores/x/stock"]


@pytest.mark.parametrize("path", NO_KEY_PATHS)
def test_no_key_is_401_with_a_challenge(api: Api, path: str) -> None:
    response = api.client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "API key" in response.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer nfk_000000000000_not-a-real-secret"},
        {"Authorization": "Bearer garbage"},
        {"X-API-Key": "nfk_000000000000_nope"},
    ],
)
def test_a_wrong_key_is_401(api: Api, headers: dict[str, str]) -> None:
    response = api.client.get("/v1/stores", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_right_prefix_wrong_secret_is_401(api: Api) -> None:
    prefix = api.keys["admin"].rsplit("_", 1)[0]
    forged = f"{prefix}_{'A' * 43}"
    assert api.client.get("/v1/stores", headers={"X-API-Key": forged}).status_code == 401


def test_x_api_key_header_is_accepted(api: Api) -> None:
    response = api.client.get("/v1/stores", headers={"X-API-Key": api.keys["viewer"]})
    assert response.status_code == 200


def test_a_revoked_key_stops_working(api: Api) -> None:
    created = api.ok(api.post("admin", "/v1/api-keys", json={"role": "viewer"}), 201)
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert api.client.get("/v1/stores", headers=headers).status_code == 200
    api.ok(api.delete("admin", f"/v1/api-keys/{created['id']}"))
    assert api.client.get("/v1/stores", headers=headers).status_code == 401
    listed = api.ok(api.get("admin", "/v1/api-keys"))
    assert all("key" not in item for item in listed)
    assert created["prefix"] in {item["prefix"] for item in listed}


def test_a_bad_body_without_a_key_is_401_not_422(api: Api) -> None:
    assert api.client.post("/v1/stores", json={"id": "!"}).status_code == 401


# (method, path, body) per area; the store fixture provides the objects referenced
MARKETING_WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/campaigns", {"id": "summer"}),
    ("PUT", "/v1/campaigns/spring", {"status": "paused"}),
    ("POST", "/v1/offers", {"id": "cake", "campaign": "spring", "title": "Cake"}),
    ("POST", "/v1/rules", rule_body()),
    ("POST", "/v1/segments", {"id": "students"}),
    ("PUT", f"/v1/stores/{STORE['id']}/stock", {"items": [{"sku": "LATTE", "quantity": 3}]}),
]
FLEET_WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/stores", {**STORE, "id": "hamburg"}),
    ("PUT", f"/v1/stores/{STORE['id']}", {"name": "Mitte", "timezone": "Europe/Berlin"}),
    ("POST", f"/v1/stores/{STORE['id']}/zones", {"id": "checkout"}),
    ("POST", f"/v1/stores/{STORE['id']}/gateways", {"id": "gw-1"}),
    ("DELETE", f"/v1/stores/{STORE['id']}/zones/entrance", None),
]
KEY_WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/api-keys", {"role": "viewer"}),
]
READS = [
    "/v1/stores",
    f"/v1/stores/{STORE['id']}",
    f"/v1/stores/{STORE['id']}/zones",
    f"/v1/stores/{STORE['id']}/gateways",
    f"/v1/stores/{STORE['id']}/stock",
    f"/v1/stores/{STORE['id']}/ruleset",
    "/v1/campaigns",
    "/v1/offers",
    "/v1/rules",
    "/v1/segments",
]

ALLOWED = {
    "admin": {"marketing", "fleet", "keys"},
    "marketer": {"marketing"},
    "viewer": set(),
}


@pytest.mark.parametrize("role", ["admin", "marketer", "viewer"])
def test_role_matrix(api: Api, store: dict[str, Any], role: str) -> None:
    for path in READS:
        assert api.get(role, path).status_code == 200, (role, path)
    areas = {"marketing": MARKETING_WRITES, "fleet": FLEET_WRITES, "keys": KEY_WRITES}
    for area, calls in areas.items():
        for method, path, body in calls:
            response = api.call(role, method, path, json=body)
            if area in ALLOWED[role]:
                assert response.status_code in {200, 201, 204}, (role, method, path, response.text)
            else:
                assert response.status_code == 403, (role, method, path, response.text)
                assert role in response.json()["detail"]
    listing = api.get(role, "/v1/api-keys").status_code
    assert listing == (200 if role == "admin" else 403)


def test_another_tenants_objects_are_404(api: Api, store: dict[str, Any]) -> None:
    api.ok(api.post("admin", f"/v1/stores/{STORE['id']}/gateways", json={"id": "gw-1"}), 201)
    api.ok(api.post("marketer", "/v1/rules", json=rule_body()), 201)
    sid = STORE["id"]
    for path in [
        f"/v1/stores/{sid}",
        f"/v1/stores/{sid}/zones",
        f"/v1/stores/{sid}/zones/coffee",
        f"/v1/stores/{sid}/gateways/gw-1",
        f"/v1/stores/{sid}/stock",
        f"/v1/stores/{sid}/ruleset",
        "/v1/campaigns/spring",
        "/v1/offers/latte",
        "/v1/rules/latte-at-coffee",
        "/v1/segments/regulars",
    ]:
        assert api.get("rival", path).status_code == 404, path
    writes = [
        ("PUT", f"/v1/stores/{sid}", {"name": "mine", "timezone": "UTC"}),
        ("DELETE", f"/v1/stores/{sid}/zones/entrance", None),
        ("POST", f"/v1/stores/{sid}/gateways/gw-1/credentials", None),
        ("PUT", f"/v1/stores/{sid}/stock", {"items": [{"sku": "X", "quantity": 1}]}),
        ("PUT", "/v1/campaigns/spring", {"status": "ended"}),
        ("DELETE", "/v1/rules/latte-at-coffee", None),
    ]
    for method, path, body in writes:
        assert api.call("rival", method, path, json=body).status_code == 404, (method, path)
    for path in ["/v1/stores", "/v1/campaigns", "/v1/offers", "/v1/rules", "/v1/segments"]:
        assert api.ok(api.get("rival", path))["total"] == 0, path
    # and nothing of acme's changed
    assert api.ok(api.get("viewer", f"/v1/stores/{sid}"))["name"] == STORE["name"]
    assert api.ok(api.get("viewer", "/v1/campaigns/spring"))["status"] == "active"


def test_a_rule_cannot_point_at_another_tenants_store_or_offer(
    api: Api, store: dict[str, Any]
) -> None:
    api.ok(api.post("rival", "/v1/stores", json={**STORE, "id": "rival-store"}), 201)
    response = api.post("marketer", "/v1/rules", json=rule_body(store="rival-store"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "store"]
    response = api.post(
        "rival",
        "/v1/rules",
        json=rule_body(store="rival-store", trigger={"type": "enter", "zones": ["coffee"]}),
    )
    locs = [problem["loc"] for problem in response.json()["detail"]]
    assert ["body", "offer"] in locs


def test_store_ids_are_unique_across_tenants(api: Api, store: dict[str, Any]) -> None:
    response = api.post("rival", "/v1/stores", json=STORE)
    assert response.status_code == 409
    assert api.ok(api.get("admin", f"/v1/stores/{STORE['id']}"))["name"] == STORE["name"]
