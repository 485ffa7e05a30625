"""Abuse test: fuzzed MQTT payloads on every topic the cloud worker and a gateway consume.

A broker only vouches for who published, never for what: a buggy or hostile
gateway can put anything on its uplink topics, and anything that reaches a
gateway's downlink topics must not take it down either. Hypothesis generates
payloads (random bytes, random JSON, oversized and deeply nested documents,
messages of the right kind with fields of wrong types and ranges, NUL
characters, huge numbers, NaN and infinity), each is published on a real
Mosquitto, and after each one the test checks that the consumer is still
running, that a refusal was counted under the contract's own reason, and that
a message the contract accepts was handled without raising. Afterwards good
traffic must still flow.

Each payload's expected refusal comes from :func:`gateway.contract.parse_message`,
the one parser both sides use; what is tested here is that the running
consumers count that refusal and survive everything else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from cloud.bus import CloudBus
from cloud.worker import CloudWorker
from gateway.contract import (
    CHANNEL_KINDS,
    MAX_PAYLOAD_BYTES,
    BeaconHealth,
    CheckIn,
    ContractError,
    FleetReport,
    GatewayState,
    Heartbeat,
    OfferDecisionMessage,
    OfferPush,
    PresenceEventMessage,
    ResolvedEid,
    ResolveRequest,
    ResolveResponse,
    Ruleset,
    StockSnapshot,
    channel_of,
    encode,
    gateway_topic,
    parse_message,
    store_topic,
)
from gateway.daemon import Gateway
from gateway.layout import parse_layout
from gateway.offers.rules import RulesetBody
from gateway.settings import GatewaySettings, MqttSettings
from tests.support.layouts import door_layout
from tests.support.mosquitto import Broker, Listener, wait_until

from .conftest import STORE
from .test_cloud_worker import decision, resolve, start_worker

T = TypeVar("T")

STORE_ID, GATEWAY = str(STORE["id"]), "gw-1"
EVENTS = gateway_topic(STORE_ID, GATEWAY, "events")
RESOLVE = gateway_topic(STORE_ID, GATEWAY, "resolve")
RESOLVED = gateway_topic(STORE_ID, GATEWAY, "resolved")
RULESET = store_topic(STORE_ID, "ruleset")
STOCK = store_topic(STORE_ID, "stock")
TS = 1_767_225_600.0  # 2026-01-01
#: every reason the contract gives; the explicit examples below make each one occur
CONTRACT_REASONS = {"too_large", "not_json", "unknown_kind", "bad_schema", "invalid", "wrong_kind"}

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------- valid messages to start from


def _as_dict(message: Any) -> dict[str, Any]:
    """A message as the JSON object a publisher sends."""
    loaded: dict[str, Any] = json.loads(encode(message))
    return loaded


WELCOME: dict[str, Any] = {
    "id": "welcome",
    "campaign": "spring",
    "offer": "latte",
    "trigger": {"type": "enter", "zones": ["entrance"]},
}
#: the ruleset in force on the gateway before the fuzzing starts
RULESET_VERSION = 5


def valid_ruleset(version: int) -> Ruleset:
    return Ruleset.model_validate(
        {
            "store": STORE_ID,
            "version": version,
            "compiled_at": "2026-01-01T00:00:00Z",
            "timezone": "Europe/Berlin",
            "rules": [WELCOME],
        }
    )


PRESENCE = _as_dict(
    PresenceEventMessage(
        event_id="evt-00000001",
        store=STORE_ID,
        gateway=GATEWAY,
        zone="coffee",
        token="tok-1",
        type="dwell",
        ts=TS,
        dwell_s=25.0,
    )
)
OFFER_DECISION = _as_dict(
    OfferDecisionMessage(
        event_id="dec-00000001",
        trigger_event_id="evt-00000001",
        store=STORE_ID,
        gateway=GATEWAY,
        zone="coffee",
        token="tok-1",
        ts=TS,
        campaign="spring",
        offer="latte",
        rule="latte-at-coffee",
        expires_at=TS + 600,
    )
)
RESOLVE_REQUEST = _as_dict(
    ResolveRequest(
        request_id="req-00000001",
        store=STORE_ID,
        gateway=GATEWAY,
        ts=TS,
        eids=["0011223344556677", "8899aabbccddeeff"],
    )
)
RULESET_NEXT = _as_dict(valid_ruleset(RULESET_VERSION + 1))
#: a newer ruleset whose body the offer engine refuses (a dwell trigger without seconds)
RULESET_BROKEN = {**RULESET_NEXT, "rules": [{**WELCOME, "trigger": {"type": "dwell"}}]}
STOCK_SNAPSHOT = _as_dict(StockSnapshot(store=STORE_ID, ts=TS, in_stock={"LATTE": 3, "MUG": 0}))
RESOLVE_RESPONSE = _as_dict(
    ResolveResponse(
        request_id="req-00000001",
        store=STORE_ID,
        ts=TS,
        resolved=[
            ResolvedEid(
                eid="0011223344556677",
                token="tok-fuzz",
                valid_until=TS + 600,
                next_eid="8899aabbccddeeff",
                next_valid_until=TS + 1200,
                segments=["regulars"],
            )
        ],
        revoked_tokens=["tok-gone"],
    )
)
CHECKIN = _as_dict(CheckIn(store=STORE_ID, eid="0011223344556677", beacon="b-1", rssi=-60.0, ts=TS))
#: one valid message of every kind, to be sent where it does not belong
EVERY_KIND = [
    PRESENCE,
    OFFER_DECISION,
    RESOLVE_REQUEST,
    RULESET_NEXT,
    STOCK_SNAPSHOT,
    RESOLVE_RESPONSE,
    _as_dict(GatewayState(store=STORE_ID, gateway=GATEWAY, state="online", ts=TS)),
    _as_dict(
        Heartbeat(
            store=STORE_ID,
            gateway=GATEWAY,
            ts=TS,
            uptime_s=1.0,
            adverts_per_s=0.0,
            devices_tracked=0,
            outbox_depth=0,
        )
    ),
    _as_dict(
        FleetReport(
            store=STORE_ID,
            gateway=GATEWAY,
            ts=TS,
            beacons=[BeaconHealth(beacon="b-1", last_seen=TS, status="ok")],
        )
    ),
    CHECKIN,
    _as_dict(
        OfferPush(
            delivery_id="dlv-00000001", campaign="spring", offer="latte", title="t", body="b", ts=TS
        )
    ),
]

# ---------------------------------------------------------------- payload strategies


def _dumps(document: object, ascii_only: bool = True) -> bytes:
    """JSON as a careless publisher writes it: NaN and Infinity included, lone surrogates
    either escaped or encoded as the invalid UTF-8 they become."""
    return json.dumps(document, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _nested(depth: int) -> object:
    """Lists ``depth`` deep: around the JSON parser's recursion limit (about 200)."""
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


_HUGE_INTS = st.sampled_from([2**31, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**100])
_ODD_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0])
_CHARS = st.one_of(st.characters(), st.characters(categories=["Cs"]))  # lone surrogates too
_STRINGS = st.one_of(
    st.text(_CHARS, max_size=40),
    st.text(_CHARS, min_size=1, max_size=20).map(lambda s: f"{s}\x00{s}"),  # NUL inside
    # past every max_length in the contract, and just below the payload limit
    st.builds(lambda c, n: c * n, _CHARS, st.integers(65, 5000)),
    st.builds(lambda c, n: c * n, st.characters(codec="ascii"), st.just(250_000)),
)
#: a field value that is most likely wrong for its field
_NASTY: st.SearchStrategy[object] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    _HUGE_INTS,
    st.floats(),
    _ODD_FLOATS,
    _STRINGS,
    st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.integers(150, 400).map(_nested),
)
_JSON: st.SearchStrategy[object] = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), _HUGE_INTS, st.floats(), _STRINGS),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_ANY_STRING = st.one_of(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True),  # another id
    st.from_regex(r"[0-9a-f]{16}", fullmatch=True),  # another EID
    st.text(_CHARS, min_size=1, max_size=128),  # any characters, NUL included
    st.text(_CHARS, max_size=4).map(lambda s: f"\x00{s}\x00" * 4),
)


def _retyped(value: object) -> st.SearchStrategy[object]:
    """Another value of the same JSON type: what a sender that gets the types right but
    everything else wrong sends (other stores, NaN, huge numbers, NUL, 600 EIDs...)."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.one_of(st.integers(), _HUGE_INTS)
    if isinstance(value, float):
        return st.one_of(st.floats(), _ODD_FLOATS)
    if isinstance(value, str):
        return _ANY_STRING
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return st.lists(_mutated(value[0]), max_size=3)
    if isinstance(value, list) and value:
        # short items repeated: duplicates, and list lengths past the contract's limits
        items = st.lists(_retyped(value[0]), max_size=3)
        return st.tuples(items, st.sampled_from([1, 1, 200, 600])).map(
            lambda drawn: drawn[0] * drawn[1]
        )
    if isinstance(value, dict) and value:
        key, item = next(iter(value.items()))
        return st.dictionaries(_retyped(key), _retyped(item), max_size=4)
    return _NASTY


def _mutate(
    draw: st.DrawFn, document: dict[str, Any], top: bool, plausible: bool = False
) -> dict[str, Any]:
    """1-3 fields given another value of their type or a nasty one, dropped, or mutated
    inside; plus maybe an unknown field. ``kind`` and ``schema`` stay right at the top.
    ``plausible``: 1-2 fields of the same type only, which the contract mostly accepts."""
    mutated = dict(document)
    names = sorted(k for k in mutated if not (top and k in {"kind", "schema"}))
    ways = ["retyped"] if plausible else ["nasty", "retyped", "retyped", "drop", "inside"]
    chosen = st.lists(st.sampled_from(names), min_size=1, max_size=3 - plausible, unique=True)
    for name in draw(chosen):
        value = mutated[name]
        how = draw(st.sampled_from(ways))
        if how == "inside" and isinstance(value, list) and value and isinstance(value[0], dict):
            mutated[name] = [_mutate(draw, value[0], top=False), *value[1:]]
        elif how == "inside" and isinstance(value, dict):
            mutated[name] = {**value, draw(_STRINGS): draw(_NASTY)}
        elif how == "drop":
            del mutated[name]
        else:
            mutated[name] = draw(_retyped(value) if how == "retyped" else _NASTY)
    if not plausible and draw(st.integers(0, 3)) == 0:
        extra = draw(st.text(max_size=12))
        if extra not in mutated:
            mutated[extra] = draw(_NASTY)
    return mutated


@st.composite
def _mutated(draw: st.DrawFn, document: dict[str, Any]) -> dict[str, Any]:
    return _mutate(draw, document, top=False)


@st.composite
def _near_miss(draw: st.DrawFn, template: dict[str, Any], plausible: bool = False) -> bytes:
    """A message of the right kind and schema with some fields wrong."""
    document = _mutate(draw, template, top=True, plausible=plausible)
    return _dumps(document, ascii_only=draw(st.booleans()))


@st.composite
def _bad_kind_or_schema(draw: st.DrawFn, template: dict[str, Any]) -> bytes:
    """An otherwise valid message whose ``kind`` or ``schema`` is off (or missing)."""
    key = draw(st.sampled_from(["kind", "schema"]))
    document = dict(template)
    if draw(st.booleans()):
        del document[key]
    else:
        document[key] = draw(st.one_of(_NASTY, st.sampled_from([0, 2, "1", "ruleset", "offer"])))
    return _dumps(document)


def _too_large(template: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """A valid message padded past the contract's size limit."""
    return st.integers(MAX_PAYLOAD_BYTES - 64, MAX_PAYLOAD_BYTES + 64).map(
        lambda n: _dumps({**template, "padding": "x" * n})
    )


def payloads(topic: str, templates: list[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """Every kind of garbage for one topic; near misses of its own messages weigh most."""
    allowed = CHANNEL_KINDS[channel_of(topic)]
    own = st.sampled_from(templates)
    return st.one_of(
        st.binary(min_size=1, max_size=300),
        _JSON.map(_dumps),
        own.flatmap(_near_miss),
        own.flatmap(_near_miss),
        own.flatmap(lambda template: _near_miss(template, plausible=True)),
        own.flatmap(lambda template: _near_miss(template, plausible=True)),
        st.sampled_from(templates).flatmap(_bad_kind_or_schema),
        st.sampled_from([_dumps(m) for m in EVERY_KIND if m["kind"] not in allowed]),
        st.integers(1, 30_000).map(lambda d: b"[" * d + b"]" * d),
        st.integers(1, 30_000).map(lambda d: b'{"kind":' * d + b"0" + b"}" * d),
        st.sampled_from(templates).flatmap(_too_large),
    )


def refusal(topic: str, payload: bytes) -> str | None:
    """The reason the contract refuses ``payload`` on ``topic``; ``None`` when it parses."""
    try:
        parse_message(topic, payload)
    except ContractError as exc:
        return exc.reason
    return None


def counts(counter: Counter[str]) -> Counter[str]:
    """A copy taken in one step (``dict()`` of a dict does not release the GIL), safe
    while paho's thread is counting."""
    return Counter(dict(counter))


def thread_alive(client: mqtt.Client) -> bool:
    """paho's network thread: an exception out of a callback would have ended it."""
    return client._thread is not None and client._thread.is_alive()


class Publisher:
    """A plain client that publishes each payload at QoS 1 and waits for the PUBACK."""

    def __init__(self, port: int, client_id: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), f"the broker did not take a {len(payload)}-byte payload"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---------------------------------------------------------------- the cloud worker


def _offer_decision(**fields: object) -> bytes:
    return _dumps({**OFFER_DECISION, **fields})


def _handled(bus: CloudBus) -> int:
    """Messages the bus finished with, however it ended."""
    return sum(counts(bus.stats.rejected).values()) + bus.stats.handled + bus.stats.handler_errors


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_the_cloud_worker_counts_and_survives_fuzzed_gateway_traffic(
    store: dict[str, Any], database_url: str, broker: Broker
) -> None:
    """Events and resolve requests: each refusal counted by reason, nothing accepted makes
    a handler raise (a raising handler leaves the message unacknowledged, to be handled
    again and again), and the worker still answers and ingests afterwards."""
    worker: CloudWorker = start_worker(database_url, broker, "fuzz")
    ingestor = worker.ingest.ingestor
    assert ingestor is not None
    publisher = Publisher(broker.port, "gw-1-fuzzer")
    probe = Listener(broker.port, [RESOLVED], "gw-1-probe")
    bus_for = {EVENTS: worker.ingest.bus, RESOLVE: worker.resolver.bus}
    expected: Counter[str] = Counter()
    seen: Counter[tuple[str, str]] = Counter()
    cases = st.one_of(
        payloads(EVENTS, [PRESENCE, OFFER_DECISION]).map(lambda p: (EVENTS, p)),
        payloads(RESOLVE, [RESOLVE_REQUEST]).map(lambda p: (RESOLVE, p)),
    )

    @FUZZ
    @given(cases)
    # accepted by the contract, absurd for a database: before a fix, ingestion raised on these
    @example((EVENTS, _offer_decision(ts=math.inf)))
    @example((EVENTS, _offer_decision(ts=1e308, event_id="dec-00000002")))
    @example((EVENTS, _offer_decision(ts=-1e20, event_id="dec-00000003")))
    @example((EVENTS, _offer_decision(expires_at=math.nan, event_id="dec-00000004")))
    @example(
        (EVENTS, _offer_decision(token="tok\x00", suppressed="x" * 300, event_id="dec-00000005"))
    )
    @example((EVENTS, _dumps({**PRESENCE, "ts": math.nan, "dwell_s": -math.inf})))
    @example((RESOLVE, _dumps({**RESOLVE_REQUEST, "ts": math.inf, "gateway": "gw-2"})))
    # one of each refusal
    @example((RESOLVE, b""))
    @example((RESOLVE, b"[" * 5000 + b"]" * 5000))
    @example((RESOLVE, _dumps({**RESOLVE_REQUEST, "eids": ["x" * (MAX_PAYLOAD_BYTES + 1)]})))
    @example((EVENTS, _dumps({**PRESENCE, "kind": "presence\x00"})))
    @example((EVENTS, _dumps({**PRESENCE, "schema": 2})))
    @example((RESOLVE, _dumps({**RESOLVE_REQUEST, "eids": 2**64})))
    @example((RESOLVE, _dumps(STOCK_SNAPSHOT)))
    def publish_one(case: tuple[str, bytes]) -> None:
        topic, payload = case
        bus = bus_for[topic]
        before, rejected, errors = (
            _handled(bus),
            counts(bus.stats.rejected),
            bus.stats.handler_errors,
        )
        publisher.send(topic, payload)
        wait_until(
            lambda: _handled(bus) > before, 10, f"the worker to finish with {payload[:60]!r}"
        )
        assert thread_alive(bus.client), f"the worker's MQTT thread died on {payload[:60]!r}"
        reason = refusal(topic, payload)
        seen[topic, reason or "parsed"] += 1
        if reason is None:
            assert bus.stats.handler_errors == errors, f"a handler raised on {payload[:200]!r}"
            assert counts(bus.stats.rejected) == rejected
        else:
            expected[reason] += 1
            assert counts(bus.stats.rejected) - rejected == Counter({reason: 1})

    try:
        publish_one()
        refused = counts(worker.ingest.bus.stats.rejected) + counts(
            worker.resolver.bus.stats.rejected
        )
        assert refused == expected
        assert set(expected) == CONTRACT_REASONS
        for topic in (EVENTS, RESOLVE):  # both topics got refusals and accepted nonsense
            assert seen[topic, "parsed"] > 0
            assert sum(n for (t, r), n in seen.items() if t == topic and r != "parsed") > 0
        assert worker.ingest.bus.stats.handler_errors == 0
        assert worker.resolver.bus.stats.handler_errors == 0
        # the decisions with times no database can hold were refused and counted, not raised
        assert ingestor.outcomes["bad_time"] >= 2  # (NaN and infinity: refused by the contract)

        # good traffic still flows: a resolve request is answered, a decision ingested
        response = resolve(probe, "00112233445566ff", 99_999)
        assert response.resolved == [] and response.store == STORE_ID
        unknown = ingestor.outcomes["unknown_person"]
        publisher.send(EVENTS, decision("tok-after-fuzz", 99_999))
        wait_until(
            lambda: ingestor.outcomes["unknown_person"] == unknown + 1,
            10,
            "the offer decision sent after the fuzzing to be ingested",
            lambda: ingestor.outcomes,
        )
    finally:
        publisher.close()
        probe.close()
        worker.stop()


# ---------------------------------------------------------------- the gateway

LAYOUT = door_layout(STORE_ID, GATEWAY)
#: published after each fuzzed payload on the same topic: its refusal, counted last by the
#: link's single network thread, says the payload before it was dealt with
MARKER = _dumps(CHECKIN)  # "wrong_kind" on every gateway downlink topic


@dataclass
class RunningGateway:
    gateway: Gateway
    loop: asyncio.AbstractEventLoop
    #: exceptions out of callbacks on the gateway's event loop (its message handler)
    loop_errors: list[dict[str, Any]]

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the gateway's loop, after everything queued there before."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(10)


@contextmanager
def running_gateway(tmp_path: Path, port: int) -> Iterator[RunningGateway]:
    """A daemon's ``Gateway`` with its MQTT link and an event loop on a thread, as
    ``run_gateway`` wires them, minus scanner and scheduler."""
    settings = GatewaySettings(
        store=STORE_ID,
        gateway=GATEWAY,
        layout=tmp_path / "unused.toml",
        data_dir=tmp_path / "gateway",
        mqtt=MqttSettings(port=port, reconnect_min_s=1, reconnect_max_s=2),
        flush_s=0.1,
    )
    gateway = Gateway(settings, parse_layout(LAYOUT))
    loop = asyncio.new_event_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    thread = threading.Thread(target=loop.run_forever, name="gateway-loop", daemon=True)
    thread.start()
    gateway.loop = loop
    gateway.link.start()
    try:
        yield RunningGateway(gateway, loop, errors)
    finally:
        gateway.link.stop(timeout_s=2)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        gateway.outbox.close()


@dataclass(frozen=True)
class GatewayView:
    """What the gateway holds, read on its loop (after the handlers queued before)."""

    ruleset: RulesetBody | None
    refused_rulesets: int
    stock: dict[str, int] | None
    users: frozenset[str]


def view(running: RunningGateway) -> GatewayView:
    def read() -> GatewayView:
        g = running.gateway
        g.housekeeping()  # the periodic job that expires what resolve answers taught
        return GatewayView(
            g.engine.ruleset if g.engine is not None else None,
            g.rejected_rulesets + g.stale_rulesets,
            None if g.stock is None else dict(g.stock),
            frozenset(g.users),
        )

    return running.call(read)


def would_apply(payload: bytes) -> bool:
    """Whether a fuzzed ruleset is in fact a good, newer one (then it is no abuse: left out)."""
    try:
        message = parse_message(RULESET, payload)
        assert isinstance(message, Ruleset)
        RulesetBody.model_validate(
            {
                "store": message.store,
                "version": message.version,
                "timezone": message.timezone,
                "rules": message.rules,
            }
        )
    except Exception:  # refused, or something worse: then the gateway must survive it too
        return False
    return message.version >= RULESET_VERSION


def test_a_gateway_counts_and_survives_fuzzed_downlink_traffic(
    broker: Broker, tmp_path: Path
) -> None:
    """Ruleset, stock and resolve answers: each refusal counted by reason, nothing raises on
    paho's thread or the gateway's loop, the ruleset in force stays, and a good stock
    snapshot and ruleset published afterwards are applied."""
    publisher = Publisher(broker.port, "cloud-fuzzer")
    seen: Counter[tuple[str, str]] = Counter()
    in_force = valid_ruleset(RULESET_VERSION)
    cases = st.one_of(
        payloads(RULESET, [RULESET_NEXT, RULESET_BROKEN])
        .filter(lambda p: not would_apply(p))
        .map(lambda p: (RULESET, p)),
        payloads(STOCK, [STOCK_SNAPSHOT]).map(lambda p: (STOCK, p)),
        payloads(RESOLVED, [RESOLVE_RESPONSE]).map(lambda p: (RESOLVED, p)),
    )
    # retained (as the cloud publishes rulesets and stock; the resolve answer only here):
    # they wait for the gateway to subscribe, so their arrival says each subscription is in
    # place before the first fuzzed payload, which would otherwise be lost
    publisher.send(RULESET, encode(in_force), retain=True)
    publisher.send(STOCK, _dumps(STOCK_SNAPSHOT), retain=True)
    publisher.send(RESOLVED, _dumps(RESOLVE_RESPONSE), retain=True)
    with running_gateway(tmp_path, broker.port) as running:
        link = running.gateway.link
        wait_until(
            lambda: (
                (v := view(running)).ruleset is not None
                and v.stock == STOCK_SNAPSHOT["in_stock"]
                and "tok-fuzz" in v.users
            ),
            10,
            "the retained ruleset, stock and resolve answer applied",
            lambda: view(running),
        )
        applied = view(running).ruleset
        assert applied is not None and applied.version == RULESET_VERSION

        @FUZZ
        @given(cases)
        # accepted by the contract, refused or absurd further in
        @example((RULESET, _dumps(RULESET_BROKEN)))
        @example((RULESET, _dumps({**RULESET_BROKEN, "version": 10**30})))
        @example((RULESET, _dumps({**RULESET_NEXT, "version": 1})))  # older: ignored
        @example((STOCK, _dumps({**STOCK_SNAPSHOT, "in_stock": {"\x00": 2**64, "M": -1}})))
        @example((STOCK, _dumps({**STOCK_SNAPSHOT, "ts": math.nan, "store": "other-store"})))
        @example(
            (
                RESOLVED,
                _dumps(
                    {
                        **RESOLVE_RESPONSE,
                        "resolved": [
                            {
                                "eid": "0011223344556677",
                                "token": "tok\x00nan",
                                "valid_until": math.nan,
                                "next_eid": "8899aabbccddeeff",
                                "next_valid_until": -math.inf,
                            }
                        ],
                        "revoked_tokens": ["\x00" * 200],
                    }
                ),
            )
        )
        # one of each refusal
        @example((RESOLVED, b"\x00\xff"))
        @example((STOCK, b'{"kind":' * 10_000 + b"0" + b"}" * 10_000))
        @example((RULESET, _dumps({**RULESET_BROKEN, "padding": "x" * MAX_PAYLOAD_BYTES})))
        @example((STOCK, _dumps({**STOCK_SNAPSHOT, "kind": "stok"})))
        @example((RESOLVED, _dumps({**RESOLVE_RESPONSE, "schema": 0})))
        @example((RULESET, _dumps({**RULESET_BROKEN, "timezone": "Mars/Olympus"})))
        @example((STOCK, _dumps(RULESET_NEXT)))
        def publish_one(case: tuple[str, bytes]) -> None:
            topic, payload = case
            before, rulesets_before = counts(link.stats.rejected), view(running).refused_rulesets
            reason = refusal(topic, payload)
            publisher.send(topic, payload)
            publisher.send(topic, MARKER)
            after = before + Counter({"wrong_kind": 1}) + Counter([reason] if reason else [])
            wait_until(
                lambda: counts(link.stats.rejected) == after,
                10,
                f"the link to count {reason or 'nothing'} for {payload[:60]!r}, then the marker",
                lambda: counts(link.stats.rejected) - before,
            )
            now = view(running)  # the handler queued before this read has run
            assert thread_alive(link.client), f"the link's thread died on {payload[:60]!r}"
            assert link.stats.rejected["handler_error"] == 0
            assert running.loop_errors == [], f"the gateway raised on {payload[:200]!r}"
            assert now.ruleset == applied, f"the ruleset in force changed on {payload[:200]!r}"
            seen[topic, reason or "parsed"] += 1
            if reason is not None:
                return
            message = parse_message(topic, payload)
            if isinstance(message, Ruleset):
                assert now.refused_rulesets == rulesets_before + 1
            elif isinstance(message, StockSnapshot):
                assert now.stock == dict(message.in_stock)
            elif isinstance(message, ResolveResponse):
                revoked = set(message.revoked_tokens)
                assert {item.token for item in message.resolved} - revoked <= now.users
                assert not revoked & now.users

        try:
            publish_one()
            assert link.stats.rejected["handler_error"] == 0 and running.loop_errors == []
            assert set(counts(link.stats.rejected)) >= CONTRACT_REASONS
            for topic in (RULESET, STOCK, RESOLVED):
                assert seen[topic, "parsed"] > 0
                assert sum(n for (t, r), n in seen.items() if t == topic and r != "parsed") > 0
            assert (link.stats.connects, link.stats.disconnects) == (1, 0)
            assert view(running).ruleset == applied

            # good traffic still flows: a stock snapshot and a newer ruleset are applied
            good_stock = {"LATTE": 12, "MUG": 1}
            snapshot = StockSnapshot(store=STORE_ID, ts=time.time(), in_stock=good_stock)
            publisher.send(STOCK, encode(snapshot))
            wait_until(lambda: view(running).stock == good_stock, 10, "the good stock snapshot")
            publisher.send(RULESET, encode(valid_ruleset(RULESET_VERSION + 1)))
            wait_until(
                lambda: (
                    (r := view(running).ruleset) is not None and r.version == RULESET_VERSION + 1
                ),
                10,
                "the newer ruleset",
            )
            assert running.loop_errors == []
        finally:
            publisher.close()
