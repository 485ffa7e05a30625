"""Offer decisions taken to their end: once in effect, checked, within budget, in the funnel."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, select

from cloud.db.engine import make_sessionmaker
from cloud.db.models import Campaign, Delivery
from cloud.final_check import GlobalCaps
from cloud.ingest.service import Ingestor
from cloud.push import PushChannel, PushResult
from cloud.resolver.tokens import store_token
from cloud.services.installs import token_secret
from gateway.contract import OfferDecisionMessage, OfferPush

from .conftest import STORE, Api
from .test_app_api import app_headers, opt_in

NOW = 1_795_000_000.0  # 2026-11-18 ~ 10:26 in Berlin: outside quiet hours set below
STORE_ID = str(STORE["id"])


@dataclass
class Phone:
    """A push provider that records what each install received; can be told to refuse."""

    received: list[tuple[str, OfferPush]] = field(default_factory=list)
    refuse: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, channel: PushChannel, offer: OfferPush) -> PushResult:
        if self.refuse:
            return PushResult(False, "http_503")
        with self.lock:
            self.received.append((channel.address, offer))
        return PushResult(True)


@dataclass
class World:
    api: Api
    ingestor: Ingestor
    phone: Phone
    secret: bytes
    engine: Engine
    app_token: dict[str, str] = field(default_factory=dict)

    def decision(self, n: int, install: str = "phone-1", **overrides: Any) -> OfferDecisionMessage:
        fields: dict[str, Any] = {
            "event_id": f"dec-{install}-{n:06d}",
            "trigger_event_id": f"evt-{n:08d}",
            "store": STORE_ID,
            "gateway": "gw-1",
            "zone": "coffee",
            "token": store_token(self.secret, STORE_ID, install),
            "ts": NOW,
            "campaign": "spring",
            "offer": "latte",
            "rule": "latte-at-coffee",
            "expires_at": NOW + 300,
        }
        fields.update(overrides)
        return OfferDecisionMessage(**fields)

    def funnel(self, **params: str) -> dict[str, Any]:
        response = self.api.get("viewer", "/v1/funnel", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def headers(self, install: str = "phone-1") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.app_token[install]}"}


def _world(api: Api, engine: Engine, caps: GlobalCaps, installs: int = 1) -> World:
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        secret = token_secret(session, None)
    phone = Phone()
    world = World(
        api, Ingestor(sessions, secret, phone, caps, clock=lambda: NOW), phone, secret, engine
    )
    for n in range(1, installs + 1):
        created = opt_in(api, f"phone-{n}")
        world.app_token[f"phone-{n}"] = created["app_token"]
        channel = api.client.put("/v1/app/me/channels/mqtt", json={}, headers=app_headers(created))
        assert channel.status_code == 200
    return world


@pytest.fixture
def world(api: Api, engine: Engine, store: dict[str, Any]) -> World:
    return _world(api, engine, GlobalCaps(per_person_per_day=3))


def test_a_decision_is_sent_once_however_often_it_arrives(world: World) -> None:
    message = world.decision(1)
    assert world.ingestor.handle(message) == "sent"
    assert world.ingestor.handle(message) == "duplicate"
    assert world.ingestor.handle(message) == "duplicate"
    assert len(world.phone.received) == 1
    address, offer = world.phone.received[0]
    assert address == "phone-1" and offer.title == "2-for-1 latte" and offer.campaign == "spring"
    inbox = world.api.client.get("/v1/app/me/inbox", headers=world.headers()).json()
    assert [item["delivery_id"] for item in inbox] == [offer.delivery_id]
    assert world.funnel(campaign="spring")["triggered"] == 1


def test_the_funnel_follows_a_delivery_to_redemption(world: World) -> None:
    world.ingestor.handle(world.decision(1, expires_at=None))  # redeemed by the real clock
    delivery_id = world.phone.received[0][1].delivery_id
    client, headers = world.api.client, world.headers()
    for stage in ("delivered", "opened", "opened"):
        url = f"/v1/app/me/deliveries/{delivery_id}/{stage}"
        assert client.post(url, headers=headers).status_code == 204
    redeemed = world.api.post("marketer", f"/v1/deliveries/{delivery_id}/redeem")
    assert redeemed.status_code == 200 and redeemed.json()["redeemed_at"]
    again = world.api.post("marketer", f"/v1/deliveries/{delivery_id}/redeem")
    assert again.status_code == 409 and "redeemed already" in again.json()["detail"]
    assert world.api.post("viewer", f"/v1/deliveries/{delivery_id}/redeem").status_code == 403
    assert world.api.post("rival", f"/v1/deliveries/{delivery_id}/redeem").status_code == 404
    funnel = world.funnel(campaign="spring", store=STORE_ID)
    assert (funnel["triggered"], funnel["sent"], funnel["delivered"]) == (1, 1, 1)
    assert (funnel["opened"], funnel["redeemed"], funnel["conversion_rate"]) == (1, 1, 1.0)
    assert world.funnel(until="2020-01-01T00:00:00Z")["triggered"] == 0
    assert world.api.get("rival", "/v1/funnel").json()["triggered"] == 0


def test_another_install_cannot_mark_or_read_a_delivery(world: World, api: Api) -> None:
    world.ingestor.handle(world.decision(1))
    delivery_id = world.phone.received[0][1].delivery_id
    other = app_headers(opt_in(api, "phone-2"))
    url = f"/v1/app/me/deliveries/{delivery_id}/opened"
    assert api.client.post(url, headers=other).status_code == 404
    assert api.client.get("/v1/app/me/inbox", headers=other).json() == []


def test_gateway_suppressions_and_unknown_people_are_counted_not_sent(world: World) -> None:
    assert world.ingestor.handle(world.decision(1, suppressed="cooldown")) == "cooldown"
    stranger = world.decision(2, token=store_token(world.secret, "another-store", "phone-1"))
    assert world.ingestor.handle(stranger) == "unknown_person"  # a token replayed elsewhere
    assert world.ingestor.handle(world.decision(3, store="nowhere")) == "unknown_store"
    assert world.phone.received == []
    funnel = world.funnel()
    assert funnel["triggered"] == 2
    assert funnel["suppressed"] == {"cooldown": 1, "unknown_person": 1}


def test_consent_is_checked_again_at_send_time(world: World) -> None:
    out = world.api.client.post("/v1/app/me/opt-out", headers=world.headers())
    assert out.status_code == 200
    assert world.ingestor.handle(world.decision(1)) == "no_consent"
    assert world.phone.received == []


def test_quiet_hours_in_the_persons_zone(api: Api, engine: Engine, store: dict[str, Any]) -> None:
    world = _world(api, engine, GlobalCaps())
    created = world.api.client.post(
        "/v1/apps/acme/installs",
        json={
            "install_id": "night-owl",
            "timezone": "Asia/Tokyo",  # 19:26 there when it is 11:26 in Berlin
            "consents": [
                {
                    "purpose": "proximity_offers",
                    "text_version": "1",
                    "granted_at": "2026-11-01T00:00:00Z",
                }
            ],
            "quiet_hours": [{"start": "19:00", "end": "07:00"}],
        },
    ).json()
    api.client.put("/v1/app/me/channels/mqtt", json={}, headers=app_headers(created))
    assert world.ingestor.handle(world.decision(1, install="night-owl")) == "quiet_hours"
    assert world.ingestor.handle(world.decision(1, install="phone-1")) == "sent"


def test_expired_decisions_and_paused_campaigns_are_not_sent(world: World) -> None:
    assert world.ingestor.handle(world.decision(1, expires_at=NOW - 1)) == "expired"
    paused = world.api.put(
        "marketer", "/v1/campaigns/spring", json={"status": "paused", "priority": 5}
    )
    assert paused.status_code == 200, paused.text
    assert world.ingestor.handle(world.decision(2)) == "campaign_inactive"


def test_the_daily_cap_holds_across_stores(world: World) -> None:
    outcomes = [world.ingestor.handle(world.decision(n)) for n in range(5)]
    assert outcomes == ["sent"] * 3 + ["global_daily_cap"] * 2


def test_a_refused_push_gives_the_budget_back(world: World, engine: Engine) -> None:
    world.phone.refuse = True
    assert world.ingestor.handle(world.decision(1)) == "push_failed"
    with make_sessionmaker(engine)() as session:
        campaign = session.scalars(select(Campaign)).one()
        assert campaign.spent_redemptions == 0
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.push_result == "mqtt:http_503"


def test_budget_is_never_overspent_by_racing_workers(
    api: Api, engine: Engine, store: dict[str, Any]
) -> None:
    """Two ingestors, four threads, 40 people, a budget of 10 redemptions."""
    world = _world(api, engine, GlobalCaps(), installs=40)
    budget = {"status": "active", "priority": 5, "budget": {"redemptions": 10}}
    assert world.api.put("marketer", "/v1/campaigns/spring", json=budget).status_code == 200
    second = Ingestor(world.ingestor.sessions, world.secret, world.phone, GlobalCaps(), lambda: NOW)
    messages = [world.decision(1, install=f"phone-{n}") for n in range(1, 41)]
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(ingestor: Ingestor, share: list[OfferDecisionMessage]) -> None:
        for message in share:
            outcome = ingestor.handle(message)
            with lock:
                outcomes.append(outcome)

    threads = [
        threading.Thread(target=run, args=(ingestor, messages[k::4]))
        for k, ingestor in enumerate((world.ingestor, second, world.ingestor, second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(set(outcomes)) == ["budget_spent", "sent"]
    assert outcomes.count("sent") == 10 == len(world.phone.received)
    with make_sessionmaker(engine)() as session:
        assert session.scalars(select(Campaign)).one().spent_redemptions == 10


def test_erasure_keeps_the_funnel_but_unlinks_the_person(world: World, engine: Engine) -> None:
    world.ingestor.handle(world.decision(1))
    assert world.api.client.delete("/v1/app/me", headers=world.headers()).status_code == 204
    with make_sessionmaker(engine)() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.install_id is None
    assert world.funnel()["sent"] == 1
    assert world.ingestor.handle(world.decision(2)) == "unknown_person"


def test_a_receipt_arriving_before_the_send_is_recorded_still_counts(world: World) -> None:
    """A fast phone confirms the push before the worker has committed it as sent."""
    receipts: list[int] = []
    send = world.phone.send

    def phone_that_answers_at_once(channel: PushChannel, offer: OfferPush) -> PushResult:
        result = send(channel, offer)
        url = f"/v1/app/me/deliveries/{offer.delivery_id}/delivered"
        receipts.append(world.api.client.post(url, headers=world.headers()).status_code)
        return result

    world.phone.send = phone_that_answers_at_once  # type: ignore[method-assign]
    assert world.ingestor.handle(world.decision(1)) == "sent"
    assert receipts == [204]
    funnel = world.funnel(campaign="spring")
    assert (funnel["sent"], funnel["delivered"]) == (1, 1)
