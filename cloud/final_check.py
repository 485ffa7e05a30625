"""The cloud's last word before an offer is pushed: pure, like the gateway's engine.

A gateway decides from what it knows about one store; the cloud sees every
store and the person's current consent, so it checks again: the offer has
not expired, consent to the rule's purpose still stands (it may have been
withdrawn a second ago), the campaign is active and has budget left, the
person's caps across all stores, and the quiet hours in the person's own
timezone. The first failing check names the suppression reason recorded in the
funnel. The budget itself is reserved atomically in the database after this
says "send"; this only refuses early what is already spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.offers.rules import TimeWindow


@dataclass(frozen=True, slots=True)
class CampaignState:
    active: bool
    redemptions_left: int | None  # None: no redemption budget
    cents_left: int | None  # None: no money budget
    offer_value_cents: int = 0


@dataclass(frozen=True, slots=True)
class PersonState:
    """One install's standing, across all stores, at the moment of the check."""

    consents: frozenset[str]
    timezone: str
    quiet_hours: tuple[TimeWindow, ...] = ()
    sent_today: int = 0  # this campaign, every store, the person's local day
    sent_lifetime: int = 0


@dataclass(frozen=True, slots=True)
class GlobalCaps:
    per_person_per_day: int | None = None
    per_person_lifetime: int | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    send: bool
    reason: str | None = None  # why not: a stable label, counted in the funnel


SEND = Verdict(True)


def final_check(
    purpose: str,
    expires_at: float | None,
    campaign: CampaignState,
    person: PersonState,
    caps: GlobalCaps,
    now: float,
) -> Verdict:
    """Send, or the first reason not to."""
    if expires_at is not None and now >= expires_at:
        return Verdict(False, "expired")
    if purpose not in person.consents:
        return Verdict(False, "no_consent")
    if not campaign.active:
        return Verdict(False, "campaign_inactive")
    if campaign.redemptions_left is not None and campaign.redemptions_left <= 0:
        return Verdict(False, "budget_spent")
    if campaign.cents_left is not None and campaign.cents_left < campaign.offer_value_cents:
        return Verdict(False, "budget_spent")
    if caps.per_person_per_day is not None and person.sent_today >= caps.per_person_per_day:
        return Verdict(False, "global_daily_cap")
    if caps.per_person_lifetime is not None and person.sent_lifetime >= caps.per_person_lifetime:
        return Verdict(False, "global_lifetime_cap")
    local = datetime.fromtimestamp(now, ZoneInfo(person.timezone)).time()
    if any(window.contains(local) for window in person.quiet_hours):
        return Verdict(False, "quiet_hours")
    return SEND
