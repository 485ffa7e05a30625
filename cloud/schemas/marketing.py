"""Campaigns, offers, rules and segments.

A rule's trigger, audience, schedule and caps are the gateway's own models
(:mod:`gateway.offers.rules`), so what the API accepts is exactly what a
gateway will execute, checked by the same validators.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal, Self

from pydantic import AnyUrl, Field, HttpUrl, model_validator

from gateway.fields import Identifier, duplicates
from gateway.offers.rules import Audience, Caps, Schedule, Trigger

from ..db import models
from .common import INT32_MAX, INT64_MAX, In, Out

Name = Annotated[str, Field(max_length=200)]
Sku = Annotated[str, Field(min_length=1, max_length=64)]
CampaignStatus = Literal["draft", "active", "paused", "ended"]


class CampaignSchedule(In):
    """The dates the campaign runs, in each store's local time (inclusive, open-ended)."""

    start_date: date | None = None
    end_date: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        return self


class Budget(In):
    """Stop sending once either is spent; ``None``: no limit of that kind."""

    redemptions: Annotated[int, Field(ge=1, le=INT32_MAX)] | None = None
    euro_cents: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None


class CampaignFields(In):
    name: Name = ""
    status: CampaignStatus = "draft"
    schedule: CampaignSchedule = Field(default_factory=CampaignSchedule)
    priority: int = Field(default=0, ge=-1000, le=1000, description="higher wins")
    budget: Budget = Field(default_factory=Budget)


class CampaignCreate(CampaignFields):
    id: Identifier


class CampaignOut(Out):
    id: str
    name: str
    status: CampaignStatus
    schedule: CampaignSchedule
    priority: int
    budget: Budget
    created_at: datetime
    updated_at: datetime


class OfferFields(In):
    campaign: Identifier
    title: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(max_length=2000)] = ""
    deep_link: AnyUrl | None = Field(default=None, examples=["shopapp://offers/coffee-2for1"])
    image_url: HttpUrl | None = None
    sku: Sku | None = Field(default=None, description="offered only while the store has it")
    coupon_codes: Annotated[list[Sku], Field(max_length=10_000)] = Field(default_factory=list)
    value_cents: Annotated[int, Field(ge=0, le=INT32_MAX)] | None = Field(
        default=None, description="what one redemption costs the budget"
    )

    @model_validator(mode="after")
    def _unique_codes(self) -> Self:
        repeated = duplicates(self.coupon_codes)
        if repeated:
            raise ValueError(f"coupon_codes repeat: {', '.join(repeated[:5])}")
        return self


class OfferCreate(OfferFields):
    id: Identifier


class OfferOut(Out):
    id: str
    campaign: str
    title: str
    body: str
    deep_link: str | None
    image_url: str | None
    sku: str | None
    coupon_codes: list[str]
    value_cents: int | None
    created_at: datetime
    updated_at: datetime


class RuleFields(In):
    store: Identifier
    offer: Identifier = Field(description="the rule's campaign is its offer's campaign")
    enabled: bool = True
    trigger: Trigger
    audience: Audience = Field(default_factory=Audience)
    schedule: Schedule = Field(default_factory=Schedule)
    caps: Caps = Field(default_factory=Caps)
    ttl_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=300.0, description="how long a sent offer stays valid"
    )


class RuleCreate(RuleFields):
    id: Identifier


class RuleOut(Out):
    id: str
    store: str
    offer: str
    campaign: str
    enabled: bool
    trigger: Trigger
    audience: Audience
    schedule: Schedule
    caps: Caps
    ttl_s: float
    created_at: datetime
    updated_at: datetime


class SegmentFields(In):
    name: Name = ""
    description: Annotated[str, Field(max_length=2000)] = ""


class SegmentCreate(SegmentFields):
    id: Identifier


class SegmentOut(Out):
    id: str
    name: str
    description: str


class SegmentMembers(In):
    """The whole member list, as a CRM exports it: the apps' install ids."""

    installs: list[Identifier] = Field(max_length=100_000)


class SegmentMembersSet(Out):
    segment: str
    members: int


def campaign_out(row: models.Campaign) -> CampaignOut:
    return CampaignOut(
        id=row.id,
        name=row.name,
        status=row.status,  # type: ignore[arg-type]  # the CHECK constraint keeps it in the set
        schedule=CampaignSchedule(start_date=row.start_date, end_date=row.end_date),
        priority=row.priority,
        budget=Budget(redemptions=row.budget_redemptions, euro_cents=row.budget_cents),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def offer_out(row: models.Offer) -> OfferOut:
    return OfferOut(
        id=row.id,
        campaign=row.campaign_id,
        title=row.title,
        body=row.body,
        deep_link=row.deep_link,
        image_url=row.image_url,
        sku=row.sku,
        coupon_codes=list(row.coupon_codes),
        value_cents=row.value_cents,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def rule_out(row: models.Rule) -> RuleOut:
    return RuleOut(
        id=row.id,
        store=row.store_id,
        offer=row.offer_id,
        campaign=row.offer.campaign_id,
        enabled=row.enabled,
        trigger=Trigger.model_validate(row.trigger),
        audience=Audience.model_validate(row.audience),
        schedule=Schedule.model_validate(row.schedule),
        caps=Caps.model_validate(row.caps),
        ttl_s=row.ttl_s,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
