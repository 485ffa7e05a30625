"""The wire contract: topics, round trips, and refusals with a stable reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.contract import (
    CHANNEL_KINDS,
    ContractError,
    Heartbeat,
    PresenceEventMessage,
    ResolveRequest,
    encode,
    gateway_of,
    gateway_topic,
    parse_message,
    store_topic,
)

EVENTS = gateway_topic("demo-store", "gw-1", "events")


def presence() -> PresenceEventMessage:
    return PresenceEventMessage(
        event_id="evt-00000001",
        store="demo-store",
        gateway="gw-1",
        zone="entrance",
        token="tok-1",
        type="enter",
        ts=1.0,
    )


def test_topics() -> None:
    assert EVENTS == "nahfeld/v1/stores/demo-store/gateways/gw-1/events"
    assert store_topic("demo-store", "ruleset") == "nahfeld/v1/stores/demo-store/ruleset"
    with pytest.raises(ContractError, match="bad_topic"):
        gateway_topic("demo/store", "gw-1", "events")
    with pytest.raises(ContractError, match="bad_topic"):
        gateway_topic("+", "gw-1", "events")


def test_round_trip() -> None:
    message = presence()
    assert parse_message(EVENTS, encode(message)) == message
    assert json.loads(encode(message))["schema"] == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{", "not_json"),
        (b"[]", "invalid"),
        (b'{"schema": 1, "kind": "nope"}', "unknown_kind"),
        (b'{"kind": "presence"}', "invalid"),
        (b"x" * 300_000, "too_large"),
    ],
)
def test_refusals_have_reasons(payload: bytes, reason: str) -> None:
    with pytest.raises(ContractError) as info:
        parse_message(EVENTS, payload)
    assert info.value.reason == reason
    assert info.value.detail


def test_future_schema_version_is_refused() -> None:
    doc = json.loads(encode(presence()))
    doc["schema"] = 2
    with pytest.raises(ContractError) as info:
        parse_message(EVENTS, json.dumps(doc).encode())
    assert info.value.reason == "bad_schema"


def test_unknown_field_is_refused() -> None:
    doc = json.loads(encode(presence()))
    doc["mac"] = "AA:BB:CC:DD:EE:FF"
    with pytest.raises(ContractError, match="Extra inputs are not permitted"):
        parse_message(EVENTS, json.dumps(doc).encode())


def test_message_on_the_wrong_topic_is_refused() -> None:
    beat = Heartbeat(
        store="demo-store",
        gateway="gw-1",
        ts=1.0,
        uptime_s=1.0,
        adverts_per_s=0.0,
        devices_tracked=0,
        outbox_depth=0,
    )
    with pytest.raises(ContractError) as info:
        parse_message(EVENTS, encode(beat))
    assert info.value.reason == "wrong_kind"
    with pytest.raises(ContractError) as unknown:
        parse_message("nahfeld/v1/stores/s/gateways/g/bogus", encode(beat))
    assert unknown.value.reason == "unknown_topic"


def test_resolve_request_only_takes_eid_hex() -> None:
    with pytest.raises(ValueError, match="eids"):
        ResolveRequest(request_id="req-00000001", store="s", gateway="g", ts=1.0, eids=["AA:BB"])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(CHANNEL_KINDS)), st.binary(max_size=300))
def test_fuzzed_payloads_only_ever_raise_contract_errors(channel: str, payload: bytes) -> None:
    try:
        parse_message(f"nahfeld/v1/stores/s/gateways/g/{channel}", payload)
    except ContractError as exc:
        assert exc.reason


def test_the_sender_is_read_from_the_topic() -> None:
    assert gateway_of(gateway_topic("berlin-1", "gw-2", "resolve")) == ("berlin-1", "gw-2")
    for topic in ("nahfeld/v1/stores/berlin-1/ruleset", "nahfeld/v1/stores/+/gateways/gw/x", "x"):
        with pytest.raises(ContractError, match="bad_topic"):
            gateway_of(topic)
