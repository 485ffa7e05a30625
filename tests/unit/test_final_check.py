"""The cloud's final checks: each refusal names its reason, in the documented order."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from cloud.final_check import SEND, CampaignState, GlobalCaps, PersonState, final_check
from gateway.offers.rules import TimeWindow

NOON_BERLIN = datetime(2026, 11, 23, 11, 0, tzinfo=UTC).timestamp()  # 12:00 in Berlin
ACTIVE = CampaignState(active=True, redemptions_left=10, cents_left=1000, offer_value_cents=500)
PERSON = PersonState(consents=frozenset({"marketing"}), timezone="Europe/Berlin")
NO_CAPS = GlobalCaps()


def check(
    campaign: CampaignState = ACTIVE,
    person: PersonState = PERSON,
    caps: GlobalCaps = NO_CAPS,
    expires_at: float | None = None,
) -> str | None:
    verdict = final_check("marketing", expires_at, campaign, person, caps, NOON_BERLIN)
    return None if verdict.send else verdict.reason


def test_everything_in_order_sends() -> None:
    assert final_check("marketing", None, ACTIVE, PERSON, NO_CAPS, NOON_BERLIN) == SEND


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"expires_at": NOON_BERLIN}, "expired"),
        ({"person": PersonState(frozenset(), "Europe/Berlin")}, "no_consent"),
        ({"campaign": CampaignState(False, 10, 1000)}, "campaign_inactive"),
        ({"campaign": CampaignState(True, 0, 1000)}, "budget_spent"),
        ({"campaign": CampaignState(True, None, 499, offer_value_cents=500)}, "budget_spent"),
        (
            {
                "person": PersonState(frozenset({"marketing"}), "Europe/Berlin", sent_today=2),
                "caps": GlobalCaps(per_person_per_day=2),
            },
            "global_daily_cap",
        ),
        (
            {
                "person": PersonState(frozenset({"marketing"}), "Europe/Berlin", sent_lifetime=5),
                "caps": GlobalCaps(per_person_lifetime=5),
            },
            "global_lifetime_cap",
        ),
        (
            {
                "person": PersonState(
                    frozenset({"marketing"}),
                    "Europe/Berlin",
                    quiet_hours=(TimeWindow(start=time(11, 30), end=time(13, 0)),),
                )
            },
            "quiet_hours",
        ),
    ],
)
def test_each_refusal_names_its_reason(changes: dict[str, object], reason: str) -> None:
    assert check(**changes) == reason  # type: ignore[arg-type]


def test_quiet_hours_are_the_persons_local_time() -> None:
    lunch = (TimeWindow(start=time(11, 30), end=time(13, 0)),)
    in_berlin = PersonState(frozenset({"marketing"}), "Europe/Berlin", quiet_hours=lunch)
    in_new_york = PersonState(frozenset({"marketing"}), "America/New_York", quiet_hours=lunch)
    assert check(person=in_berlin) == "quiet_hours"
    assert check(person=in_new_york) is None  # 06:00 there


def test_withdrawn_consent_wins_over_everything_but_expiry() -> None:
    withdrawn = PersonState(frozenset({"analytics"}), "Europe/Berlin")
    assert check(person=withdrawn, campaign=CampaignState(False, 0, 0)) == "no_consent"
    assert check(person=withdrawn, expires_at=NOON_BERLIN - 1) == "expired"
