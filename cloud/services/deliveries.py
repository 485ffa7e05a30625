"""What became of each offer decision: the app's inbox, receipts, opens, redemptions,
and the funnel a marketer reads.

Every stage is a timestamp on the delivery row, set once: a second receipt,
open or redemption changes nothing (the app may retry, a till may scan twice),
and a redemption is refused when the offer was never sent, has expired or was
redeemed already, each with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..db.models import Delivery, Install, Offer
from .auth import Principal
from .errors import ConflictError, NotFoundError

Stage = Literal["delivered", "opened"]


@dataclass(frozen=True, slots=True)
class InboxEntry:
    delivery: Delivery
    offer: Offer | None


def inbox(session: Session, install: Install, limit: int) -> list[InboxEntry]:
    """Offers sent to the install, newest first, with what they said."""
    stmt = (
        select(Delivery, Offer)
        .outerjoin(Offer, (Offer.tenant_id == Delivery.tenant_id) & (Offer.id == Delivery.offer_id))
        .where(Delivery.install_id == install.id, Delivery.sent_at.is_not(None))
        .order_by(Delivery.sent_at.desc(), Delivery.id)
        .limit(limit)
    )
    return [InboxEntry(delivery, offer) for delivery, offer in session.execute(stmt)]


def _sent_to(session: Session, install: Install, delivery_id: str) -> Delivery:
    """A delivery pushed to ``install``: approved and not given up. Not ``sent_at``: a
    fast phone confirms the push before the worker has committed it as sent."""
    delivery = session.get(Delivery, delivery_id)
    if (
        delivery is None
        or delivery.install_id != install.id
        or delivery.approved_at is None
        or delivery.suppressed_reason is not None
    ):
        raise NotFoundError("delivery", delivery_id)
    return delivery


def mark(
    session: Session, install: Install, delivery_id: str, stage: Stage, now: datetime
) -> Delivery:
    """The app says it received (``delivered``) or opened an offer; the first time counts."""
    delivery = _sent_to(session, install, delivery_id)
    if stage == "delivered" and delivery.delivered_at is None:
        delivery.delivered_at = now
    if stage == "opened" and delivery.opened_at is None:
        delivery.opened_at = now
        delivery.delivered_at = delivery.delivered_at or now  # opened implies received
    session.commit()
    return delivery


def redeem(session: Session, principal: Principal, delivery_id: str, now: datetime) -> Delivery:
    """A till or pickup counter redeems the offer a customer shows (its delivery id)."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.tenant_id != principal.tenant_id:
        raise NotFoundError("delivery", delivery_id)
    if delivery.sent_at is None:
        raise ConflictError(f"delivery {delivery_id!r} was never sent, so it cannot be redeemed")
    if delivery.redeemed_at is not None:
        raise ConflictError(
            f"delivery {delivery_id!r} was redeemed already at {delivery.redeemed_at.isoformat()}"
        )
    if delivery.expires_at is not None and now >= delivery.expires_at:
        raise ConflictError(
            f"delivery {delivery_id!r} expired at {delivery.expires_at.isoformat()}"
        )
    delivery.redeemed_at = now
    session.commit()
    return delivery


@dataclass(frozen=True, slots=True)
class FunnelCounts:
    triggered: int
    suppressed: dict[str, int]
    sent: int
    delivered: int
    opened: int
    redeemed: int

    @property
    def conversion_rate(self) -> float | None:
        return self.redeemed / self.sent if self.sent else None


def funnel(
    session: Session,
    principal: Principal,
    campaign: str | None,
    store: str | None,
    since: datetime | None,
    until: datetime | None,
) -> FunnelCounts:
    """Counts over the decisions triggered in [since, until), in the caller's tenant."""
    conditions = [Delivery.tenant_id == principal.tenant_id]
    if campaign is not None:
        conditions.append(Delivery.campaign_id == campaign)
    if store is not None:
        conditions.append(Delivery.store_id == store)
    if since is not None:
        conditions.append(Delivery.triggered_at >= since)
    if until is not None:
        conditions.append(Delivery.triggered_at < until)
    totals = session.execute(
        select(
            func.count(),
            func.count(Delivery.sent_at),
            func.count(Delivery.delivered_at),
            func.count(Delivery.opened_at),
            func.count(Delivery.redeemed_at),
        ).where(*conditions)
    ).one()
    by_reason = session.execute(
        select(Delivery.suppressed_reason, func.count())
        .where(*conditions, Delivery.suppressed_reason.is_not(None))
        .group_by(Delivery.suppressed_reason)
    )
    return FunnelCounts(
        triggered=totals[0],
        suppressed={str(reason): count for reason, count in sorted(by_reason)},
        sent=totals[1],
        delivered=totals[2],
        opened=totals[3],
        redeemed=totals[4],
    )
