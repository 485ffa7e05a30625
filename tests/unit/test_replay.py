"""Replay: records through the core, bad lines reported and skipped, nothing private out."""

from __future__ import annotations

import io
import json

import pytest

from gateway.ble.eid import EidIdentity, eid_at
from gateway.layout import StoreLayout
from gateway.replay import RecordError, parse_record, replay
from gateway.sim.store import eid_advert, ibeacon_advert

KEY = bytes(range(16))
K = 8
T0 = 1_767_261_600.0


def phone_records(start: float, seconds: int, rssi: int, gateway: str = "gw-entrance") -> list[str]:
    lines = []
    for i in range(seconds):
        ts = start + i
        ad = eid_advert(eid_at(KEY, K, ts)).hex()
        lines.append(
            json.dumps(
                {
                    "ts": ts,
                    "gateway": gateway,
                    "rssi": rssi,
                    "ad": ad,
                    "address": "AA:BB:CC:DD:EE:FF",
                }
            )
        )
    return lines


def run(
    layout: StoreLayout, lines: list[str], identities: list[EidIdentity]
) -> tuple[list[dict[str, object]], str]:
    out, err = io.StringIO(), io.StringIO()
    replay(layout, lines, out, err, identities)
    return [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_opted_in_phone_enters_dwells_and_exits(demo_layout: StoreLayout) -> None:
    lines = phone_records(T0, 400, rssi=-60)  # ~1 m, crosses several EID windows (K=8)
    events, err = run(demo_layout, lines, [EidIdentity("tok-1", KEY, K)])
    assert err == ""
    assert [e["type"] for e in events] == ["enter", "dwell", "dwell", "dwell", "exit"]
    assert [e["dwell_s"] for e in events if e["type"] == "dwell"] == [30, 120, 300]
    assert {e["zone"] for e in events} == {"entrance"}
    assert {e["device"] for e in events} == {"tok-1"}
    for event in events:
        assert set(event) >= {"ts", "type", "zone", "device"}


def test_unknown_eid_phone_and_anonymous_traffic_leave_no_trace(demo_layout: StoreLayout) -> None:
    lines = phone_records(T0, 60, rssi=-55)
    anonymous = [
        json.dumps(
            {
                "ts": T0 + i,
                "gateway": "gw-entrance",
                "rssi": -50,
                "ad": "0201060aff4c0010050b1c8a1b2c",
                "address": "11:22:33:44:55:66",
            }
        )
        for i in range(60)
    ]
    out, err = io.StringIO(), io.StringIO()
    _, core = replay(demo_layout, lines + anonymous, out, err, identities=[])
    assert out.getvalue() == ""
    assert core.stats.unrecognised == 60
    assert core.stats.not_beacon == 60
    assert core.tracker.tracked == 0


def test_store_beacons_are_recognised_not_tracked(demo_layout: StoreLayout) -> None:
    uuid = bytes.fromhex("f7826da64fa24e988024bc5b71e0893e")
    lines = [
        json.dumps(
            {
                "ts": T0 + i,
                "gateway": "gw-entrance",
                "rssi": -50,
                "ad": ibeacon_advert(uuid, 100, 1).hex(),
            }
        )
        for i in range(30)
    ]
    out, err = io.StringIO(), io.StringIO()
    _, core = replay(demo_layout, lines, out, err)
    assert out.getvalue() == ""
    assert core.beacon_last_seen == {"door-left": T0 + 29}


def test_bad_lines_are_reported_with_line_number_and_skipped(demo_layout: StoreLayout) -> None:
    good = phone_records(T0, 60, rssi=-60)
    bad = [
        "{not json",
        "[1, 2]",
        json.dumps({"ts": "soon", "gateway": "g", "rssi": -60, "device": "d"}),
        json.dumps({"ts": T0, "gateway": "g", "rssi": -60}),
        json.dumps({"ts": T0, "gateway": "g", "rssi": 99, "device": "d"}),
        json.dumps({"ts": T0, "gateway": "g", "rssi": -60, "ad": "xyz"}),
    ]
    lines = good[:30] + bad + good[30:]
    events, err = run(demo_layout, lines, [EidIdentity("tok-1", KEY, K)])
    reported = err.splitlines()
    assert [line.split(":")[0] for line in reported] == [f"line {n}" for n in range(31, 37)]
    assert "not JSON" in reported[0]
    assert "field 'ts' must be" in reported[2]
    assert "exactly one of 'ad'" in reported[3]
    assert "'rssi' must be" in reported[4]
    assert "'ad' is not hex" in reported[5]
    assert [e["type"] for e in events] == ["enter", "dwell", "exit"]


def test_device_records_for_calibration_data(demo_layout: StoreLayout) -> None:
    lines = [
        json.dumps({"ts": T0 + i, "gateway": "gw-shoes", "rssi": -62, "device": "phone-A"})
        for i in range(40)
    ]
    events, _ = run(demo_layout, lines, [])
    assert [(e["type"], e["zone"], e["device"]) for e in events[:2]] == [
        ("enter", "shoes", "phone-A"),
        ("dwell", "shoes", "phone-A"),
    ]


def test_same_capture_same_events(demo_layout: StoreLayout) -> None:
    from tests.conftest import DEMO_STORE

    capture = (DEMO_STORE / "capture.jsonl").read_text().splitlines()
    ids = json.loads((DEMO_STORE / "identities.json").read_text())["identities"]
    identities = [
        EidIdentity(i["token"], bytes.fromhex(i["identity_key"]), i["exponent"]) for i in ids
    ]
    first, _ = run(demo_layout, capture, identities)
    second, _ = run(demo_layout, capture, identities)
    assert first == second
    assert {e["type"] for e in first} == {"enter", "dwell", "exit"}
    assert {str(e["device"]) for e in first} <= {i.token for i in identities}
    assert "address" not in json.dumps(first)


@pytest.mark.parametrize(
    "line",
    [
        '{"ts": NaN, "gateway": "g", "rssi": -1, "device": "d"}',
        '{"ts": -5, "gateway": "g", "rssi": -1, "device": "d"}',
        '{"ts": 1, "gateway": "", "rssi": -1, "device": "d"}',
        '{"ts": true, "gateway": "g", "rssi": -1, "device": "d"}',
        '{"ts": 1, "gateway": "g", "rssi": -1, "device": ""}',
    ],
)
def test_parse_record_rejects(line: str) -> None:
    with pytest.raises(RecordError):
        parse_record(line)
