"""What the demo shows: the presence board, the live view and the closing summary.

The board reads the gateways' presence events off the broker, as a store
dashboard would (pseudonymous tokens only); the rest renders what the demo
has gathered (the funnel from the marketer API, the beacons' health from the
gateways' fleet reports) and holds no state of its own.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from rich.console import Console, Group
from rich.table import Table

from gateway.contract import (
    ROOT,
    BeaconHealth,
    ContractError,
    FleetReport,
    PresenceEventMessage,
    parse_message,
)
from gateway.layout import StoreLayout
from gateway.mqtt_session import MqttProtocol, new_client
from gateway.presence.events import PresenceEvent
from gateway.sim.clock import SimulatedClock
from gateway.sim.day import ExpectedVisit

FUNNEL_STEPS = ("triggered", "suppressed", "sent", "delivered", "opened", "redeemed")


@dataclass(slots=True)
class DemoSummary:
    adverts: int = 0
    days: int = 0
    visitors: int = 0
    presence: Counter[str] = field(default_factory=Counter)
    offers: dict[str, list[str]] = field(default_factory=dict)
    redeemed: int = 0
    funnel: dict[str, dict[str, object]] = field(default_factory=dict)
    #: opted-in phones' zone visits in the script, and those without their enter event
    expected_visits: list[ExpectedVisit] = field(default_factory=list)
    missed_visits: list[ExpectedVisit] = field(default_factory=list)
    #: how far the feed fell behind its pace at worst (store seconds; store time waited)
    worst_lag_s: float = 0.0
    #: stopped by Ctrl-C (then the visits are not checked: the day was cut short)
    interrupted: bool = False


class PresenceBoard:
    """Who is in which zone, read off the gateways' presence events on the broker (as a
    store dashboard would: pseudonymous tokens only)."""

    def __init__(self, host: str, port: int, protocol: MqttProtocol) -> None:
        self.zones: dict[str, set[str]] = {}
        self.counts: Counter[str] = Counter()
        self.events: list[PresenceEvent] = []
        self._lock = threading.Lock()
        self.client = new_client("demo-presence-board", protocol, persistent=False)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda client, *_: client.subscribe(
            f"{ROOT}/stores/+/gateways/+/events", qos=1
        )
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            message = parse_message(msg.topic, bytes(msg.payload))
        except ContractError:
            return
        if not isinstance(message, PresenceEventMessage):
            return
        event = PresenceEvent(
            message.ts, message.type, message.store, message.zone, message.token, message.gateway
        )
        with self._lock:
            self.events.append(event)
            self.counts[message.type] += 1
            present = self.zones.setdefault(message.zone, set())
            if message.type == "exit":
                present.discard(message.token)
            else:
                present.add(message.token)

    def snapshot(self) -> tuple[dict[str, int], Counter[str]]:
        with self._lock:
            return {zone: len(tokens) for zone, tokens in self.zones.items()}, Counter(self.counts)

    def history(self) -> list[PresenceEvent]:
        with self._lock:
            return list(self.events)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def live_view(
    layout: StoreLayout,
    present: Mapping[str, int],
    counts: Counter[str],
    funnel: Mapping[str, Mapping[str, object]],
    adverts: int,
    store_time: str,
    beacons: Iterable[BeaconHealth],
) -> Group:
    zones = Table(title="presence per zone (opted-in app users)")
    zones.add_column("zone")
    zones.add_column("now", justify="right")
    for zone in layout.zones:
        zones.add_row(zone.id, str(present.get(zone.id, 0)))
    table = Table(title="funnel")
    table.add_column("campaign")
    for step in FUNNEL_STEPS:
        table.add_column(step, justify="right")
    for campaign, row in funnel.items():
        table.add_row(campaign, *(_cell(row.get(step, 0)) for step in FUNNEL_STEPS))
    events = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "none yet"
    return Group(
        store_time,
        zones,
        table,
        f"adverts fed {adverts}; presence events: {events}",
        f"store beacons: {beacon_line(beacons)}",
    )


def _cell(value: object) -> str:
    """A funnel number; the suppressions (by reason) as their total."""
    return str(sum(value.values()) if isinstance(value, dict) else value)


def store_time_line(
    clock: SimulatedClock | None, layout: StoreLayout, opening_hour: int, closing_hour: int
) -> str:
    if clock is None:
        return "store time: real time (the radio)"
    local = datetime.fromtimestamp(clock.time(), ZoneInfo(layout.timezone))
    return (
        f"store time {local:%a %d %b %H:%M} ({layout.timezone}), {clock.speed:g}x real time; "
        f"open {opening_hour:02d}:00-{closing_hour:02d}:00"
    )


def best_beacon_health(reports: Iterable[FleetReport]) -> list[BeaconHealth]:
    """Each store beacon as the gateway that heard it last reports it."""
    best: dict[str, BeaconHealth] = {}
    for report in reports:
        for health in report.beacons:
            known = best.get(health.beacon)
            if known is None or (health.last_seen or 0.0) > (known.last_seen or 0.0):
                best[health.beacon] = health
    return list(best.values())


def beacon_line(beacons: Iterable[BeaconHealth]) -> str:
    return (
        ", ".join(
            f"{h.beacon} {h.status}" + (f" {h.battery_mv:,} mV" if h.battery_mv is not None else "")
            for h in beacons
        )
        or "none in the layout"
    )


def print_summary(
    console: Console,
    summary: DemoSummary,
    clock: SimulatedClock | None,
    hours: tuple[int, int],
    timezone: str,
) -> None:
    s = summary
    received = sum(len(titles) for titles in s.offers.values())
    if clock is not None:
        console.print(
            f"[bold]Store day{'s' if s.days != 1 else ''}[/]: {s.days} played at "
            f"{clock.speed:g}x ({hours[0]:02d}:00-{hours[1]:02d}:00 {timezone}), "
            f"{s.visitors} visitors; the feed fell behind its pace by at most "
            f"{s.worst_lag_s:.1f} store seconds"
        )
        seen = len(s.expected_visits) - len(s.missed_visits)
        if not s.interrupted:
            console.print(
                f"opted-in phones stopped in a zone {len(s.expected_visits)} times; "
                f"{seen} of those visits have their enter event"
            )
    console.print(
        f"[bold]Summary[/]: {s.adverts} adverts; presence events "
        f"{dict(sorted(s.presence.items()))}; {received} offers received by "
        f"{sum(1 for t in s.offers.values() if t)} of {len(s.offers)} phones, "
        f"{s.redeemed} redeemed"
    )
    for campaign, row in s.funnel.items():
        console.print(
            f"  {campaign}: triggered {row.get('triggered')}, sent {row.get('sent')}, "
            f"delivered {row.get('delivered')}, opened {row.get('opened')}, "
            f"redeemed {row.get('redeemed')}, suppressed {row.get('suppressed')}"
        )
