"""The offer engine: presence event → at most one offer, or the reason for none.

Pure like the rest of the core: the decision is a function of the ruleset,
the engine's own cap state, the event, what is known about the user, the
stock snapshot and the event's time. Rules are tried highest priority
first, ties broken by rule id, so the same input always picks the same
offer. A rule is skipped for the first reason that applies; when no rule
sends, the decision carries the reason of the best rule that matched the
trigger.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from ..presence.events import PresenceEvent
from ..presence.zones import TrackerParams
from .rules import Rule, RulesetBody

NO_MATCHING_RULE = "no_matching_rule"
DEFAULT_DWELL_THRESHOLDS_S = TrackerParams().dwell_thresholds_s


@dataclass(frozen=True, slots=True)
class UserContext:
    """What the resolver told the gateway about a token."""

    token: str
    segments: frozenset[str] = frozenset()
    consents: frozenset[str] = frozenset({"marketing"})


@dataclass(frozen=True, slots=True)
class OfferDecision:
    event: PresenceEvent
    rule: Rule | None
    suppressed: str | None
    expires_at: float | None = None

    @property
    def sends(self) -> bool:
        return self.rule is not None


@dataclass(slots=True)
class CapState:
    """Sends so far, for caps and cool-downs; grows with sends, not with adverts."""

    per_day: dict[tuple[str, str, date], int] = field(default_factory=lambda: defaultdict(int))
    lifetime: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    sent_at: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))


def _trigger_matches(rule: Rule, dwell_at: float | None, event: PresenceEvent) -> bool:
    trigger = rule.trigger
    if trigger.type != event.type or event.zone not in trigger.zones:
        return False
    if trigger.type == "dwell":
        return event.dwell_s is not None and event.dwell_s == dwell_at
    return True


def dwell_event_for(dwell_s: float, thresholds_s: Sequence[float]) -> float | None:
    """The dwell event a rule of ``dwell_s`` fires on: the tracker reports dwell only at
    the store's thresholds, so the first one at or past ``dwell_s`` (once per visit);
    ``None`` when the visit never gets that long in the tracker's eyes."""
    return min((t for t in thresholds_s if t >= dwell_s), default=None)


class OfferEngine:
    """Decides per presence event; ``apply`` a new ruleset atomically at any time.

    ``dwell_thresholds_s`` are the store's (the layout's): the only dwell times the
    tracker reports."""

    __slots__ = ("_ordered", "_tz", "caps", "dwell_thresholds_s", "ruleset", "unreachable")

    def __init__(
        self,
        ruleset: RulesetBody,
        caps: CapState | None = None,
        dwell_thresholds_s: Sequence[float] = DEFAULT_DWELL_THRESHOLDS_S,
    ) -> None:
        self.caps = caps or CapState()
        self.ruleset = ruleset
        self.dwell_thresholds_s = tuple(dwell_thresholds_s)
        self._ordered: tuple[tuple[Rule, float | None], ...] = ()
        #: dwell rules that can never fire here (longer than the longest threshold)
        self.unreachable: tuple[str, ...] = ()
        self._tz = ZoneInfo(ruleset.timezone)
        self.apply(ruleset)

    def apply(self, ruleset: RulesetBody) -> None:
        """Swap in a validated ruleset; cap state carries over."""
        ordered = sorted(ruleset.rules, key=lambda r: (-r.priority, r.id))
        self._ordered = tuple(
            (
                rule,
                dwell_event_for(rule.trigger.dwell_s, self.dwell_thresholds_s)
                if rule.trigger.dwell_s is not None
                else None,
            )
            for rule in ordered
        )
        self.unreachable = tuple(
            rule.id
            for rule, dwell_at in self._ordered
            if rule.trigger.type == "dwell" and dwell_at is None
        )
        self._tz = ZoneInfo(ruleset.timezone)
        self.ruleset = ruleset

    def decide(
        self,
        event: PresenceEvent,
        user: UserContext,
        stock: Mapping[str, int] | None = None,
    ) -> OfferDecision:
        """Pick the offer for ``event`` and record it against the caps, or say why not."""
        local = datetime.fromtimestamp(event.ts, UTC).astimezone(self._tz)
        first_reason: str | None = None
        for rule, dwell_at in self._ordered:
            if not _trigger_matches(rule, dwell_at, event):
                continue
            reason = self._suppression(rule, event, user, stock, local)
            if reason is None:
                self._record(rule, user.token, event, local.date())
                return OfferDecision(event, rule, None, event.ts + rule.ttl_s)
            first_reason = first_reason or reason
        return OfferDecision(event, None, first_reason or NO_MATCHING_RULE)

    def _suppression(
        self,
        rule: Rule,
        event: PresenceEvent,
        user: UserContext,
        stock: Mapping[str, int] | None,
        local: datetime,
    ) -> str | None:
        audience = rule.audience
        if audience.consent_purpose not in user.consents:
            return "no_consent"
        if audience.segments and user.segments.isdisjoint(audience.segments):
            return "audience"
        schedule_reason = rule.schedule.suppression(local)
        if schedule_reason is not None:
            return schedule_reason
        if rule.sku is not None and (stock is None or stock.get(rule.sku, 0) <= 0):
            return "out_of_stock"
        caps = rule.caps
        token = user.token
        if caps.per_user_lifetime is not None and (
            self.caps.lifetime[(token, rule.campaign)] >= caps.per_user_lifetime
        ):
            return "lifetime_cap"
        if caps.per_user_per_day is not None and (
            self.caps.per_day[(token, rule.campaign, local.date())] >= caps.per_user_per_day
        ):
            return "daily_cap"
        if caps.cooldown_s > 0:
            sent = self.caps.sent_at[(token, event.zone)]
            if any(abs(event.ts - t) < caps.cooldown_s for t in sent):
                return "cooldown"
        return None

    def _record(self, rule: Rule, token: str, event: PresenceEvent, day: date) -> None:
        self.caps.lifetime[(token, rule.campaign)] += 1
        self.caps.per_day[(token, rule.campaign, day)] += 1
        self.caps.sent_at[(token, event.zone)].append(event.ts)
