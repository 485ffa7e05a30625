"""Redeeming offers (tills, click & collect) and the funnel a marketer reads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from gateway.fields import Identifier

from ...db.base import utcnow
from ...db.models import Delivery
from ...schemas.app import DeliveryOut, Funnel
from ...services import deliveries
from ..deps import MarketingReader, MarketingWriter, SessionDep

router = APIRouter(tags=["funnel"])


def _delivery_out(delivery: Delivery) -> DeliveryOut:
    return DeliveryOut(
        delivery_id=delivery.id,
        store=delivery.store_id,
        campaign=delivery.campaign_id,
        offer=delivery.offer_id,
        triggered_at=delivery.triggered_at,
        suppressed_reason=delivery.suppressed_reason,
        sent_at=delivery.sent_at,
        delivered_at=delivery.delivered_at,
        opened_at=delivery.opened_at,
        redeemed_at=delivery.redeemed_at,
    )


@router.post("/deliveries/{delivery_id}/redeem")
def redeem(
    delivery_id: str,
    principal: MarketingWriter,
    session: SessionDep,
) -> DeliveryOut:
    """Redeem the offer a customer shows (its delivery id, as on the coupon): 409 when it
    was redeemed already, has expired, or was never sent."""
    return _delivery_out(deliveries.redeem(session, principal, delivery_id, utcnow()))


@router.get("/funnel")
def funnel(
    principal: MarketingReader,
    session: SessionDep,
    campaign: Annotated[Identifier | None, Query()] = None,
    store: Annotated[Identifier | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="triggered at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="triggered before (ISO 8601)")] = None,
) -> Funnel:
    """Triggered, suppressed by reason, sent, delivered, opened, redeemed and conversion,
    for one campaign and/or store and a time range (all of the tenant's by default)."""
    counts = deliveries.funnel(session, principal, campaign, store, since, until)
    return Funnel(
        campaign=campaign,
        store=store,
        since=since,
        until=until,
        triggered=counts.triggered,
        suppressed=counts.suppressed,
        sent=counts.sent,
        delivered=counts.delivered,
        opened=counts.opened,
        redeemed=counts.redeemed,
        conversion_rate=counts.conversion_rate,
    )
