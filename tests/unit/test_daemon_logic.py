"""The daemon's wiring without radio or broker: adverts → outbox rows, rulesets, metrics."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import generate_latest

from gateway.ble.decode import decode_ad
from gateway.ble.eid import eid_at
from gateway.contract import ResolvedEid, ResolveResponse, Ruleset, StockSnapshot, store_topic
from gateway.daemon import Gateway
from gateway.layout import parse_layout
from gateway.metrics import GatewayCollector, serve_metrics
from gateway.scanner import Advert
from gateway.settings import GatewaySettings
from gateway.sim.store import eid_advert
from tests.support.layouts import door_layout

KEY = bytes(range(16))
LAYOUT = door_layout()


def ruleset(version: int, rules: list[dict[str, object]]) -> Ruleset:
    return Ruleset.model_validate(
        {
            "store": "demo-store",
            "version": version,
            "compiled_at": "2026-01-01T00:00:00Z",
            "timezone": "Europe/Berlin",
            "rules": rules,
        }
    )


def stock(levels: dict[str, int]) -> StockSnapshot:
    return StockSnapshot(store="demo-store", ts=0.0, in_stock=levels)


WELCOME: dict[str, object] = {
    "id": "w",
    "campaign": "c",
    "offer": "o",
    "trigger": {"type": "enter", "zones": ["entrance"]},
}


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    settings = GatewaySettings(
        store="demo-store", gateway="gw-1", layout=tmp_path / "unused.toml", data_dir=tmp_path
    )
    return Gateway(settings, parse_layout(LAYOUT))


def advert(ts: float, rssi: int = -55) -> Advert:
    return Advert(0.0, ts, "AA:BB:CC:DD:EE:FF", rssi, decode_ad(eid_advert(eid_at(KEY, 10, ts))))


def test_unresolved_eid_waits_for_the_resolver_then_events_are_queued(gateway: Gateway) -> None:
    now = time.time()
    gateway.on_advert(advert(now))
    assert len(gateway.outbox) == 0
    pending = gateway.core.eids.take_pending()
    assert pending == [eid_at(KEY, 10, now).hex()]
    gateway.on_message(
        "t",
        ResolveResponse(
            request_id="req-00000001",
            store="demo-store",
            ts=now,
            resolved=[ResolvedEid(eid=pending[0], token="tok-a", valid_until=now + 600)],
        ),
    )
    gateway.on_advert(advert(now + 0.5))
    rows = gateway.outbox.pending(now)
    assert [json.loads(r.payload)["kind"] for r in rows] == ["presence"]  # no ruleset yet
    assert json.loads(rows[0].payload)["token"] == "tok-a"
    assert "AA:BB" not in rows[0].payload.decode()


def test_ruleset_is_applied_cached_and_a_bad_one_refused(gateway: Gateway, tmp_path: Path) -> None:
    gateway.on_message("t", ruleset(1, [WELCOME]))
    assert gateway.engine is not None
    assert (tmp_path / "ruleset.json").exists()
    gateway.on_message("t", ruleset(2, [{"id": "bad", "trigger": {"type": "dwell"}}]))
    assert gateway.rejected_rulesets == 1
    assert gateway.engine.ruleset.version == 1  # the previous one stays
    reborn = Gateway(gateway.settings, gateway.layout)  # a reboot without uplink
    assert reborn.engine is not None and reborn.engine.ruleset.version == 1


def test_an_older_ruleset_never_replaces_a_newer_one(gateway: Gateway) -> None:
    gateway.on_message("t", ruleset(3, [WELCOME]))
    gateway.on_message("t", ruleset(2, []))  # published late by another API process
    assert gateway.engine is not None and gateway.engine.ruleset.version == 3
    assert gateway.engine.ruleset.rules[0].id == "w"
    assert gateway.stale_rulesets == 1
    gateway.on_message("t", ruleset(3, []))  # the same version again: a republish
    assert gateway.engine.ruleset.version == 3 and gateway.engine.ruleset.rules == []


def test_a_dwell_rule_longer_than_the_store_tracks_is_named_in_the_log(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    longest = max(gateway.core.tracker.params.dwell_thresholds_s)
    too_long: dict[str, object] = {
        "id": "linger",
        "campaign": "c",
        "offer": "o",
        "trigger": {"type": "dwell", "zones": ["entrance"], "dwell_s": longest + 1},
    }
    with caplog.at_level(logging.WARNING, logger="gateway.daemon"):
        gateway.on_message("t", ruleset(1, [WELCOME, too_long]))
    assert gateway.engine is not None and gateway.engine.unreachable == ("linger",)
    assert "rule linger waits for a dwell longer" in caplog.text


def test_a_ruleset_for_another_store_is_refused_and_counted(gateway: Gateway) -> None:
    gateway.on_message("t", ruleset(1, [WELCOME]))
    other = ruleset(2, []).model_copy(update={"store": "other-store"})
    gateway.on_message("t", other)
    assert gateway.engine is not None and gateway.engine.ruleset.version == 1
    assert gateway.rejected_rulesets == 1


def test_a_stale_ruleset_is_reported_once_an_hour_not_every_second(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1_790_000_000.0]
    gateway.wall_clock = lambda: now[0]
    gateway.monotonic_clock = lambda: now[0] - 1_790_000_000.0
    gateway.on_message("t", ruleset(1, [WELCOME]))
    stale = gateway.settings.ruleset_stale_s
    with caplog.at_level(logging.WARNING, logger="gateway.daemon"):
        for second in range(120):  # two minutes of housekeeping once the ruleset is stale
            now[0] = 1_790_000_000.0 + stale + 1 + second
            gateway.housekeeping()
        assert caplog.text.count("is the cloud reachable") == 1
        now[0] += 3600
        gateway.housekeeping()
    assert caplog.text.count("is the cloud reachable") == 2


def test_a_withdrawn_ruleset_and_stock_leave_no_rules(gateway: Gateway, tmp_path: Path) -> None:
    gateway.on_message(store_topic("demo-store", "ruleset"), ruleset(7, [WELCOME]))
    gateway.on_message(store_topic("demo-store", "stock"), stock({"LATTE": 3}))
    gateway.on_message(store_topic("demo-store", "ruleset"), None)  # the store was deleted
    gateway.on_message(store_topic("demo-store", "stock"), None)
    assert gateway.engine is None and gateway.stock is None
    assert not (tmp_path / "ruleset.json").exists()  # a reboot does not bring it back
    # a store created again under the same id starts its versions at 1
    gateway.on_message(store_topic("demo-store", "ruleset"), ruleset(1, [WELCOME]))
    assert gateway.engine is not None and gateway.engine.ruleset.version == 1


def test_enter_with_a_ruleset_queues_presence_and_offer(gateway: Gateway) -> None:
    now = time.time()
    gateway.on_message("t", ruleset(1, [WELCOME]))
    eid = eid_at(KEY, 10, now).hex()
    gateway.on_message(
        "t",
        ResolveResponse(
            request_id="req-00000001",
            store="demo-store",
            ts=now,
            resolved=[ResolvedEid(eid=eid, token="tok-a", valid_until=now + 600)],
        ),
    )
    gateway.on_advert(advert(now))
    kinds = [json.loads(r.payload)["kind"] for r in gateway.outbox.pending(now)]
    assert kinds == ["presence", "offer_decision"]
    text = generate_latest(serve_metrics(GatewayCollector(gateway.metric_sources), 0)).decode()
    assert 'nahfeld_presence_events_total{type="enter"} 1.0' in text
    assert "nahfeld_outbox_depth 2.0" in text
    assert 'nahfeld_sightings_total{kind="app"} 1.0' in text


def test_opt_out_revokes_tokens_at_once(gateway: Gateway) -> None:
    now = time.time()
    eid = eid_at(KEY, 10, now).hex()
    resolved = [ResolvedEid(eid=eid, token="tok-a", valid_until=now + 600)]
    gateway.on_message(
        "t",
        ResolveResponse(request_id="req-00000001", store="demo-store", ts=now, resolved=resolved),
    )
    gateway.on_message(
        "t",
        ResolveResponse(
            request_id="req-00000002",
            store="demo-store",
            ts=now,
            resolved=[],
            revoked_tokens=["tok-a"],
        ),
    )
    gateway.on_advert(advert(now))
    assert len(gateway.outbox) == 0


BEACON_LAYOUT = (
    LAYOUT
    + """
[[beacons]]
id = "door"
zone = "entrance"
ibeacon = { uuid = "f7826da6-4fa2-4e98-8024-bc5b71e0893e", major = 1, minor = 2 }

[[beacons]]
id = "shelf"
ibeacon = { uuid = "f7826da6-4fa2-4e98-8024-bc5b71e0893e", major = 1, minor = 3 }
"""
)


def test_fleet_health_reads_battery_from_tlm_and_flags_missing(tmp_path: Path) -> None:
    from gateway.sim.store import ibeacon_advert, tlm_advert

    settings = GatewaySettings(
        store="demo-store", gateway="gw-1", layout=tmp_path / "unused.toml", data_dir=tmp_path
    )
    gateway = Gateway(settings, parse_layout(BEACON_LAYOUT))
    uuid = bytes.fromhex("f7826da64fa24e988024bc5b71e0893e")
    now = time.time()
    door = "C0:FF:EE:00:00:01"
    gateway.on_advert(Advert(0.0, now, door, -60, decode_ad(ibeacon_advert(uuid, 1, 2))))
    gateway.on_advert(Advert(0.0, now, door, -60, decode_ad(tlm_advert(2400, 21.0, 10, 5.0))))
    report = gateway.fleet_report(now + 1)
    health = {b.beacon: b for b in report.beacons}
    assert health["door"].status == "low_battery"
    assert health["door"].battery_mv == 2400
    assert health["shelf"].status == "missing"
    assert door not in report.model_dump_json()


def enter_ids(messages: list[dict[str, object]]) -> set[object]:
    return {m["event_id"] for m in messages if m.get("type") == "enter"}


def test_a_wall_clock_step_closes_presences_and_caps_still_hold(gateway: Gateway) -> None:
    """NTP steps the clock two hours ahead, then back: open presences are closed at the
    old time and start over; the daily cap still allows one offer; nothing is lost."""
    start = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    wall, mono = [start], [1000.0]
    gateway.wall_clock, gateway.monotonic_clock = (lambda: wall[0]), (lambda: mono[0])
    capped = {**WELCOME, "caps": {"per_user_per_day": 1}}
    gateway.on_message("t", ruleset(1, [capped]))

    def walk(seconds: int) -> None:
        """The phone stays at the door, its EID resolved; housekeeping every second."""
        for _ in range(seconds):
            eid = eid_at(KEY, 10, wall[0]).hex()
            resolved = [ResolvedEid(eid=eid, token="tok-a", valid_until=wall[0] + 600)]
            gateway.on_message(
                "t",
                ResolveResponse(
                    request_id="req-00000001", store="demo-store", ts=wall[0], resolved=resolved
                ),
            )
            gateway.on_advert(advert(wall[0]))
            gateway.housekeeping()
            wall[0] += 1
            mono[0] += 1

    walk(5)
    wall[0] += 7200  # NTP: two hours ahead
    walk(5)
    wall[0] -= 7200  # and back
    walk(5)
    assert gateway.clock_steps.steps == 2
    messages = [json.loads(r.payload) for r in gateway.outbox.pending(wall[0], 1000)]
    presence = [m["type"] for m in messages if m["kind"] == "presence"]
    assert presence == ["enter", "exit", "enter", "exit", "enter"]
    decisions = [m for m in messages if m["kind"] == "offer_decision"]
    sent = [m for m in decisions if m.get("offer") and m.get("suppressed") is None]
    assert len(sent) == 1  # the cap: one a day, across both steps
    entered = [m for m in decisions if m["trigger_event_id"] in enter_ids(messages)]
    assert [m.get("suppressed") for m in entered] == [None, "daily_cap", "daily_cap"]
    assert len({m["event_id"] for m in messages}) == len(messages)  # each event once
