"""The app API: opt-in with consent, the app token, channels, opt-out and erasure."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from cloud.db.engine import make_sessionmaker
from cloud.db.models import Consent, Install, PushChannelRow, Revocation
from cloud.resolver.directory import DatabaseDirectory

from .conftest import Api

GRANTED = "2026-11-20T10:00:00Z"


def opt_in_body(install: str = "4f1c2a9e-phone-1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "install_id": install,
        "timezone": "Europe/Berlin",
        "consents": [
            {"purpose": "proximity_offers", "text_version": "2026-10", "granted_at": GRANTED},
            {"purpose": "analytics", "text_version": "2026-10", "granted_at": GRANTED},
        ],
    }
    body.update(overrides)
    return body


def opt_in(api: Api, install: str = "4f1c2a9e-phone-1") -> dict[str, Any]:
    response = api.client.post("/v1/apps/acme/installs", json=opt_in_body(install))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def app_headers(created: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {created['app_token']}"}


def test_opt_in_hands_out_the_identity_key_and_k_once(api: Api, engine: Engine) -> None:
    created = opt_in(api)
    assert len(bytes.fromhex(created["identity_key"])) == 16
    assert created["rotation_exponent"] == 10
    assert created["offers_topic"] == "nahfeld/v1/apps/4f1c2a9e-phone-1/offers"
    with make_sessionmaker(engine)() as session:
        install = session.scalars(select(Install)).one()
        assert install.identity_key == bytes.fromhex(created["identity_key"])
        assert created["app_token"] not in install.app_token_sha256  # only a hash is kept
        consents = session.scalars(select(Consent).order_by(Consent.purpose)).all()
        assert [(c.purpose, c.text_version) for c in consents] == [
            ("analytics", "2026-10"),
            ("proximity_offers", "2026-10"),
        ]
    me = api.client.get("/v1/app/me", headers=app_headers(created)).json()
    assert me["opted_in"] is True and "identity_key" not in me
    # the same install cannot opt in twice (the key would change under the gateways' feet)
    again = api.client.post("/v1/apps/acme/installs", json=opt_in_body())
    assert again.status_code == 409 and "opted in before" in again.json()["detail"]


def test_opting_in_needs_the_offers_consent_a_known_app_and_a_valid_body(api: Api) -> None:
    body = opt_in_body(
        consents=[{"purpose": "analytics", "text_version": "1", "granted_at": GRANTED}]
    )
    response = api.client.post("/v1/apps/acme/installs", json=body)
    assert response.status_code == 422 and "proximity_offers" in response.text
    assert api.client.post("/v1/apps/nobody/installs", json=opt_in_body()).status_code == 404
    bad_zone = api.client.post("/v1/apps/acme/installs", json=opt_in_body(timezone="Mars/Base"))
    assert bad_zone.status_code == 422 and "timezone" in bad_zone.text
    no_time = opt_in_body(consents=[{"purpose": "proximity_offers", "text_version": "1"}])
    response = api.client.post("/v1/apps/acme/installs", json=no_time)
    assert response.status_code == 422 and "granted_at" in response.text


def test_app_tokens_and_api_keys_open_different_doors(api: Api) -> None:
    created = opt_in(api)
    assert api.client.get("/v1/app/me").status_code == 401
    assert api.get("admin", "/v1/app/me").status_code == 401  # an API key is no app token
    assert api.client.get("/v1/stores", headers=app_headers(created)).status_code == 401
    wrong = {"Authorization": "Bearer nfa_not-a-real-token"}
    assert api.client.get("/v1/app/me", headers=wrong).status_code == 401


def test_push_channels_are_registered_per_kind_with_what_each_needs(api: Api) -> None:
    headers = app_headers(opt_in(api))
    mqtt = api.client.put("/v1/app/me/channels/mqtt", json={}, headers=headers)
    assert mqtt.status_code == 200 and mqtt.json()["address"] == "4f1c2a9e-phone-1"
    no_secret = api.client.put(
        "/v1/app/me/channels/webhook", json={"url": "https://push.example/hook"}, headers=headers
    )
    assert no_secret.status_code == 422 and "secret" in no_secret.text
    webhook = {"url": "https://push.example/hook", "secret": "s" * 32}
    assert api.client.put("/v1/app/me/channels/webhook", json=webhook, headers=headers).is_success
    assert api.client.put("/v1/app/me/channels/fcm", json={}, headers=headers).status_code == 422
    assert api.client.put("/v1/app/me/channels/sms", json={}, headers=headers).status_code == 422
    me = api.client.get("/v1/app/me", headers=headers).json()
    assert [c["kind"] for c in me["channels"]] == ["mqtt", "webhook"]
    assert api.client.delete("/v1/app/me/channels/mqtt", headers=headers).status_code == 204
    assert api.client.delete("/v1/app/me/channels/mqtt", headers=headers).status_code == 404


def test_opt_out_destroys_the_key_and_withdraws_consent(api: Api, engine: Engine) -> None:
    created = opt_in(api)
    headers = app_headers(created)
    out = api.client.post("/v1/app/me/opt-out", headers=headers)
    assert out.status_code == 200
    assert out.json()["opted_in"] is False
    assert all(c["withdrawn_at"] for c in out.json()["consents"])
    assert api.client.post("/v1/app/me/opt-out", headers=headers).status_code == 200  # idempotent
    with make_sessionmaker(engine)() as session:
        install = session.scalars(select(Install)).one()
        assert install.identity_key is None and install.revoked_at is not None
        assert session.get(Revocation, "4f1c2a9e-phone-1") is not None


def test_erasure_deletes_everything_about_the_install(api: Api, engine: Engine) -> None:
    created = opt_in(api)
    headers = app_headers(created)
    api.client.put("/v1/app/me/channels/mqtt", json={}, headers=headers)
    assert api.client.delete("/v1/app/me", headers=headers).status_code == 204
    assert api.client.get("/v1/app/me", headers=headers).status_code == 401
    with make_sessionmaker(engine)() as session:
        for model in (Install, Consent, PushChannelRow):
            assert session.scalar(select(func.count()).select_from(model)) == 0
        assert session.get(Revocation, "4f1c2a9e-phone-1") is not None  # relayed, then purged
    # the install id is free again: a fresh opt-in gets a new key
    assert opt_in(api)["identity_key"] != created["identity_key"]


def test_segment_members_come_from_the_crm_and_reach_the_resolver(
    api: Api, store: dict[str, Any], engine: Engine
) -> None:
    first, second = opt_in(api, "phone-1"), opt_in(api, "phone-2")
    path = "/v1/segments/regulars/members"
    # unknown, another tenant's or opted-out installs are refused, each named, nothing set
    rival = api.client.post("/v1/apps/rival/installs", json=opt_in_body("phone-rival"))
    assert rival.status_code == 201
    assert api.client.post("/v1/app/me/opt-out", headers=app_headers(second)).is_success
    refused = api.put("marketer", path, json={"installs": ["phone-1", "phone-rival", "phone-2"]})
    assert refused.status_code == 422
    assert [p["loc"] for p in refused.json()["detail"]] == [
        ["body", "installs", 1],
        ["body", "installs", 2],
    ]
    assert api.ok(api.get("viewer", path))["items"] == []

    assert api.ok(api.put("marketer", path, json={"installs": ["phone-1"]}))["members"] == 1
    assert api.ok(api.get("viewer", path))["items"] == ["phone-1"]
    assert api.put("viewer", path, json={"installs": []}).status_code == 403
    assert api.get("rival", path).status_code == 404

    directory = DatabaseDirectory(make_sessionmaker(engine), relay_s=3600)
    with make_sessionmaker(engine)() as session:
        install = session.scalar(select(Install.id).where(Install.uid == "phone-1"))
    assert install is not None
    assert directory.profiles([install])[install].segments == ("regulars",)
    assert first["offers_topic"].endswith("/apps/phone-1/offers")
