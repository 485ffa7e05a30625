"""One offer decision from a gateway, taken to its end exactly once in effect.

The gateway decided from what one store knows; here the cloud decides last.
Each decision becomes one delivery row keyed by the gateway's event id, and
moves through stages that are each committed before the next begins:

1. recorded — the row exists (a redelivered event finds it and goes on from
   where it stopped; a finished one is a duplicate and changes nothing);
2. checked — :func:`cloud.final_check.final_check` on fresh state, under a
   row lock on the person (PostgreSQL) so two workers cannot both pass a cap;
3. approved — the campaign's budget reserved by one conditional UPDATE, which
   can never take it below zero however many workers race;
4. sent — pushed to the install's channels (the app de-duplicates by delivery
   id, so a push repeated after a crash is harmless); if every channel
   refused, the reservation is given back and the reason recorded.

Tokens are turned back into installs by decryption (:func:`install_of_token`);
an event whose token matches no install leaves an anonymous funnel row only.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract import OfferDecisionMessage, OfferPush
from gateway.offers.rules import TimeWindow

from ..db.models import Campaign, Delivery, Install, Offer, Store
from ..final_check import CampaignState, GlobalCaps, PersonState, final_check
from ..push import PushChannel, PushProvider
from ..resolver.tokens import install_of_token
from ..schemas.app import OFFERS_PURPOSE
from ..services.installs import active_purposes, channels_of

log = logging.getLogger(__name__)


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _representable(ts: float | None) -> bool:
    """The contract refuses NaN and infinity but takes any finite float as a time: years
    outside 1-9999 are none a database can store."""
    if ts is None:
        return True
    try:
        _at(ts)
    except (OverflowError, ValueError, OSError):
        return False
    return True


class Ingestor:
    """Takes offer decisions to their end; ``outcomes`` counts how each one ended."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        secret: bytes,
        push: PushProvider,
        caps: GlobalCaps,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessions = sessions
        self.secret = secret
        self.push = push
        self.caps = caps
        self.clock = clock
        self.outcomes: Counter[str] = Counter()

    def handle(self, message: OfferDecisionMessage) -> str:
        """The outcome: ``sent``, ``duplicate``, ``unknown_store``, ``bad_time`` or a
        suppression reason."""
        if not (_representable(message.ts) and _representable(message.expires_at)):
            # refused and counted, not raised: a raising handler leaves the message
            # unacknowledged, and the broker would bring it back after every reconnect
            log.warning("offer decision %s: times out of range, refused", message.event_id)
            outcome = "bad_time"
        else:
            outcome = self._handle(message)
        self.outcomes[outcome] += 1
        return outcome

    def _handle(self, message: OfferDecisionMessage) -> str:
        with self.sessions() as session:
            recorded = self._recorded(session, message)
            if recorded is None:
                return "unknown_store"
            delivery, fresh = recorded
            if self._finished(delivery):
                return (delivery.suppressed_reason or "sent") if fresh else "duplicate"
            if delivery.approved_at is None:
                # a redelivery racing its first delivery's worker waits here, then sees its end
                session.refresh(delivery, with_for_update=True)
                if self._finished(delivery) or delivery.approved_at is not None:
                    session.commit()
                    return "duplicate"
                reason = self._check_and_reserve(session, delivery)
                if reason is not None:
                    return reason
            return self._send(session, delivery)

    # ------------------------------------------------------------ 1. recorded

    def _recorded(
        self, session: Session, message: OfferDecisionMessage
    ) -> tuple[Delivery, bool] | None:
        """The event's row and whether this call made it; ``None``: no such store."""
        existing = self._by_event(session, message.event_id)
        if existing is not None:
            return existing, False
        store = session.get(Store, message.store)
        if store is None:
            log.warning("offer decision %s names unknown store %s", message.event_id, message.store)
            return None
        uid = install_of_token(self.secret, message.store, message.token)
        install_id = (
            session.scalars(select(Install.id).where(Install.uid == uid)).one_or_none()
            if uid is not None
            else None
        )
        reason = message.suppressed
        if reason is None and install_id is None:
            reason = "unknown_person"  # erased, or a token not minted for this store
        if reason is None and (message.campaign is None or message.offer is None):
            reason = "no_offer"
        delivery = Delivery(
            id=secrets.token_urlsafe(12),
            event_id=message.event_id,
            tenant_id=store.tenant_id,
            store_id=message.store,
            gateway_id=message.gateway,
            zone_id=message.zone,
            campaign_id=message.campaign,
            offer_id=message.offer,
            rule_id=message.rule,
            install_id=install_id,
            triggered_at=_at(message.ts),
            expires_at=_at(message.expires_at) if message.expires_at is not None else None,
            suppressed_reason=reason,
        )
        session.add(delivery)
        try:
            session.commit()
        except IntegrityError:  # another worker recorded the same event first
            session.rollback()
            raced = self._by_event(session, message.event_id)
            return None if raced is None else (raced, False)
        return delivery, True

    @staticmethod
    def _finished(delivery: Delivery) -> bool:
        return delivery.sent_at is not None or delivery.suppressed_reason is not None

    @staticmethod
    def _by_event(session: Session, event_id: str) -> Delivery | None:
        return session.scalars(select(Delivery).where(Delivery.event_id == event_id)).one_or_none()

    # ------------------------------------------------------------ 2-3. checked, approved

    def _check_and_reserve(self, session: Session, delivery: Delivery) -> str | None:
        """``None`` once approved, else the suppression reason (recorded)."""
        reason = self._refusal(session, delivery)
        if reason is None:
            reason = self._reserve(session, delivery)
        if reason is not None:
            delivery.suppressed_reason = reason
        session.commit()
        return reason

    def _refusal(self, session: Session, delivery: Delivery) -> str | None:
        now = self.clock()
        # the lock serialises one person's decisions across workers (PostgreSQL)
        install = session.get(Install, delivery.install_id, with_for_update=True)
        if install is None or install.revoked_at is not None:
            return "no_consent"
        key = (delivery.tenant_id, delivery.campaign_id)
        campaign = session.get(Campaign, key)
        offer = session.get(Offer, (delivery.tenant_id, delivery.offer_id))
        store = session.get(Store, delivery.store_id)
        if campaign is None or offer is None or store is None:
            return "offer_unknown"
        if not channels_of(session, install.id):
            return "no_channel"
        person = PersonState(
            consents=active_purposes(session, install.id),
            timezone=install.timezone,
            quiet_hours=tuple(TimeWindow.model_validate(w) for w in install.quiet_hours),
            sent_today=self._approved_since(
                session, install, campaign, _local_midnight(install, now)
            ),
            sent_lifetime=self._approved_since(session, install, campaign, None),
        )
        state = CampaignState(
            active=_running(campaign, datetime.fromtimestamp(now, ZoneInfo(store.timezone)).date()),
            redemptions_left=_left(campaign.budget_redemptions, campaign.spent_redemptions),
            cents_left=_left(campaign.budget_cents, campaign.spent_cents),
            offer_value_cents=offer.value_cents or 0,
        )
        expires = delivery.expires_at.timestamp() if delivery.expires_at else None
        verdict = final_check(OFFERS_PURPOSE, expires, state, person, self.caps, now)
        return verdict.reason

    @staticmethod
    def _approved_since(
        session: Session, install: Install, campaign: Campaign, since: datetime | None
    ) -> int:
        stmt = select(func.count()).where(
            Delivery.install_id == install.id,
            Delivery.campaign_id == campaign.id,
            Delivery.approved_at.is_not(None),
        )
        if since is not None:
            stmt = stmt.where(Delivery.approved_at >= since)
        return int(session.scalar(stmt) or 0)

    def _reserve(self, session: Session, delivery: Delivery) -> str | None:
        offer = session.get(Offer, (delivery.tenant_id, delivery.offer_id))
        assert offer is not None
        value = offer.value_cents or 0
        spent = session.execute(
            update(Campaign)
            .where(
                Campaign.tenant_id == delivery.tenant_id,
                Campaign.id == delivery.campaign_id,
                or_(
                    Campaign.budget_redemptions.is_(None),
                    Campaign.spent_redemptions < Campaign.budget_redemptions,
                ),
                or_(
                    Campaign.budget_cents.is_(None),
                    Campaign.spent_cents + value <= Campaign.budget_cents,
                ),
            )
            .values(
                spent_redemptions=Campaign.spent_redemptions + 1,
                spent_cents=Campaign.spent_cents + value,
            )
            .returning(Campaign.spent_redemptions)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        if spent is None:
            return "budget_spent"
        delivery.approved_at = _at(self.clock())
        delivery.value_cents = value
        if offer.coupon_codes:  # one code each while they last round, then round again
            delivery.coupon_code = offer.coupon_codes[(spent - 1) % len(offer.coupon_codes)]
        return None

    # ------------------------------------------------------------ 4. sent

    def _send(self, session: Session, delivery: Delivery) -> str:
        install = session.get(Install, delivery.install_id) if delivery.install_id else None
        offer = session.get(Offer, (delivery.tenant_id, delivery.offer_id))
        if install is None or offer is None or delivery.campaign_id is None:
            return self._give_back(
                session, delivery, "no_consent" if install is None else "offer_unknown"
            )
        push = OfferPush(
            delivery_id=delivery.id,
            campaign=delivery.campaign_id,
            offer=offer.id,
            title=offer.title,
            body=offer.body,
            deep_link=offer.deep_link,
            image_url=offer.image_url,
            coupon_code=delivery.coupon_code,
            expires_at=delivery.expires_at.timestamp() if delivery.expires_at else None,
            ts=self.clock(),
        )
        results = []
        for row in channels_of(session, install.id):
            result = self.push.send(PushChannel(row.kind, row.address, row.secret), push)  # type: ignore[arg-type]
            results.append(f"{row.kind}:{'ok' if result.accepted else result.detail}")
            if result.accepted and delivery.sent_at is None:
                delivery.sent_at = _at(self.clock())
        delivery.push_result = "; ".join(results)[:200]
        if delivery.sent_at is None:
            return self._give_back(session, delivery, "push_failed")
        session.commit()
        return "sent"

    def _give_back(self, session: Session, delivery: Delivery, reason: str) -> str:
        """An approved offer that cannot go out returns its budget."""
        session.execute(
            update(Campaign)
            .where(Campaign.tenant_id == delivery.tenant_id, Campaign.id == delivery.campaign_id)
            .values(
                spent_redemptions=Campaign.spent_redemptions - 1,
                spent_cents=Campaign.spent_cents - delivery.value_cents,
            )
            .execution_options(synchronize_session=False)
        )
        delivery.suppressed_reason = reason
        session.commit()
        return reason


def _left(budget: int | None, spent: int) -> int | None:
    return None if budget is None else budget - spent


def _running(campaign: Campaign, today: date) -> bool:
    return (
        campaign.status == "active"
        and (campaign.start_date is None or campaign.start_date <= today)
        and (campaign.end_date is None or today <= campaign.end_date)
    )


def _local_midnight(install: Install, now: float) -> datetime:
    local = datetime.fromtimestamp(now, ZoneInfo(install.timezone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
