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
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.offers.rules import Rule, RulesetBody

from ..db import models
from ..db.chunks import chunks
from .auth import Principal
from .fleet import get_store


def _later(a: date | None, b: date | None) -> date | None:
    return max(a, b) if a and b else a or b


def _earlier(a: date | None, b: date | None) -> date | None:
    return min(a, b) if a and b else a or b


def compile_rule(
    rule: models.Rule, offer: models.Offer, campaign: models.Campaign, zones: set[str]
) -> Rule | None:
    """The gateway's rule, or ``None`` when it cannot fire in this store.

    Validated once, by the gateway's own model; narrowing the schedule to the
    campaign's dates is a copy, its order checked here (a fleet-wide change
    compiles thousands of rules, and validation is most of the cost)."""
    if not rule.enabled or campaign.status != "active":
        return None
    compiled = Rule.model_validate(
        {
            "id": rule.id,
            "campaign": campaign.id,
            "offer": offer.id,
            "trigger": rule.trigger,
            "audience": rule.audience,
            "schedule": rule.schedule,
            "caps": rule.caps,
            "priority": campaign.priority,
            "sku": offer.sku,
            "ttl_s": rule.ttl_s,
        }
    )
    if not set(compiled.trigger.zones) <= zones:
        return None
    schedule = compiled.schedule
    start = _later(schedule.start_date, campaign.start_date)
    end = _earlier(schedule.end_date, campaign.end_date)
    if start and end and end < start:
        return None
    if (start, end) == (schedule.start_date, schedule.end_date):
        return compiled
    narrowed = schedule.model_copy(update={"start_date": start, "end_date": end})
    return compiled.model_copy(update={"schedule": narrowed})


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


_Row = TypeVar("_Row", models.Offer, models.Campaign)


def store_rulesets(session: Session, store_ids: Iterable[str]) -> dict[str, RulesetBody]:
    """Compile many stores' rulesets with a handful of queries per 500 stores (a publisher
    republishing the fleet must not pay four round trips a store). Unknown ids are left out."""
    ids = sorted(set(store_ids))
    compiled: dict[str, RulesetBody] = {}
    for chunk in chunks(ids):
        stores = list(session.scalars(select(models.Store).where(models.Store.id.in_(chunk))))
        rules = list(session.scalars(select(models.Rule).where(models.Rule.store_id.in_(chunk))))
        zones = list(session.scalars(select(models.Zone).where(models.Zone.store_id.in_(chunk))))
        offers = _rows_by_id(session, models.Offer, {rule.offer_id for rule in rules})
        campaigns = _rows_by_id(session, models.Campaign, {offer.campaign_id for offer in offers})
        by_store: dict[str, tuple[list[models.Zone], list[models.Rule]]] = {
            store.id: ([], []) for store in stores
        }
        for zone in zones:
            by_store[zone.store_id][0].append(zone)
        for rule in rules:
            by_store[rule.store_id][1].append(rule)
        for store in stores:
            store_zones, store_rules = by_store[store.id]
            compiled[store.id] = compile_ruleset(store, store_zones, campaigns, offers, store_rules)
    return compiled


def _rows_by_id(session: Session, model: type[_Row], ids: set[str]) -> list[_Row]:
    """Rows of ``model`` with these ids, of any tenant: :func:`compile_ruleset` keeps only
    the store's tenant's."""
    rows: list[_Row] = []
    for chunk in chunks(sorted(ids)):
        rows += session.scalars(select(model).where(model.id.in_(chunk)))
    return rows


def store_ruleset(session: Session, store: models.Store) -> RulesetBody:
    """Load what the store's ruleset depends on and compile it."""
    return store_rulesets(session, [store.id])[store.id]


def ruleset_for(session: Session, principal: Principal, store_id: str) -> RulesetBody:
    return store_ruleset(session, get_store(session, principal, store_id))
