"""Campaigns, offers, rules and segments of a tenant.

References inside a body (a rule's store, offer, zones and segments; an
offer's campaign) are checked against the tenant's own objects and refused as
invalid fields (422) naming the offending position, never stored dangling.
Every write that can alter what a store's gateways execute marks those stores'
rulesets as changed (:mod:`cloud.services.changes`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db.chunks import chunks
from ..db.models import Campaign, Install, Offer, Rule, Segment, SegmentMember
from ..schemas.marketing import (
    CampaignCreate,
    CampaignFields,
    OfferCreate,
    OfferFields,
    RuleCreate,
    RuleFields,
    SegmentCreate,
    SegmentFields,
    SegmentMembers,
)
from .auth import Principal
from .changes import ruleset_changed
from .errors import ConflictError, InvalidError, NotFoundError, Problem
from .fleet import find_store, zone_ids
from .paging import PageRequest, PageResult, fetch_page


def _commit(session: Session, what: str) -> None:
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"{what} conflicts with existing data") from exc


def _stores_of_rules(session: Session, principal: Principal, *conditions: Any) -> set[str]:
    stmt = select(Rule.store_id).where(Rule.tenant_id == principal.tenant_id, *conditions)
    return set(session.scalars(stmt))


# ------------------------------------------------------------------ campaigns


_Owned = TypeVar("_Owned", Campaign, Offer, Rule, Segment)


def _owned(
    session: Session, principal: Principal, model: type[_Owned], ident: str, kind: str
) -> _Owned:
    """The caller's tenant's row of ``model`` by id; another tenant's is as absent (404)."""
    row = session.get(model, (principal.tenant_id, ident))
    if row is None:
        raise NotFoundError(kind, ident)
    return row


def list_campaigns(
    session: Session, principal: Principal, page: PageRequest
) -> PageResult[Campaign]:
    stmt = select(Campaign).where(Campaign.tenant_id == principal.tenant_id).order_by(Campaign.id)
    return fetch_page(session, stmt, page)


def get_campaign(session: Session, principal: Principal, campaign_id: str) -> Campaign:
    return _owned(session, principal, Campaign, campaign_id, "campaign")


def _apply_campaign(campaign: Campaign, data: CampaignFields) -> None:
    campaign.name = data.name
    campaign.status = data.status
    campaign.start_date = data.schedule.start_date
    campaign.end_date = data.schedule.end_date
    campaign.priority = data.priority
    campaign.budget_redemptions = data.budget.redemptions
    campaign.budget_cents = data.budget.euro_cents


def create_campaign(session: Session, principal: Principal, data: CampaignCreate) -> Campaign:
    if session.get(Campaign, (principal.tenant_id, data.id)) is not None:
        raise ConflictError(f"campaign {data.id!r} already exists")
    campaign = Campaign(tenant_id=principal.tenant_id, id=data.id)
    _apply_campaign(campaign, data)
    session.add(campaign)
    _commit(session, f"campaign {data.id!r}")
    return campaign


def update_campaign(
    session: Session, principal: Principal, campaign_id: str, data: CampaignFields
) -> Campaign:
    campaign = get_campaign(session, principal, campaign_id)
    _apply_campaign(campaign, data)
    offers = select(Offer.id).where(
        Offer.tenant_id == principal.tenant_id, Offer.campaign_id == campaign.id
    )
    ruleset_changed(session, _stores_of_rules(session, principal, Rule.offer_id.in_(offers)))
    session.commit()
    return campaign


def delete_campaign(session: Session, principal: Principal, campaign_id: str) -> None:
    campaign = get_campaign(session, principal, campaign_id)
    offers = list(
        session.scalars(
            select(Offer.id).where(
                Offer.tenant_id == principal.tenant_id, Offer.campaign_id == campaign.id
            )
        )
    )
    if offers:
        raise ConflictError(f"campaign {campaign_id!r} still has offer(s) {', '.join(offers)}")
    session.delete(campaign)
    session.commit()


# ------------------------------------------------------------------ offers


def list_offers(session: Session, principal: Principal, page: PageRequest) -> PageResult[Offer]:
    stmt = select(Offer).where(Offer.tenant_id == principal.tenant_id).order_by(Offer.id)
    return fetch_page(session, stmt, page)


def get_offer(session: Session, principal: Principal, offer_id: str) -> Offer:
    return _owned(session, principal, Offer, offer_id, "offer")


def _apply_offer(session: Session, principal: Principal, offer: Offer, data: OfferFields) -> None:
    if session.get(Campaign, (principal.tenant_id, data.campaign)) is None:
        raise InvalidError(
            [Problem(("body", "campaign"), f"no campaign {data.campaign!r}", "unknown_reference")]
        )
    offer.campaign_id = data.campaign
    offer.title = data.title
    offer.body = data.body
    offer.deep_link = str(data.deep_link) if data.deep_link is not None else None
    offer.image_url = str(data.image_url) if data.image_url is not None else None
    offer.sku = data.sku
    offer.coupon_codes = list(data.coupon_codes)
    offer.value_cents = data.value_cents


def create_offer(session: Session, principal: Principal, data: OfferCreate) -> Offer:
    if session.get(Offer, (principal.tenant_id, data.id)) is not None:
        raise ConflictError(f"offer {data.id!r} already exists")
    offer = Offer(tenant_id=principal.tenant_id, id=data.id)
    _apply_offer(session, principal, offer, data)
    session.add(offer)
    _commit(session, f"offer {data.id!r}")
    return offer


def update_offer(session: Session, principal: Principal, offer_id: str, data: OfferFields) -> Offer:
    offer = get_offer(session, principal, offer_id)
    _apply_offer(session, principal, offer, data)
    ruleset_changed(session, _stores_of_rules(session, principal, Rule.offer_id == offer.id))
    session.commit()
    return offer


def delete_offer(session: Session, principal: Principal, offer_id: str) -> None:
    offer = get_offer(session, principal, offer_id)
    rules = list(
        session.scalars(
            select(Rule.id).where(Rule.tenant_id == principal.tenant_id, Rule.offer_id == offer.id)
        )
    )
    if rules:
        raise ConflictError(f"offer {offer_id!r} is used by rule(s) {', '.join(sorted(rules))}")
    session.delete(offer)
    session.commit()


# ------------------------------------------------------------------ rules


def list_rules(
    session: Session, principal: Principal, page: PageRequest, store_id: str | None = None
) -> PageResult[Rule]:
    stmt = select(Rule).where(Rule.tenant_id == principal.tenant_id)
    if store_id is not None:
        stmt = stmt.where(Rule.store_id == store_id)
    return fetch_page(session, stmt.order_by(Rule.id), page)


def get_rule(session: Session, principal: Principal, rule_id: str) -> Rule:
    return _owned(session, principal, Rule, rule_id, "rule")


def _reference_problems(
    session: Session, principal: Principal, data: RuleFields
) -> Iterable[Problem]:
    """Everything a rule body names that the tenant does not have (for that store)."""
    store = find_store(session, principal, data.store)
    if store is None:
        yield Problem(("body", "store"), f"no store {data.store!r}", "unknown_reference")
    else:
        known = zone_ids(session, store.id)
        for index, zone in enumerate(data.trigger.zones):
            if zone not in known:
                yield Problem(
                    ("body", "trigger", "zones", index),
                    f"zone {zone!r} is not a zone of store {store.id!r}",
                    "zone_of_other_store",
                )
    if session.get(Offer, (principal.tenant_id, data.offer)) is None:
        yield Problem(("body", "offer"), f"no offer {data.offer!r}", "unknown_reference")
    segments = set(
        session.scalars(select(Segment.id).where(Segment.tenant_id == principal.tenant_id))
    )
    for index, segment in enumerate(data.audience.segments):
        if segment not in segments:
            yield Problem(
                ("body", "audience", "segments", index),
                f"no segment {segment!r}",
                "unknown_reference",
            )


def _apply_rule(session: Session, principal: Principal, rule: Rule, data: RuleFields) -> None:
    problems = list(_reference_problems(session, principal, data))
    if problems:
        raise InvalidError(problems)
    rule.store_id = data.store
    rule.offer_id = data.offer
    rule.enabled = data.enabled
    rule.trigger = data.trigger.model_dump(mode="json")
    rule.audience = data.audience.model_dump(mode="json")
    rule.schedule = data.schedule.model_dump(mode="json")
    rule.caps = data.caps.model_dump(mode="json")
    rule.ttl_s = data.ttl_s


def create_rule(session: Session, principal: Principal, data: RuleCreate) -> Rule:
    if session.get(Rule, (principal.tenant_id, data.id)) is not None:
        raise ConflictError(f"rule {data.id!r} already exists")
    rule = Rule(tenant_id=principal.tenant_id, id=data.id)
    _apply_rule(session, principal, rule, data)
    session.add(rule)
    ruleset_changed(session, [data.store])
    _commit(session, f"rule {data.id!r}")
    return rule


def update_rule(session: Session, principal: Principal, rule_id: str, data: RuleFields) -> Rule:
    rule = get_rule(session, principal, rule_id)
    before = rule.store_id
    _apply_rule(session, principal, rule, data)
    ruleset_changed(session, {before, data.store})
    _commit(session, f"rule {rule_id!r}")
    session.refresh(rule)  # the offer (and so the campaign) may have changed
    return rule


def delete_rule(session: Session, principal: Principal, rule_id: str) -> None:
    rule = get_rule(session, principal, rule_id)
    ruleset_changed(session, [rule.store_id])
    session.delete(rule)
    session.commit()


# ------------------------------------------------------------------ segments


def list_segments(session: Session, principal: Principal, page: PageRequest) -> PageResult[Segment]:
    stmt = select(Segment).where(Segment.tenant_id == principal.tenant_id).order_by(Segment.id)
    return fetch_page(session, stmt, page)


def get_segment(session: Session, principal: Principal, segment_id: str) -> Segment:
    return _owned(session, principal, Segment, segment_id, "segment")


def create_segment(session: Session, principal: Principal, data: SegmentCreate) -> Segment:
    if session.get(Segment, (principal.tenant_id, data.id)) is not None:
        raise ConflictError(f"segment {data.id!r} already exists")
    segment = Segment(
        tenant_id=principal.tenant_id, id=data.id, name=data.name, description=data.description
    )
    session.add(segment)
    _commit(session, f"segment {data.id!r}")
    return segment


def update_segment(
    session: Session, principal: Principal, segment_id: str, data: SegmentFields
) -> Segment:
    segment = get_segment(session, principal, segment_id)
    segment.name = data.name
    segment.description = data.description
    session.commit()
    return segment


def delete_segment(session: Session, principal: Principal, segment_id: str) -> None:
    segment = get_segment(session, principal, segment_id)
    rules = session.scalars(select(Rule).where(Rule.tenant_id == principal.tenant_id))
    users = sorted(r.id for r in rules if segment.id in r.audience.get("segments", ()))
    if users:
        raise ConflictError(f"segment {segment_id!r} is used by rule(s) {', '.join(users)}")
    session.delete(segment)
    session.commit()


def set_segment_members(
    session: Session, principal: Principal, segment_id: str, data: SegmentMembers
) -> int:
    """Replace the segment's members (a CRM's nightly sync sends the whole list). Members
    are the tenant's opted-in installs by their app install id; any other id is refused,
    every one named, and nothing changes."""
    segment = get_segment(session, principal, segment_id)
    wanted = list(dict.fromkeys(data.installs))
    found: dict[str, int] = {}
    for chunk in chunks(wanted):
        rows = session.execute(
            select(Install.uid, Install.id).where(
                Install.tenant_id == principal.tenant_id,
                Install.revoked_at.is_(None),
                Install.uid.in_(chunk),
            )
        )
        found.update((uid, install) for uid, install in rows)
    missing = [
        Problem(("body", "installs", index), f"no opted-in install {uid!r}", "unknown_install")
        for index, uid in enumerate(data.installs)
        if uid not in found
    ]
    if missing:
        raise InvalidError(missing[:20])
    session.execute(
        delete(SegmentMember).where(
            SegmentMember.tenant_id == principal.tenant_id,
            SegmentMember.segment_id == segment.id,
        )
    )
    session.add_all(
        SegmentMember(tenant_id=principal.tenant_id, segment_id=segment.id, install_id=install)
        for install in found.values()
    )
    session.commit()
    return len(found)


def segment_members(
    session: Session, principal: Principal, segment_id: str, page: PageRequest
) -> PageResult[str]:
    segment = get_segment(session, principal, segment_id)
    stmt = (
        select(Install.uid)
        .join(SegmentMember, SegmentMember.install_id == Install.id)
        .where(
            SegmentMember.tenant_id == principal.tenant_id,
            SegmentMember.segment_id == segment.id,
        )
        .order_by(Install.uid)
    )
    return fetch_page(session, stmt, page)
