"""Offer engine: triggers, audience, schedule, caps, priority, stock; caps hold under any order."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.offers.engine import OfferEngine, UserContext
from gateway.offers.rules import RulesetBody
from gateway.presence.events import EventType, PresenceEvent

BERLIN = ZoneInfo("Europe/Berlin")
# Wednesday 2026-01-07 12:00 in Berlin
NOON = datetime(2026, 1, 7, 12, 0, tzinfo=BERLIN).timestamp()
ALICE = UserContext("tok-alice", frozenset({"vip"}))


def ruleset(*rules: dict[str, Any]) -> RulesetBody:
    return RulesetBody.model_validate(
        {"store": "demo-store", "version": 1, "timezone": "Europe/Berlin", "rules": list(rules)}
    )


def rule(rule_id: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": rule_id,
        "campaign": "c1",
        "offer": f"offer-{rule_id}",
        "trigger": {"type": "enter", "zones": ["entrance"]},
    }
    base.update(extra)
    return base


def event(
    ts: float = NOON,
    kind: EventType = "enter",
    zone: str = "entrance",
    device: str = "tok-alice",
    dwell_s: float | None = None,
) -> PresenceEvent:
    return PresenceEvent(ts, kind, "demo-store", zone, device, "gw-1", dwell_s)


def test_enter_rule_sends_with_expiry() -> None:
    decision = OfferEngine(ruleset(rule("r1", ttl_s=120))).decide(event(), ALICE)
    assert decision.rule is not None
    assert decision.rule.offer == "offer-r1"
    assert decision.suppressed is None
    assert decision.expires_at == NOON + 120


def test_a_dwell_between_thresholds_fires_on_the_next_one_once() -> None:
    """The tracker reports dwell only at the store's thresholds (30, 120, 300 s): a rule
    for 20 s fires on the 30-s report, not again on the later ones."""
    dwell = {"type": "dwell", "zones": ["entrance"], "dwell_s": 20}
    engine = OfferEngine(ruleset(rule("r1", trigger=dwell)), dwell_thresholds_s=(30, 120, 300))
    assert engine.decide(event(kind="dwell", dwell_s=30), ALICE).sends
    later = OfferEngine(ruleset(rule("r1", trigger=dwell)), dwell_thresholds_s=(30, 120, 300))
    assert later.decide(event(kind="dwell", dwell_s=120), ALICE).suppressed == "no_matching_rule"
    assert later.unreachable == ()


def test_a_dwell_past_the_longest_threshold_is_reported_unreachable() -> None:
    long = {"type": "dwell", "zones": ["entrance"], "dwell_s": 600}
    engine = OfferEngine(ruleset(rule("r1", trigger=long)), dwell_thresholds_s=(30, 120, 300))
    assert engine.unreachable == ("r1",)
    assert engine.decide(event(kind="dwell", dwell_s=300), ALICE).suppressed == "no_matching_rule"


def test_other_zone_or_type_does_not_match() -> None:
    engine = OfferEngine(ruleset(rule("r1")))
    assert engine.decide(event(zone="shoes"), ALICE).suppressed == "no_matching_rule"
    assert engine.decide(event(kind="exit"), ALICE).suppressed == "no_matching_rule"


def test_dwell_trigger_matches_its_threshold_only() -> None:
    engine = OfferEngine(
        ruleset(rule("r1", trigger={"type": "dwell", "zones": ["entrance"], "dwell_s": 120}))
    )
    assert engine.decide(event(kind="dwell", dwell_s=30), ALICE).suppressed == "no_matching_rule"
    assert engine.decide(event(kind="dwell", dwell_s=120), ALICE).sends


def test_priority_then_rule_id_decides() -> None:
    engine = OfferEngine(
        ruleset(rule("b", priority=5), rule("a", priority=5), rule("z", priority=1))
    )
    first = engine.decide(event(), ALICE)
    assert first.rule is not None and first.rule.id == "a"


def test_audience_and_consent() -> None:
    engine = OfferEngine(ruleset(rule("r1", audience={"segments": ["gold"]})))
    assert engine.decide(event(), ALICE).suppressed == "audience"
    no_consent = UserContext("tok-bob", frozenset({"gold"}), consents=frozenset())
    assert engine.decide(event(device="tok-bob"), no_consent).suppressed == "no_consent"
    gold = UserContext("tok-carol", frozenset({"gold"}))
    assert engine.decide(event(device="tok-carol"), gold).sends


def test_schedule_in_store_timezone() -> None:
    hours = {"hours": [{"start": "09:00", "end": "11:00"}]}
    engine = OfferEngine(ruleset(rule("r1", schedule=hours)))
    assert engine.decide(event(), ALICE).suppressed == "outside_schedule"  # noon in Berlin
    ten_berlin = datetime(2026, 1, 7, 10, 0, tzinfo=BERLIN).timestamp()
    assert engine.decide(event(ts=ten_berlin), ALICE).sends
    weekend = OfferEngine(ruleset(rule("r1", schedule={"weekdays": [5, 6]})))
    assert weekend.decide(event(), ALICE).suppressed == "outside_schedule"


def test_quiet_hours_wrap_midnight_and_dates() -> None:
    quiet = {"quiet_hours": [{"start": "22:00", "end": "07:00"}]}
    engine = OfferEngine(ruleset(rule("r1", schedule=quiet)))
    late = datetime(2026, 1, 7, 23, 30, tzinfo=BERLIN).timestamp()
    early = datetime(2026, 1, 8, 6, 59, tzinfo=BERLIN).timestamp()
    assert engine.decide(event(ts=late), ALICE).suppressed == "quiet_hours"
    assert engine.decide(event(ts=early), ALICE).suppressed == "quiet_hours"
    dated = OfferEngine(ruleset(rule("r1", schedule={"start_date": "2026-02-01"})))
    assert dated.decide(event(), ALICE).suppressed == "outside_dates"


def test_stock_condition() -> None:
    engine = OfferEngine(ruleset(rule("r1", sku="SKU-1")))
    assert engine.decide(event(), ALICE, stock=None).suppressed == "out_of_stock"
    assert engine.decide(event(), ALICE, stock={"SKU-1": 0}).suppressed == "out_of_stock"
    assert engine.decide(event(), ALICE, stock={"SKU-1": 3}).sends


def test_caps_and_cooldown() -> None:
    engine = OfferEngine(ruleset(rule("r1", caps={"per_user_per_day": 2, "cooldown_s": 600})))
    assert engine.decide(event(NOON), ALICE).sends
    assert engine.decide(event(NOON + 60), ALICE).suppressed == "cooldown"
    assert engine.decide(event(NOON + 601), ALICE).sends
    assert engine.decide(event(NOON + 1300), ALICE).suppressed == "daily_cap"
    next_day = datetime(2026, 1, 8, 12, 0, tzinfo=BERLIN).timestamp()
    assert engine.decide(event(next_day), ALICE).sends
    lifetime = OfferEngine(ruleset(rule("r1", caps={"per_user_lifetime": 1})))
    assert lifetime.decide(event(NOON), ALICE).sends
    assert lifetime.decide(event(next_day), ALICE).suppressed == "lifetime_cap"


def test_lower_priority_rule_sends_when_the_best_is_capped() -> None:
    engine = OfferEngine(
        ruleset(
            rule("top", priority=9, caps={"per_user_lifetime": 1}),
            rule("low", campaign="c2", priority=1),
        )
    )
    picks = [engine.decide(event(NOON + n * 10), ALICE).rule for n in range(2)]
    assert [r.id if r else None for r in picks] == ["top", "low"]


def test_new_ruleset_applies_and_keeps_caps() -> None:
    engine = OfferEngine(ruleset(rule("r1", caps={"per_user_lifetime": 1})))
    assert engine.decide(event(), ALICE).sends
    engine.apply(ruleset(rule("r1", caps={"per_user_lifetime": 1}, priority=2)))
    assert engine.decide(event(NOON + 5), ALICE).suppressed == "lifetime_cap"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"trigger": {"type": "dwell", "zones": ["z"]}}, "needs dwell_s"),
        ({"trigger": {"type": "enter", "zones": []}}, "at least 1 item"),
        ({"caps": {"per_user_per_day": 0}}, "greater than or equal to 1"),
        ({"schedule": {"start_date": "2026-02-01", "end_date": "2026-01-01"}}, "before start_date"),
        ({"bogus": 1}, "Extra inputs"),
    ],
)
def test_invalid_rules_are_refused_with_reason(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ruleset(rule("r1", **bad))


EVENT_STRATEGY = st.tuples(
    st.integers(0, 3 * 86_400),  # seconds after NOON, any order
    st.sampled_from(["tok-a", "tok-b"]),
    st.sampled_from(["entrance", "shoes"]),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(EVENT_STRATEGY, max_size=60),
    st.integers(1, 3),
    st.integers(1, 5),
    st.integers(0, 7200),
)
def test_no_decision_ever_exceeds_a_cap(
    events: list[tuple[int, str, str]], per_day: int, lifetime: int, cooldown: int
) -> None:
    caps = {"per_user_per_day": per_day, "per_user_lifetime": lifetime, "cooldown_s": cooldown}
    engine = OfferEngine(
        ruleset(rule("r1", caps=caps, trigger={"type": "enter", "zones": ["entrance", "shoes"]}))
    )
    sent: list[tuple[float, str, str]] = []
    for offset, token, zone in events:
        decision = engine.decide(event(NOON + offset, zone=zone, device=token), UserContext(token))
        if decision.sends:
            sent.append((NOON + offset, token, zone))
    assert max(Counter(token for _, token, _ in sent).values(), default=0) <= lifetime
    days = Counter(
        (token, datetime.fromtimestamp(ts, UTC).astimezone(BERLIN).date()) for ts, token, _ in sent
    )
    assert max(days.values(), default=0) <= per_day
    for i, (ts_a, tok_a, zone_a) in enumerate(sent):
        for ts_b, tok_b, zone_b in sent[i + 1 :]:
            if (tok_a, zone_a) == (tok_b, zone_b):
                assert abs(ts_a - ts_b) >= cooldown
