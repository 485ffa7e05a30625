"""Compiling a store's ruleset: the marketer's objects in, the gateway's ``RulesetBody`` out.

:func:`compile_ruleset` is pure (rows in, model out, no session, no clock), so
what a gateway will execute can be tested without a database. Only rules that
can fire get in: enabled, in this store, of an active campaign, naming zones
the store has, with dates that overlap the campaign's. The campaign's dates
narrow the rule's own schedule, its priority becomes the rule's, and the
offer's SKU makes the rule depend on stock. The result is validated by the
gateway's own model, so the cloud cannot compile what a gateway would refuse.
The version is the store's counter, bumped by :mod:`cloud.services.changes`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.offers.rules import Audience, Caps, Rule, RulesetBody, Schedule, Trigger

from ..db import models
from .auth import Principal
from .fleet import get_store


def _later(a: date | None, b: date | None) -> date | None:
    return max(a, b) if a and b else a or b


def _earlier(a: date | None, b: date | None) -> date | None:
    return min(a, b) if a and b else a or b


def compile_rule(
    rule: models.Rule, offer: models.Offer, campaign: models.Campaign, zones: set[str]
) -> Rule | None:
    """The gateway's rule, or ``None`` when it cannot fire in this store."""
    if not rule.enabled or campaign.status != "active":
        return None
    trigger = Trigger.model_validate(rule.trigger)
    if not set(trigger.zones) <= zones:
        return None
    schedule = Schedule.model_validate(rule.schedule)
    start = _later(schedule.start_date, campaign.start_date)
    end = _earlier(schedule.end_date, campaign.end_date)
    if start and end and end < start:
        return None
    narrowed = Schedule.model_validate(
        {**schedule.model_dump(), "start_date": start, "end_date": end}
    )
    return Rule(
        id=rule.id,
        campaign=campaign.id,
        offer=offer.id,
        trigger=trigger,
        audience=Audience.model_validate(rule.audience),
        schedule=narrowed,
        caps=Caps.model_validate(rule.caps),
        priority=campaign.priority,
        sku=offer.sku,
        ttl_s=rule.ttl_s,
    )


def compile_ruleset(
    store: models.Store,
    zones: Iterable[models.Zone],
    campaigns: Iterable[models.Campaign],
    offers: Iterable[models.Offer],
    rules: Iterable[models.Rule],
) -> RulesetBody:
    """The store's ruleset at its current version; rows of other stores or tenants are ignored."""
    zone_ids = {zone.id for zone in zones if zone.store_id == store.id}
    own_campaigns = {c.id: c for c in campaigns if c.tenant_id == store.tenant_id}
    own_offers = {o.id: o for o in offers if o.tenant_id == store.tenant_id}
    compiled: list[Rule] = []
    for rule in sorted(rules, key=lambda r: r.id):
        if rule.store_id != store.id or rule.tenant_id != store.tenant_id:
            continue
        offer = own_offers.get(rule.offer_id)
        campaign = own_campaigns.get(offer.campaign_id) if offer is not None else None
        if offer is None or campaign is None:
            continue
        gateway_rule = compile_rule(rule, offer, campaign, zone_ids)
        if gateway_rule is not None:
            compiled.append(gateway_rule)
    return RulesetBody(
        store=store.id, version=store.ruleset_version, timezone=store.timezone, rules=compiled
    )


def store_ruleset(session: Session, store: models.Store) -> RulesetBody:
    """Load what the store's ruleset depends on and compile it (for the API and publishers)."""
    rules = list(session.scalars(select(models.Rule).where(models.Rule.store_id == store.id)))
    offer_ids = {rule.offer_id for rule in rules}
    offers = list(
        session.scalars(
            select(models.Offer).where(
                models.Offer.tenant_id == store.tenant_id, models.Offer.id.in_(offer_ids)
            )
        )
    )
    campaigns = list(
        session.scalars(
            select(models.Campaign).where(
                models.Campaign.tenant_id == store.tenant_id,
                models.Campaign.id.in_({offer.campaign_id for offer in offers}),
            )
        )
    )
    zones = list(session.scalars(select(models.Zone).where(models.Zone.store_id == store.id)))
    return compile_ruleset(store, zones, campaigns, offers, rules)


def ruleset_for(session: Session, principal: Principal, store_id: str) -> RulesetBody:
    return store_ruleset(session, get_store(session, principal, store_id))
