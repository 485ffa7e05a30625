"""The wire contract between store gateways, the cloud and the app: topics and messages.

One module, imported by the gateway and the cloud alike, so the two can never
disagree. Every message is JSON with a ``schema`` version and a ``kind``; a
consumer parses with :func:`parse_message`, which refuses anything malformed,
of the wrong kind for its topic, or of an unknown schema version with a
:class:`ContractError` naming the reason (a metrics label) and the detail.

Topic layout, under ``nahfeld/v1``::

    stores/{store}/gateways/{gateway}/state      gateway → cloud   retained; Last Will "offline"
    stores/{store}/gateways/{gateway}/heartbeat  gateway → cloud   health figures
    stores/{store}/gateways/{gateway}/events     gateway → cloud   presence and offer events, QoS 1
    stores/{store}/gateways/{gateway}/resolve    gateway → cloud   EID batch to resolve
    stores/{store}/gateways/{gateway}/resolved   cloud → gateway   tokens for resolved EIDs
    stores/{store}/gateways/{gateway}/fleet      gateway → cloud   store-beacon health
    stores/{store}/ruleset                         cloud → gateways  retained, versioned
    stores/{store}/stock                           cloud → gateways  retained stock snapshot
    stores/{store}/checkins                        cloud → gateways  sightings relayed from apps
    apps/{install}/offers                          cloud → app       offers to show
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .fields import IanaTimezone, Identifier

SCHEMA_VERSION = 1
ROOT = "nahfeld/v1"
MAX_PAYLOAD_BYTES = 256 * 1024

EidHex = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
#: event, request and delivery ids (the gateway's are hex UUIDs): printable ASCII, no space
MessageId = Annotated[str, Field(pattern=r"^[!-~]{8,64}$")]
#: a per-store pseudonymous token, as the resolver makes them
Token = Annotated[str, Field(pattern=r"^[!-~]{1,128}$")]
#: why an offer was not sent: the offer engine's and the cloud's reasons, snake_case
Reason = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ContractError(ValueError):
    """A message or topic that breaks the contract. ``reason`` is a stable metrics label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------- topics


def _segment(value: str) -> str:
    if not _SEGMENT.match(value):
        raise ContractError("bad_topic", f"{value!r} is not a valid topic segment")
    return value


def gateway_topic(store: str, gateway: str, channel: str) -> str:
    return f"{ROOT}/stores/{_segment(store)}/gateways/{_segment(gateway)}/{channel}"


def store_topic(store: str, channel: str) -> str:
    return f"{ROOT}/stores/{_segment(store)}/{channel}"


def app_offers_topic(install: str) -> str:
    return f"{ROOT}/apps/{_segment(install)}/offers"


def gateway_username(store: str, gateway: str) -> str:
    """A gateway's MQTT user name (and TLS certificate CN): ``{gateway}@{store}``.

    Fleet-wide unique, and ``@`` cannot occur in an id, so the broker's ACL can
    bind each gateway to exactly its own topics (see firmware-config/mosquitto).
    """
    return f"{_segment(gateway)}@{_segment(store)}"


#: the channels a gateway publishes on (its own subtree) and those it reads
GATEWAY_UPLINK_CHANNELS = ("state", "heartbeat", "events", "resolve", "fleet")
GATEWAY_DOWNLINK_CHANNELS = ("resolved",)
STORE_DOWNLINK_CHANNELS = ("ruleset", "stock", "checkins")


# Filters for consumers; the cloud prefixes these with $share/<group>/ to scale out.
ALL_GATEWAY_EVENTS = f"{ROOT}/stores/+/gateways/+/events"
ALL_GATEWAY_STATES = f"{ROOT}/stores/+/gateways/+/state"
ALL_HEARTBEATS = f"{ROOT}/stores/+/gateways/+/heartbeat"
ALL_RESOLVE_REQUESTS = f"{ROOT}/stores/+/gateways/+/resolve"
ALL_FLEET_REPORTS = f"{ROOT}/stores/+/gateways/+/fleet"


# ---------------------------------------------------------------- messages


class _Message(BaseModel):
    # JSON has no NaN or infinity, but Python's parser accepts them: refused here
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )

    schema_: Literal[1] = Field(default=1, alias="schema")


class GatewayState(_Message):
    """Retained on ``…/state``: ``online`` at connect, ``offline`` as Last Will or on shutdown."""

    kind: Literal["gateway_state"] = "gateway_state"
    store: Identifier
    gateway: Identifier
    state: Literal["online", "offline"]
    version: Annotated[str, Field(pattern=r"^[ -~]{0,64}$")] = ""
    ts: float


class Heartbeat(_Message):
    kind: Literal["heartbeat"] = "heartbeat"
    store: Identifier
    gateway: Identifier
    ts: float
    uptime_s: float = Field(ge=0)
    adverts_per_s: float = Field(ge=0)
    devices_tracked: int = Field(ge=0)
    outbox_depth: int = Field(ge=0)
    ruleset_version: int | None = None
    scanner_restarts: int = Field(ge=0, default=0)
    last_advert_age_s: float | None = None


class PresenceEventMessage(_Message):
    """A presence event; ``event_id`` makes ingestion idempotent."""

    kind: Literal["presence"] = "presence"
    event_id: MessageId
    store: Identifier
    gateway: Identifier
    zone: Identifier
    token: Token
    type: Literal["enter", "dwell", "exit"]
    ts: float
    dwell_s: float | None = None
    source: Literal["radio", "checkin"] = "radio"


class OfferDecisionMessage(_Message):
    """The gateway's decision for one trigger: an offer to send, or why not."""

    kind: Literal["offer_decision"] = "offer_decision"
    event_id: MessageId
    trigger_event_id: MessageId
    store: Identifier
    gateway: Identifier
    zone: Identifier
    token: Token
    ts: float
    campaign: Identifier | None = None
    offer: Identifier | None = None
    rule: Identifier | None = None
    suppressed: Reason | None = None
    expires_at: float | None = None


class ResolveRequest(_Message):
    kind: Literal["resolve_request"] = "resolve_request"
    request_id: MessageId
    store: Identifier
    gateway: Identifier
    ts: float
    eids: Annotated[list[EidHex], Field(min_length=1, max_length=512)]


class ResolvedEid(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    eid: EidHex
    token: Token
    valid_until: float
    next_eid: EidHex | None = None
    next_valid_until: float | None = None
    segments: list[Identifier] = Field(default_factory=list)


class ResolveResponse(_Message):
    """Only resolved EIDs are answered; the rest the gateway forgets."""

    kind: Literal["resolve_response"] = "resolve_response"
    request_id: MessageId
    store: Identifier
    ts: float
    resolved: list[ResolvedEid]
    revoked_tokens: list[Token] = Field(default_factory=list)


class BeaconHealth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    beacon: Identifier
    last_seen: float | None
    battery_mv: int | None = None
    temperature_c: float | None = None
    status: Literal["ok", "missing", "low_battery"]


class FleetReport(_Message):
    kind: Literal["fleet"] = "fleet"
    store: Identifier
    gateway: Identifier
    ts: float
    beacons: list[BeaconHealth]


class StockSnapshot(_Message):
    kind: Literal["stock"] = "stock"
    store: Identifier
    ts: float
    in_stock: dict[Annotated[str, Field(min_length=1, max_length=64)], int]


class CheckIn(_Message):
    """A sighting the app reported (iOS region monitoring), relayed to the store's gateways."""

    kind: Literal["checkin"] = "checkin"
    store: Identifier
    eid: EidHex
    beacon: Identifier
    rssi: float = Field(ge=-127, le=20)
    ts: float


class Ruleset(_Message):
    """A store's compiled rules; the body is validated by the offer engine, not here."""

    kind: Literal["ruleset"] = "ruleset"
    store: Identifier
    version: int = Field(ge=1)
    compiled_at: datetime
    timezone: IanaTimezone
    rules: list[dict[str, Any]]
    offers: list[dict[str, Any]] = Field(default_factory=list)


class OfferPush(_Message):
    """What the app receives on its offers topic."""

    kind: Literal["offer"] = "offer"
    delivery_id: MessageId
    campaign: Identifier
    offer: Identifier
    title: str = Field(max_length=200)
    body: str = Field(max_length=2000)
    deep_link: str | None = None
    image_url: str | None = None
    coupon_code: str | None = None
    expires_at: float | None = None
    ts: float


Message = Annotated[
    GatewayState
    | Heartbeat
    | PresenceEventMessage
    | OfferDecisionMessage
    | ResolveRequest
    | ResolveResponse
    | FleetReport
    | StockSnapshot
    | CheckIn
    | Ruleset
    | OfferPush,
    Field(discriminator="kind"),
]
_MESSAGE = TypeAdapter[Message](Message)

#: the message kinds each topic channel may carry
CHANNEL_KINDS: dict[str, frozenset[str]] = {
    "state": frozenset({"gateway_state"}),
    "heartbeat": frozenset({"heartbeat"}),
    "events": frozenset({"presence", "offer_decision"}),
    "resolve": frozenset({"resolve_request"}),
    "resolved": frozenset({"resolve_response"}),
    "fleet": frozenset({"fleet"}),
    "ruleset": frozenset({"ruleset"}),
    "stock": frozenset({"stock"}),
    "checkins": frozenset({"checkin"}),
    "offers": frozenset({"offer"}),
}


def encode(message: _Message) -> bytes:
    """The JSON bytes to publish."""
    return message.model_dump_json(by_alias=True, exclude_none=True).encode()


def gateway_of(topic: str) -> tuple[str, str]:
    """``(store, gateway)`` of a gateway topic. The broker's ACL vouches for the topic, not
    for the payload, so a consumer takes the sender's identity from here."""
    parts = topic.split("/")
    if len(parts) != 7 or "/".join(parts[:3]) != f"{ROOT}/stores" or parts[4] != "gateways":
        raise ContractError("bad_topic", f"{topic!r} is not a gateway topic")
    return _segment(parts[3]), _segment(parts[5])


def channel_of(topic: str) -> str:
    """The last segment of a contract topic (``events``, ``ruleset``…)."""
    if not topic.startswith(ROOT + "/"):
        raise ContractError("bad_topic", f"topic {topic!r} is not under {ROOT}/")
    return topic.rsplit("/", 1)[-1]


def parse_message(topic: str, payload: bytes) -> Message:
    """Validate a received payload for its topic; raise :class:`ContractError` on anything off."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("too_large", f"{len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    channel = channel_of(topic)
    allowed = CHANNEL_KINDS.get(channel)
    if allowed is None:
        raise ContractError("unknown_topic", f"no message is defined for channel {channel!r}")
    try:
        message = _MESSAGE.validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(message)"
        reason = "bad_schema" if where.endswith("schema") else "invalid"
        if first["type"] in {"json_invalid", "json_type"}:
            reason = "not_json"
        elif first["type"] == "union_tag_invalid" or first["type"] == "union_tag_not_found":
            reason = "unknown_kind"
        raise ContractError(reason, f"{where}: {first['msg']}") from exc
    if message.kind not in allowed:
        raise ContractError(
            "wrong_kind", f"a {message.kind!r} message does not belong on {channel!r}"
        )
    return message
