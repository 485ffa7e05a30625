"""The cloud's tables, as SQLAlchemy 2 typed models.

Ids the marketer chooses (store, zone, gateway, campaign, offer, rule,
segment) are strings in the contract's ``Identifier`` shape, because they end
up in MQTT topics and rulesets verbatim. Stores are unique fleet-wide (a topic
``stores/{store}`` carries no tenant); zones and gateways are unique per store;
campaigns, offers, rules and segments per tenant, which the composite keys and
foreign keys enforce in the database, not only in the service.

Rule parts that the gateway executes (trigger, audience, schedule, caps) are
kept as JSON in the gateway's own model shape: the database stores what the
ruleset will carry, and the compiler re-validates it with the gateway's models.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.contract import gateway_username

from .base import Base, UtcDateTime, utcnow

ID = String(64)
ROLES = ("admin", "marketer", "viewer")
CAMPAIGN_STATUSES = ("draft", "active", "paused", "ended")
PUSH_KINDS = ("mqtt", "webhook", "fcm", "apns")


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name)


class Tenant(Base):
    """A retailer: the unit everything else belongs to and is isolated by."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(ID, unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ApiKey(Base):
    """A key is shown once; only its SHA-256 is kept, found again by its public prefix."""

    __tablename__ = "api_keys"
    __table_args__ = (_one_of("role", ROLES, "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    #: weekday name ("mon"…"sun") → list of {"start", "end"} local times
    opening_hours: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: bumped in the database on every change that alters the store's compiled ruleset
    ruleset_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class Zone(Base):
    __tablename__ = "zones"

    store_id: Mapped[str] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")


class Gateway(Base):
    """A store gateway; its MQTT password is kept only as a Mosquitto-compatible hash."""

    __tablename__ = "gateways"

    store_id: Mapped[str] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    credentials_issued_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    @property
    def mqtt_username(self) -> str:
        return gateway_username(self.store_id, self.id)


class Segment(Base):
    __tablename__ = "segments"

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        _one_of("status", CAMPAIGN_STATUSES, "status"),
        CheckConstraint(
            "end_date IS NULL OR start_date IS NULL OR end_date >= start_date", name="dates_ordered"
        ),
    )

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="draft")
    start_date: Mapped[date | None] = mapped_column(Date, default=None)
    end_date: Mapped[date | None] = mapped_column(Date, default=None)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    budget_redemptions: Mapped[int | None] = mapped_column(Integer, default=None)
    budget_cents: Mapped[int | None] = mapped_column(BigInteger, default=None)
    #: reserved atomically by the ingestion worker as offers are sent (never above budget)
    spent_redemptions: Mapped[int] = mapped_column(Integer, default=0)
    spent_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class Offer(Base):
    __tablename__ = "offers"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "campaign_id"], ["campaigns.tenant_id", "campaigns.id"]),
    )

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ID)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    deep_link: Mapped[str | None] = mapped_column(String(2048), default=None)
    image_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    sku: Mapped[str | None] = mapped_column(String(64), default=None)
    coupon_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    value_cents: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class Rule(Base):
    """When to offer what in one store; its campaign is its offer's campaign."""

    __tablename__ = "rules"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "offer_id"], ["offers.tenant_id", "offers.id"]),
    )

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), index=True)
    offer_id: Mapped[str] = mapped_column(ID)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    trigger: Mapped[dict[str, Any]] = mapped_column(JSON)
    audience: Mapped[dict[str, Any]] = mapped_column(JSON)
    schedule: Mapped[dict[str, Any]] = mapped_column(JSON)
    caps: Mapped[dict[str, Any]] = mapped_column(JSON)
    ttl_s: Mapped[float] = mapped_column(Float, default=300.0)
    #: read-only: the rule's campaign is its offer's, loaded with the rule
    offer: Mapped[Offer] = relationship(viewonly=True, lazy="joined")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class StockLevel(Base):
    """What the ERP last said a store has of one SKU."""

    __tablename__ = "stock_levels"
    __table_args__ = (CheckConstraint("quantity >= 0", name="quantity_not_negative"),)

    store_id: Mapped[str] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True
    )
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


# ---------------------------------------------------------------- the app side


class Install(Base):
    """An opted-in app install. The EID identity key lives here and nowhere else.

    ``id`` is the resolver's compact handle; ``uid`` is the app's own install id
    (unique fleet-wide: it names the app's offers topic and MQTT user). Opting
    out clears the key and sets ``revoked_at``; erasure deletes the row.
    """

    __tablename__ = "installs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    uid: Mapped[str] = mapped_column(ID, unique=True)
    identity_key: Mapped[bytes | None] = mapped_column(LargeBinary(16), default=None)
    rotation_exponent: Mapped[int] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64))
    #: list of {"start", "end"} local times when no offer may be pushed
    quiet_hours: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    app_token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    opted_in_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    #: when membership in the resolver's table last changed (opt-in, opt-out)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


class Consent(Base):
    """One consent as the app recorded it: what for, which text, when; withdrawal kept."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    install_id: Mapped[int] = mapped_column(
        ForeignKey("installs.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(64))
    text_version: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class PushChannelRow(Base):
    """Where an install wants its offers, one row per kind (MQTT, webhook, FCM, APNs)."""

    __tablename__ = "push_channels"
    __table_args__ = (_one_of("kind", PUSH_KINDS, "kind"),)

    install_id: Mapped[int] = mapped_column(
        ForeignKey("installs.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    address: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class SegmentMember(Base):
    __tablename__ = "segment_members"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "segment_id"],
            ["segments.tenant_id", "segments.id"],
            ondelete="CASCADE",
        ),
    )

    tenant_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    segment_id: Mapped[str] = mapped_column(ID, primary_key=True)
    install_id: Mapped[int] = mapped_column(
        ForeignKey("installs.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Revocation(Base):
    """An opt-out or erasure, kept briefly so resolvers relay it to gateways, then purged."""

    __tablename__ = "revocations"

    uid: Mapped[str] = mapped_column(ID, primary_key=True)
    #: the resolver's handle, so its table can drop the install (the row may be gone)
    install_id: Mapped[int] = mapped_column(Integer)
    revoked_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


class Delivery(Base):
    """One offer decision from a gateway and everything that followed: the funnel's rows.

    Keyed for idempotency by the gateway's ``event_id``. The install is linked
    while it exists; erasure leaves the row anonymous (counts stay, the person goes).
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_funnel", "tenant_id", "campaign_id", "triggered_at"),
        Index("ix_deliveries_person", "install_id", "campaign_id", "approved_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    store_id: Mapped[str] = mapped_column(ID, index=True)
    gateway_id: Mapped[str] = mapped_column(ID)
    zone_id: Mapped[str] = mapped_column(ID)
    campaign_id: Mapped[str | None] = mapped_column(ID, default=None)
    offer_id: Mapped[str | None] = mapped_column(ID, default=None)
    rule_id: Mapped[str | None] = mapped_column(ID, default=None)
    install_id: Mapped[int | None] = mapped_column(
        ForeignKey("installs.id", ondelete="SET NULL"), default=None
    )
    triggered_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    suppressed_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    #: budget reserved: from here on the offer goes out, however often the worker restarts
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    value_cents: Mapped[int] = mapped_column(Integer, default=0)
    coupon_code: Mapped[str | None] = mapped_column(String(64), default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    push_result: Mapped[str | None] = mapped_column(String(200), default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    redeemed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class ServiceSecret(Base):
    """Secrets the service makes for itself on first use (the store-token key), shared
    by every worker through the database."""

    __tablename__ = "service_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
