"""Bodies of the app API: opt-in with consent, push channels, the inbox; and the funnel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, HttpUrl

from gateway.fields import IanaTimezone, Identifier
from gateway.offers.rules import TimeWindow

from .common import In, Out

OFFERS_PURPOSE = "proximity_offers"
Purpose = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", examples=[OFFERS_PURPOSE])]
Version = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
ChannelKind = Literal["mqtt", "webhook", "fcm", "apns"]


class ConsentRecord(In):
    """What the person agreed to, in which wording, when (the app's clock, kept as given)."""

    purpose: Purpose
    text_version: Version = Field(description="the version of the consent text shown")
    granted_at: datetime


class OptIn(In):
    install_id: Identifier = Field(description="the app's own install id (a UUID, say)")
    consents: Annotated[list[ConsentRecord], Field(min_length=1, max_length=16)]
    timezone: IanaTimezone = Field(description="the phone's zone, for quiet hours")
    quiet_hours: Annotated[list[TimeWindow], Field(max_length=8)] = Field(default_factory=list)


class OptedIn(Out):
    """Shown once: the identity key and the app token are not retrievable again."""

    install_id: str
    identity_key: str = Field(description="Eddystone-EID identity key, 32 hex digits")
    rotation_exponent: int = Field(description="K: the EID changes every 2**K seconds")
    app_token: str = Field(description="Authorization: Bearer <app_token> for /v1/app/me…")
    offers_topic: str = Field(description="the MQTT topic offers arrive on, once registered")


class ConsentOut(Out):
    purpose: str
    text_version: str
    granted_at: datetime
    withdrawn_at: datetime | None


class ChannelIn(In):
    """``mqtt`` needs nothing; ``webhook`` a URL and a signing secret; FCM/APNs a token."""

    url: HttpUrl | None = None
    secret: Annotated[str, Field(min_length=16, max_length=128)] | None = None
    device_token: Annotated[str, Field(min_length=1, max_length=4096)] | None = None


class ChannelOut(Out):
    kind: ChannelKind
    address: str
    created_at: datetime


class InstallOut(Out):
    install_id: str
    opted_in: bool
    opted_in_at: datetime
    revoked_at: datetime | None
    rotation_exponent: int
    timezone: str
    consents: list[ConsentOut]
    channels: list[ChannelOut]


class InboxItem(Out):
    delivery_id: str
    store: str
    campaign: str | None
    offer: str | None
    title: str
    body: str
    deep_link: str | None
    image_url: str | None
    coupon_code: str | None
    sent_at: datetime | None
    expires_at: datetime | None
    delivered_at: datetime | None
    opened_at: datetime | None
    redeemed_at: datetime | None


class DeliveryOut(Out):
    delivery_id: str
    store: str
    campaign: str | None
    offer: str | None
    triggered_at: datetime
    suppressed_reason: str | None
    sent_at: datetime | None
    delivered_at: datetime | None
    opened_at: datetime | None
    redeemed_at: datetime | None


class Funnel(Out):
    """Counts over offer decisions triggered in the range (each stage a subset of the last)."""

    campaign: str | None
    store: str | None
    since: datetime | None
    until: datetime | None
    triggered: int
    suppressed: dict[str, int] = Field(description="by reason: gateway caps, consent, budget…")
    sent: int = Field(description="handed to a push channel that accepted it")
    delivered: int = Field(description="the app confirmed receipt")
    opened: int
    redeemed: int
    conversion_rate: float | None = Field(description="redeemed / sent; null when none sent")
