"""The reference app client: what the Nahfeld app does on a phone, except the radio.

It opts in through the app API (consent for proximity offers), keeps the
Eddystone-EID identity key it gets back and computes the EIDs the phone would
advertise, registers its MQTT channel and listens on its offers topic,
confirms each offer's delivery, opens it, and can opt out. In the demo and the
tests its EID frames are fed to gateways as adverts. The contract it follows
is written down for app developers in docs/app.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import paho.mqtt.client as mqtt

from cloud.schemas.app import OFFERS_PURPOSE
from gateway.ble.eid import EidIdentity, eid_at
from gateway.contract import ContractError, OfferPush, parse_message
from gateway.mqtt_session import MqttProtocol, new_client
from gateway.sim.store import eid_advert

log = logging.getLogger(__name__)

CONSENT_TEXT_VERSION = "2026-10"


class AppApiError(RuntimeError):
    """The app API refused a call; the message carries its status and body."""


@dataclass(frozen=True, slots=True)
class Identity:
    """What opting in returned: kept on the phone, never shown again by the cloud."""

    install_id: str
    identity_key: bytes
    rotation_exponent: int
    app_token: str
    offers_topic: str


@dataclass(slots=True)
class Inbox:
    received: list[OfferPush] = field(default_factory=list)
    refused: int = 0


class AppClient:
    """One phone's app. ``api`` is the cloud's base URL (or an httpx client for tests)."""

    def __init__(
        self,
        api: str | httpx.Client,
        tenant: str,
        install_id: str,
        *,
        timezone: str = "Europe/Berlin",
    ) -> None:
        self.http = api if isinstance(api, httpx.Client) else httpx.Client(base_url=api)
        self.tenant = tenant
        self.install_id = install_id
        self.timezone = timezone
        self.identity: Identity | None = None
        self.inbox = Inbox()
        self._lock = threading.Lock()
        self._mqtt: mqtt.Client | None = None

    # ------------------------------------------------------------ the app API

    def _call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {}
        if self.identity is not None:
            headers["Authorization"] = f"Bearer {self.identity.app_token}"
        response = self.http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        if response.is_error:
            raise AppApiError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response

    def opt_in(self) -> Identity:
        """Consent to proximity offers; the cloud answers with the EID identity."""
        body = {
            "install_id": self.install_id,
            "timezone": self.timezone,
            "consents": [
                {
                    "purpose": OFFERS_PURPOSE,
                    "text_version": CONSENT_TEXT_VERSION,
                    "granted_at": datetime.now(UTC).isoformat(),
                }
            ],
        }
        created = self._call("POST", f"/v1/apps/{self.tenant}/installs", json=body).json()
        self.identity = Identity(
            install_id=created["install_id"],
            identity_key=bytes.fromhex(created["identity_key"]),
            rotation_exponent=int(created["rotation_exponent"]),
            app_token=created["app_token"],
            offers_topic=created["offers_topic"],
        )
        self._call("PUT", "/v1/app/me/channels/mqtt", json={})
        return self.identity

    def opt_out(self) -> None:
        self._call("POST", "/v1/app/me/opt-out")

    def opened(self, offer: OfferPush) -> None:
        self._call("POST", f"/v1/app/me/deliveries/{offer.delivery_id}/opened")

    # ------------------------------------------------------------ the radio's part

    def eid(self, at: float) -> bytes:
        """The 8-byte EID this phone advertises at Unix time ``at``."""
        identity = self._identity()
        return eid_at(identity.identity_key, identity.rotation_exponent, at)

    def eid_identity(self) -> EidIdentity:
        """The phone's EID identity, for a simulated radio (named by the install id)."""
        identity = self._identity()
        return EidIdentity(identity.install_id, identity.identity_key, identity.rotation_exponent)

    def advert(self, at: float) -> bytes:
        """The raw advertising data of the phone's Eddystone-EID frame at ``at``."""
        return eid_advert(self.eid(at))

    # ------------------------------------------------------------ offers over MQTT

    def listen(
        self,
        host: str,
        port: int,
        *,
        protocol: MqttProtocol = "5",
        on_offer: Callable[[OfferPush], None] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        """Subscribe to the offers topic; returns once the broker confirmed it. Each offer
        is confirmed delivered to the cloud, then handed to ``on_offer``."""
        identity = self._identity()
        subscribed = threading.Event()
        client = new_client(f"app-{identity.install_id}", protocol, persistent=False)

        def on_connect(client: mqtt.Client, *_: object) -> None:
            client.subscribe(identity.offers_topic, qos=1)

        def on_message(_client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
            try:
                offer = parse_message(msg.topic, bytes(msg.payload))
            except ContractError as exc:
                self.inbox.refused += 1
                log.warning("%s: refused an offer message: %s", identity.install_id, exc)
                return
            if not isinstance(offer, OfferPush):
                return
            with self._lock:
                if any(o.delivery_id == offer.delivery_id for o in self.inbox.received):
                    return  # at-least-once delivery: a duplicate is shown once
                self.inbox.received.append(offer)
            try:
                self._call("POST", f"/v1/app/me/deliveries/{offer.delivery_id}/delivered")
            except (AppApiError, httpx.HTTPError) as exc:
                log.warning("%s: delivery receipt failed: %s", identity.install_id, exc)
            if on_offer is not None:
                on_offer(offer)

        client.on_connect = on_connect
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = on_message
        client.connect(host, port)
        client.loop_start()
        self._mqtt = client
        if not subscribed.wait(timeout_s):
            self.close()
            raise ConnectionError(f"no subscription to {identity.offers_topic} in {timeout_s:g} s")

    def offers(self) -> list[OfferPush]:
        with self._lock:
            return list(self.inbox.received)

    def close(self) -> None:
        if self._mqtt is not None:
            self._mqtt.disconnect()
            self._mqtt.loop_stop()
            self._mqtt = None

    def _identity(self) -> Identity:
        if self.identity is None:
            raise RuntimeError("not opted in yet: call opt_in() first")
        return self.identity
