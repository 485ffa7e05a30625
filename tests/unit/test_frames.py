"""Beacon frame decoding from raw AD bytes and from bleak's fields."""

from __future__ import annotations

import pytest

from gateway.ble.decode import decode_ad, decode_fields
from gateway.ble.eddystone import EDDYSTONE_SERVICE_UUID
from gateway.ble.frames import (
    AltBeacon,
    EddystoneEid,
    EddystoneEtlm,
    EddystoneTlm,
    EddystoneUid,
    EddystoneUrl,
    IBeacon,
    frame_to_dict,
    measured_power_at_1m,
)
from gateway.sim.store import ad_structure, eid_advert, ibeacon_advert, tlm_advert

FLAGS = "020106"
EDDY_LIST = "0303aafe"
IBEACON_HEX = FLAGS + "1aff4c000215" + "f7826da64fa24e988024bc5b71e0893e" + "0064" + "0001" + "c5"


def eddystone_ad(frame_hex: str) -> bytes:
    return bytes.fromhex(FLAGS + EDDY_LIST) + ad_structure(0x16, bytes.fromhex("aafe" + frame_hex))


def test_ibeacon() -> None:
    decoded = decode_ad(bytes.fromhex(IBEACON_HEX))
    assert decoded.problem is None
    assert decoded.frames == (
        IBeacon(uuid="f7826da6-4fa2-4e98-8024-bc5b71e0893e", major=100, minor=1, tx_power=-59),
    )
    assert frame_to_dict(decoded.frames[0])["type"] == "ibeacon"
    assert measured_power_at_1m(decoded.frames[0]) == -59


def test_altbeacon() -> None:
    beacon_id = bytes(range(1, 17)) + b"\x00\x07\x00\x09"
    payload = (0x0118).to_bytes(2, "little") + b"\xbe\xac" + beacon_id + b"\xc3\x00"
    decoded = decode_ad(bytes.fromhex(FLAGS) + ad_structure(0xFF, payload))
    assert decoded.frames == (
        AltBeacon(
            id1="01020304-0506-0708-090a-0b0c0d0e0f10", id2=7, id3=9, tx_power=-61, mfg_id=0x0118
        ),
    )


def test_eddystone_uid_with_and_without_rfu() -> None:
    body = "00ee" + "0102030405060708090a" + "aabbccddeeff"
    for frame_hex in (body, body + "0000"):
        decoded = decode_ad(eddystone_ad(frame_hex))
        assert decoded.frames == (
            EddystoneUid(namespace="0102030405060708090a", instance="aabbccddeeff", tx_power=-18),
        )
    assert measured_power_at_1m(decoded.frames[0]) == -18 - 41


@pytest.mark.parametrize(
    ("encoded", "url"),
    [
        ("00" + "676f6f676c65" + "07", "http://www.google.com"),
        ("01" + "6578616d706c65" + "00" + "78", "https://www.example.com/x"),
        ("02" + "61" + "01" + "62" + "08", "http://a.org/b.org"),
        ("03" + "6d616b65636f6465" + "00" + "2361626f7574", "https://makecode.com/#about"),
        ("03" + "78" + "02030405060809", "https://x.edu/.net/.info/.biz/.gov/.org.edu"),
        ("03" + "78" + "0a0b0c0d", "https://x.net.info.biz.gov"),
    ],
)
def test_eddystone_url_schemes_and_expansions(encoded: str, url: str) -> None:
    decoded = decode_ad(eddystone_ad("10f6" + encoded))
    assert decoded.frames == (EddystoneUrl(url=url, tx_power=-10),)


@pytest.mark.parametrize("bad", ["04", "03" + "0e", "03" + "20", "03" + "7f", "03" + "ff"])
def test_eddystone_url_reserved_codes_are_malformed(bad: str) -> None:
    decoded = decode_ad(eddystone_ad("10f6" + bad))
    assert decoded.frames == ()
    assert decoded.problem is not None
    assert decoded.problem.reason == "bad_url"


def test_eddystone_tlm() -> None:
    decoded = decode_ad(tlm_advert(3012, 21.5, 123456, 3600.5))
    assert decoded.frames == (
        EddystoneTlm(voltage_mv=3012, temperature_c=21.5, adv_count=123456, uptime_s=3600.5),
    )


def test_eddystone_tlm_negative_and_unsupported_temperature() -> None:
    negative = decode_ad(tlm_advert(2900, -4.25, 1, 0.0)).frames[0]
    assert isinstance(negative, EddystoneTlm)
    assert negative.temperature_c == -4.25
    unsupported = decode_ad(eddystone_ad("2000" + "0bb8" + "8000" + "00000001" + "00000064"))
    frame = unsupported.frames[0]
    assert isinstance(frame, EddystoneTlm)
    assert frame.temperature_c is None
    assert frame.uptime_s == 10.0


def test_encrypted_tlm_is_recognised() -> None:
    decoded = decode_ad(eddystone_ad("2001" + "11" * 12 + "abcd" + "ef01"))
    assert decoded.frames == (EddystoneEtlm(etlm="11" * 12, salt="abcd", mic="ef01"),)


def test_eddystone_eid() -> None:
    decoded = decode_ad(eid_advert(bytes.fromhex("436bfe57d5a09505"), tx_power_0m=-20))
    assert decoded.frames == (EddystoneEid(eid="436bfe57d5a09505", tx_power=-20),)


def test_bleak_fields_give_the_same_frames_as_raw_bytes() -> None:
    raw = decode_ad(bytes.fromhex(IBEACON_HEX))
    fields = decode_fields(
        {0x004C: bytes.fromhex("0215f7826da64fa24e988024bc5b71e0893e00640001c5")}, {}
    )
    assert fields == raw
    eid = decode_fields({}, {EDDYSTONE_SERVICE_UUID: bytes.fromhex("30ec436bfe57d5a09505")})
    assert eid.frames == (EddystoneEid(eid="436bfe57d5a09505", tx_power=-20),)


def test_ibeacon_and_eddystone_in_one_advert() -> None:
    data = bytes.fromhex(IBEACON_HEX) + ad_structure(0x16, bytes.fromhex("aafe30ec" + "01" * 8))
    kinds = [frame.type for frame in decode_ad(data).frames]
    assert kinds == ["ibeacon", "eddystone_eid"]


@pytest.mark.parametrize(
    ("data_hex", "reason"),
    [
        ("", "empty"),
        (IBEACON_HEX[:-10], "truncated_ad"),
        (FLAGS + "17ff4c000215" + "00" * 21, "truncated_frame"),  # iBeacon short by 2 bytes
        (FLAGS + EDDY_LIST + "0716aafe30ec0102", "truncated_frame"),  # EID short
        (FLAGS + EDDY_LIST + "0516aafe5000", "unknown_frame_type"),
        (FLAGS + EDDY_LIST + "0516aafe2002", "unknown_frame_type"),  # TLM version 2
        (FLAGS + EDDY_LIST + "0316aafe", "truncated_frame"),  # empty Eddystone body
    ],
)
def test_malformed_input_yields_no_frame_and_a_reason(data_hex: str, reason: str) -> None:
    decoded = decode_ad(bytes.fromhex(data_hex))
    assert decoded.frames == ()
    assert decoded.problem is not None
    assert decoded.problem.reason == reason
    assert decoded.problem.detail


def test_non_beacon_advert_is_neither_frame_nor_problem() -> None:
    apple_continuity = bytes.fromhex(FLAGS + "0aff4c0010050b1c8a1b2c")
    decoded = decode_ad(apple_continuity)
    assert decoded == ((), None)


def test_ibeacon_helper_round_trips() -> None:
    uuid = bytes(range(16))
    decoded = decode_ad(ibeacon_advert(uuid, 65535, 0, measured_power=-70))
    assert decoded.frames == (
        IBeacon(uuid="00010203-0405-0607-0809-0a0b0c0d0e0f", major=65535, minor=0, tx_power=-70),
    )
