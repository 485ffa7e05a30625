"""What the demo's retailer has set up: one store from firmware-config, three campaigns.

Everything goes in through the marketer API, as a retailer's staff would do it,
so the demo exercises the same validation, versioning and ruleset publishing.
"""

from __future__ import annotations

from typing import Any

import httpx

from gateway.layout import StoreLayout

TENANT = "demo-retail"

CAMPAIGNS: list[dict[str, Any]] = [
    {"id": "welcome", "name": "Welcome at the door", "status": "active", "priority": 1},
    {
        "id": "sneaker-week",
        "name": "Sneaker week",
        "status": "active",
        "priority": 5,
        "budget": {"redemptions": 50, "euro_cents": 50_000},
    },
    {"id": "checkout-treat", "name": "A treat at the till", "status": "active", "priority": 3},
]

OFFERS: list[dict[str, Any]] = [
    {
        "id": "welcome-10",
        "campaign": "welcome",
        "title": "Welcome! 10 % off today",
        "body": "Show this at the till.",
        "coupon_codes": ["WELCOME-A1", "WELCOME-B2", "WELCOME-C3", "WELCOME-D4"],
        "value_cents": 500,
    },
    {
        "id": "runner-2for1",
        "campaign": "sneaker-week",
        "title": "Runners: second pair half price",
        "body": "This week on the shoe wall.",
        "sku": "RUN-42",
        "value_cents": 4000,
    },
    {
        "id": "free-coffee",
        "campaign": "checkout-treat",
        "title": "A free coffee with your purchase",
        "value_cents": 250,
    },
]


def rules(store: str) -> list[dict[str, Any]]:
    return [
        {
            "id": "welcome-at-door",
            "store": store,
            "offer": "welcome-10",
            "trigger": {"type": "enter", "zones": ["entrance"]},
            "caps": {"per_user_per_day": 1},
        },
        {
            "id": "runners-at-shoe-wall",
            "store": store,
            "offer": "runner-2for1",
            "trigger": {"type": "dwell", "zones": ["shoes"], "dwell_s": 30},
            "caps": {"per_user_per_day": 1, "cooldown_s": 600},
        },
        {
            "id": "coffee-at-till",
            "store": store,
            "offer": "free-coffee",
            "trigger": {"type": "enter", "zones": ["checkout"]},
            "caps": {"per_user_per_day": 1},
        },
    ]


def seed(api: httpx.Client, admin_key: str, layout: StoreLayout) -> None:
    """Create the store, its zones and gateways, the campaigns, offers, rules and stock."""
    headers = {"Authorization": f"Bearer {admin_key}"}

    def post(path: str, body: dict[str, Any]) -> None:
        response = api.post(path, json=body, headers=headers)
        if response.status_code != 201:
            raise RuntimeError(f"seeding {path}: {response.status_code} {response.text[:300]}")

    store = layout.store
    post("/v1/stores", {"id": store, "name": "Demo store", "timezone": layout.timezone})
    for zone in layout.zones:
        post(f"/v1/stores/{store}/zones", {"id": zone.id})
    for gateway in layout.gateways:
        post(f"/v1/stores/{store}/gateways", {"id": gateway.id})
    for campaign in CAMPAIGNS:
        post("/v1/campaigns", campaign)
    for offer in OFFERS:
        post("/v1/offers", offer)
    for rule in rules(store):
        post("/v1/rules", rule)
    stock = api.put(
        f"/v1/stores/{store}/stock",
        json={"items": [{"sku": "RUN-42", "quantity": 12}]},
        headers=headers,
    )
    stock.raise_for_status()
