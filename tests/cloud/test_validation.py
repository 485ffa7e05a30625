"""A bad body is a 422 that names the field and says why."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cloud.conftest import STORE, Api, rule_body


def _problems(response: Any) -> list[tuple[list[Any], str]]:
    assert response.status_code == 422, response.text
    return [(problem["loc"], problem["msg"]) for problem in response.json()["detail"]]


def test_dwell_trigger_without_seconds(api: Api, store: dict[str, Any]) -> None:
    body = rule_body(trigger={"type": "dwell", "zones": ["coffee"]})
    [(loc, msg)] = _problems(api.post("marketer", "/v1/rules", json=body))
    assert loc == ["body", "trigger"]
    assert "dwell_s" in msg


@pytest.mark.parametrize("cap", ["per_user_per_day", "per_user_lifetime"])
def test_a_cap_of_zero(api: Api, store: dict[str, Any], cap: str) -> None:
    body = rule_body(caps={cap: 0})
    [(loc, msg)] = _problems(api.post("marketer", "/v1/rules", json=body))
    assert loc == ["body", "caps", cap]
    assert "greater than or equal to 1" in msg


def test_a_rule_schedule_ending_before_it_starts(api: Api, store: dict[str, Any]) -> None:
    body = rule_body(schedule={"start_date": "2026-05-10", "end_date": "2026-05-01"})
    [(loc, msg)] = _problems(api.post("marketer", "/v1/rules", json=body))
    assert loc == ["body", "schedule"]
    assert "before start_date" in msg


def test_a_campaign_schedule_ending_before_it_starts(api: Api, store: dict[str, Any]) -> None:
    body = {"id": "late", "schedule": {"start_date": "2026-05-10", "end_date": "2026-05-01"}}
    [(loc, msg)] = _problems(api.post("marketer", "/v1/campaigns", json=body))
    assert loc == ["body", "schedule"]
    assert "before start_date" in msg


def test_a_zone_of_another_store(api: Api, store: dict[str, Any]) -> None:
    other = {**STORE, "id": "hamburg"}
    api.ok(api.post("admin", "/v1/stores", json=other), 201)
    api.ok(api.post("admin", "/v1/stores/hamburg/zones", json={"id": "bakery"}), 201)
    body = rule_body(trigger={"type": "enter", "zones": ["coffee", "bakery"]})
    [(loc, msg)] = _problems(api.post("marketer", "/v1/rules", json=body))
    assert loc == ["body", "trigger", "zones", 1]
    assert "'bakery' is not a zone of store 'berlin-mitte'" in msg
    assert api.ok(api.get("viewer", "/v1/rules"))["total"] == 0


def test_unknown_segment_and_offer_are_named(api: Api, store: dict[str, Any]) -> None:
    body = rule_body(offer="nope", audience={"segments": ["regulars", "ghosts"]})
    problems = dict(
        (tuple(loc), msg) for loc, msg in _problems(api.post("marketer", "/v1/rules", json=body))
    )
    assert problems[("body", "offer")] == "no offer 'nope'"
    assert problems[("body", "audience", "segments", 1)] == "no segment 'ghosts'"


@pytest.mark.parametrize(
    ("body", "loc", "reason"),
    [
        ({**STORE, "timezone": "Mars/Olympus"}, ["body", "timezone"], "unknown IANA timezone"),
        ({**STORE, "id": "has space"}, ["body", "id"], "pattern"),
        (
            {**STORE, "opening_hours": {"mon": [{"start": "25:00", "end": "20:00"}]}},
            ["body", "opening_hours", "mon", 0, "start"],
            "time",
        ),
        (
            {**STORE, "opening_hours": {"someday": []}},
            ["body", "opening_hours", "someday"],
            "Extra",
        ),
    ],
)
def test_store_fields(api: Api, body: dict[str, Any], loc: list[Any], reason: str) -> None:
    problems = _problems(api.post("admin", "/v1/stores", json=body))
    assert any(p_loc == loc and reason in msg for p_loc, msg in problems), problems


def test_offer_fields(api: Api, store: dict[str, Any]) -> None:
    body = {
        "id": "bad",
        "campaign": "spring",
        "title": "",
        "image_url": "not a url",
        "coupon_codes": ["A", "A"],
    }
    locs = {tuple(loc) for loc, _ in _problems(api.post("marketer", "/v1/offers", json=body))}
    assert {("body", "title"), ("body", "image_url")} <= locs
    unknown = {"id": "orphan", "campaign": "nope", "title": "x"}
    [(loc, msg)] = _problems(api.post("marketer", "/v1/offers", json=unknown))
    assert loc == ["body", "campaign"] and "nope" in msg


def test_budget_must_be_positive(api: Api) -> None:
    body = {"id": "cheap", "budget": {"euro_cents": 0, "redemptions": -1}}
    locs = {tuple(loc) for loc, _ in _problems(api.post("marketer", "/v1/campaigns", json=body))}
    assert locs == {("body", "budget", "euro_cents"), ("body", "budget", "redemptions")}


def test_pagination_limits_are_validated(api: Api) -> None:
    [(loc, _)] = _problems(api.get("viewer", "/v1/campaigns", params={"limit": 0}))
    assert loc == ["query", "limit"]
    [(loc, _)] = _problems(api.get("viewer", "/v1/campaigns", params={"offset": -1}))
    assert loc == ["query", "offset"]


def test_numbers_beyond_what_the_database_holds(api: Api) -> None:
    body = {"id": "huge", "budget": {"euro_cents": 2**63, "redemptions": 2**31}}
    locs = {tuple(loc) for loc, _ in _problems(api.post("marketer", "/v1/campaigns", json=body))}
    assert locs == {("body", "budget", "euro_cents"), ("body", "budget", "redemptions")}
    [(loc, _)] = _problems(api.get("viewer", "/v1/campaigns", params={"offset": 2**63}))
    assert loc == ["query", "offset"]


def test_nul_characters_are_refused_wherever_they_hide(api: Api, store: dict[str, Any]) -> None:
    [(loc, msg)] = _problems(
        api.post("admin", "/v1/api-keys", json={"role": "viewer", "name": "a\x00"})
    )
    assert loc == ["body"] and "U+0000" in msg and "body.name" in msg
    nested = rule_body(trigger={"type": "enter", "zones": ["coffee\x00"]})
    [(loc, msg)] = _problems(api.post("marketer", "/v1/rules", json=nested))
    assert "body.trigger.zones.0" in msg
