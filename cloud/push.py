"""Getting an offer to the app: the push channels an install registered.

A provider takes an :class:`OfferPush` and a channel and says whether the
channel accepted it. Two are real: MQTT (the app's own offers topic, QoS 1,
accepted once the broker acknowledged) and a webhook (an HTTPS POST that the
retailer's push service turns into a notification, signed with HMAC-SHA256 so
the receiver can tell it came from Nahfeld and is fresh). FCM and APNs fit the
same interface; without credentials they report ``not_configured``, never
crash the send.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.contract import OfferPush, app_offers_topic, encode

ChannelKind = Literal["mqtt", "webhook", "fcm", "apns"]
SIGNATURE_HEADER = "X-Nahfeld-Signature"
TIMESTAMP_HEADER = "X-Nahfeld-Timestamp"


@dataclass(frozen=True, slots=True)
class PushChannel:
    """Where one install wants its offers: its id (MQTT), a URL (webhook), a device token."""

    kind: ChannelKind
    address: str
    secret: str | None = None  # the webhook's signing secret


@dataclass(frozen=True, slots=True)
class PushResult:
    accepted: bool
    detail: str = ""  # why not, as a stable label: "http_503", "timeout", "not_configured"…


class PushProvider(Protocol):
    def send(self, channel: PushChannel, offer: OfferPush) -> PushResult: ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` over ``timestamp.body``: a receiver recomputes it, and refuses
    old timestamps so a captured request cannot be replayed."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class MqttPush:
    """Publishes on ``nahfeld/v1/apps/{install}/offers``; ``publish`` is the cloud bus's.

    The broker is Nahfeld's own, not the app's: when it cannot be reached
    (``ConnectionError``, ``TimeoutError``) that is an outage, so the error goes up
    and the bus retries the decision once the broker is back (the app
    de-duplicates by delivery id) instead of the offer counting as ``push_failed``."""

    def __init__(self, publish: Callable[[str, OfferPush], None]) -> None:
        self._publish = publish

    def send(self, channel: PushChannel, offer: OfferPush) -> PushResult:
        self._publish(app_offers_topic(channel.address), offer)
        return PushResult(True)


class WebhookPush:
    """POSTs the offer as JSON; any 2xx answer within ``timeout_s`` means accepted."""

    def __init__(self, timeout_s: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        self.timeout_s = timeout_s
        self.clock = clock

    def send(self, channel: PushChannel, offer: OfferPush) -> PushResult:
        body = encode(offer)
        timestamp = str(int(self.clock()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp}
        if channel.secret:
            headers[SIGNATURE_HEADER] = sign(channel.secret, timestamp, body)
        request = urllib.request.Request(channel.address, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            return PushResult(False, f"http_{exc.code}")
        except TimeoutError:
            return PushResult(False, "timeout")
        except (urllib.error.URLError, OSError) as exc:
            return PushResult(False, f"unreachable: {getattr(exc, 'reason', exc)}")
        return PushResult(200 <= status < 300, f"http_{status}")


class NotConfiguredPush:
    """FCM or APNs without credentials: the channel is kept, the send reported, not made."""

    def send(self, channel: PushChannel, offer: OfferPush) -> PushResult:
        return PushResult(False, "not_configured")


class PushRouter:
    """The provider for each channel kind."""

    def __init__(self, providers: dict[ChannelKind, PushProvider]) -> None:
        self.providers = providers

    def send(self, channel: PushChannel, offer: OfferPush) -> PushResult:
        provider = self.providers.get(channel.kind, NotConfiguredPush())
        return provider.send(channel, offer)
