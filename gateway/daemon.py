"""``nahfeld gateway run``: scanner → core → offer engine → outbox → MQTT.

The imperative shell around the pure core. Everything the core and the
offer engine do happens on the asyncio loop's thread; MQTT messages arrive on
paho's thread and are handed over with ``call_soon_threadsafe``. Events go to
the outbox before anything is sent, so an uplink outage or a crash loses
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable
from typing import Literal

import sdnotify
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import ValidationError

from .ble.eid import EidMatch
from .ble.frames import EddystoneTlm
from .clock import ClockStepDetector
from .contract import (
    BeaconHealth,
    FleetReport,
    Heartbeat,
    Message,
    OfferDecisionMessage,
    PresenceEventMessage,
    ResolveRequest,
    ResolveResponse,
    Ruleset,
    StockSnapshot,
    encode,
    gateway_topic,
    store_topic,
)
from .core import GatewayCore
from .layout import StoreLayout, load_layout
from .metrics import GatewayCollector, MetricSources, serve_metrics
from .mqtt_link import MqttLink
from .offers.engine import OfferEngine, UserContext
from .offers.rules import RulesetBody
from .outbox import Outbox
from .presence.events import PresenceEvent
from .recognise import EidCache
from .scanner import Advert, Scanner, ScannerConfig, ScannerStats
from .settings import GatewaySettings

log = logging.getLogger(__name__)

RESOLVE_INTERVAL_S = 0.2
HOUSEKEEPING_INTERVAL_S = 1.0
STALE_WARN_EVERY_S = 3600.0
FLEET_INTERVAL_S = 60.0
MAX_USERS = 50_000
MAX_BEACON_ADDRESSES = 4096
BEACON_MISSING_S = 300.0
LOW_BATTERY_MV = 2500


def _new_id() -> str:
    return uuid.uuid4().hex


class Gateway:
    """One running gateway: state, wiring and the periodic jobs."""

    def __init__(
        self,
        settings: GatewaySettings,
        layout: StoreLayout,
        version: str = "",
        *,
        wall_clock: Callable[[], float] = time.time,
        monotonic_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``wall_clock`` and ``monotonic_clock`` are the machine's; a simulation running
        faster than real time (``nahfeld demo``) passes its own pair."""
        self.settings = settings
        self.layout = layout
        self.started = time.monotonic()
        self._last_beat = (self.started, 0)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(settings.data_dir / "outbox.db", max_rows=settings.outbox_max_rows)
        self.core = GatewayCore(layout, EidCache())
        self.users: dict[str, UserContext] = {}
        #: store beacon by sender address, to attribute TLM frames; never leaves the gateway
        self.beacon_by_address: dict[str, str] = {}
        self.beacon_battery: dict[str, tuple[int, float | None]] = {}
        self.stock: dict[str, int] | None = None
        self.engine: OfferEngine | None = None
        self.ruleset_cache = settings.data_dir / "ruleset.json"
        self.ruleset_received: float | None = None
        self.rejected_rulesets = 0
        self.stale_rulesets = 0
        self._stale_warned_at = float("-inf")
        self.clock_steps = ClockStepDetector()
        self.wall_clock = wall_clock
        self.monotonic_clock = monotonic_clock
        self._load_cached_ruleset()
        self.events_topic = gateway_topic(settings.store, settings.gateway, "events")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.link = MqttLink(
            settings.mqtt,
            settings.store,
            settings.gateway,
            self.outbox,
            subscriptions=[
                store_topic(settings.store, "ruleset"),
                store_topic(settings.store, "stock"),
                gateway_topic(settings.store, settings.gateway, "resolved"),
            ],
            on_message=self._from_paho,
            version=version,
            flush_interval_s=settings.flush_s,
            clock=wall_clock,
        )

    # ------------------------------------------------------------ adverts (loop thread)

    def on_advert(self, advert: Advert) -> None:
        self._check_clock(self.wall_clock(), self.monotonic_clock())
        events = self.core.on_decoded(
            advert.unix, self.settings.gateway, advert.rssi, advert.decoded
        )
        if events:
            self._handle_events(events)
        if advert.decoded.frames and self.core.beacon_last_seen:
            self._note_beacon(advert)

    def _check_clock(self, unix: float, monotonic: float) -> None:
        """On a step of the wall clock, close every open presence (at the old time) and
        start over on the new one; caps and budgets hold across it, as for any exit.
        Checked before every advert and every second, on the machine's own clocks (not
        the advert's time: a simulation feeds its own)."""
        step = self.clock_steps.step(unix, monotonic)
        if step is None:
            return
        log.warning("the wall clock stepped by %+.1f s: closing open presences", step)
        events = self.core.flush()
        if events:
            self._handle_events(events)

    def _note_beacon(self, advert: Advert) -> None:
        """Tie a store beacon's TLM to its id through the sender address (kept on the gateway)."""
        for frame in advert.decoded.frames:
            if isinstance(frame, EddystoneTlm):
                beacon = self.beacon_by_address.get(advert.address)
                if beacon is not None:
                    self.beacon_battery[beacon] = (frame.voltage_mv, frame.temperature_c)
            else:
                beacon = self.core.beacons.match(frame)
                if beacon is not None and len(self.beacon_by_address) < MAX_BEACON_ADDRESSES:
                    self.beacon_by_address[advert.address] = beacon

    def fleet_report(self, now: float) -> FleetReport:
        """Every registered store beacon: last seen, battery from TLM, and a verdict."""
        beacons = []
        for beacon in self.layout.beacons:
            last_seen = self.core.beacon_last_seen.get(beacon.id)
            battery, temperature = self.beacon_battery.get(beacon.id, (None, None))
            status: Literal["ok", "missing", "low_battery"] = "ok"
            if last_seen is None or now - last_seen > BEACON_MISSING_S:
                status = "missing"
            elif battery is not None and battery < LOW_BATTERY_MV:
                status = "low_battery"
            beacons.append(
                BeaconHealth(
                    beacon=beacon.id,
                    last_seen=last_seen,
                    battery_mv=battery,
                    temperature_c=temperature,
                    status=status,
                )
            )
        return FleetReport(
            store=self.settings.store, gateway=self.settings.gateway, ts=now, beacons=beacons
        )

    def publish_fleet(self) -> None:
        if not self.layout.beacons:
            return
        report = self.fleet_report(self.wall_clock())
        for beacon in report.beacons:
            if beacon.status != "ok":
                log.warning("store beacon %s: %s", beacon.beacon, beacon.status)
        topic = gateway_topic(self.settings.store, self.settings.gateway, "fleet")
        self.link.publish_now(topic, encode(report))

    def _handle_events(self, events: list[PresenceEvent]) -> None:
        rows: list[tuple[str, str, bytes, float | None]] = []
        for event in events:
            message = PresenceEventMessage(
                event_id=_new_id(),
                store=self.settings.store,
                gateway=self.settings.gateway,
                zone=event.zone,
                token=event.device,
                type=event.type,
                ts=event.ts,
                dwell_s=event.dwell_s,
            )
            rows.append((message.event_id, self.events_topic, encode(message), None))
            if self.engine is not None:
                rows.append(self._decide(event, message.event_id))
        self.outbox.put_many(rows, now=self.wall_clock())
        self.link.notify()

    def _decide(
        self, event: PresenceEvent, trigger_id: str
    ) -> tuple[str, str, bytes, float | None]:
        assert self.engine is not None
        user = self.users.get(event.device, UserContext(event.device))
        decision = self.engine.decide(event, user, self.stock)
        rule = decision.rule
        message = OfferDecisionMessage(
            event_id=_new_id(),
            trigger_event_id=trigger_id,
            store=self.settings.store,
            gateway=self.settings.gateway,
            zone=event.zone,
            token=event.device,
            ts=event.ts,
            campaign=rule.campaign if rule else None,
            offer=rule.offer if rule else None,
            rule=rule.id if rule else None,
            suppressed=decision.suppressed,
            expires_at=decision.expires_at,
        )
        return (message.event_id, self.events_topic, encode(message), decision.expires_at)

    # ------------------------------------------------------------ MQTT messages

    def _from_paho(self, topic: str, message: Message | None) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.on_message, topic, message)

    def on_message(self, topic: str, message: Message | None) -> None:
        if message is None:
            self._withdrawn(topic)
        elif isinstance(message, ResolveResponse):
            self._learn(message)
        elif isinstance(message, Ruleset):
            self._apply_ruleset(message, persist=True)
        elif isinstance(message, StockSnapshot):
            self.stock = dict(message.in_stock)

    def _learn(self, response: ResolveResponse) -> None:
        for item in response.resolved:
            self.core.eids.learn(item.eid, EidMatch(item.token, item.valid_until))
            if item.next_eid is not None and item.next_valid_until is not None:
                self.core.eids.learn(item.next_eid, EidMatch(item.token, item.next_valid_until))
            if len(self.users) < MAX_USERS or item.token in self.users:
                self.users[item.token] = UserContext(item.token, frozenset(item.segments))
        for token in response.revoked_tokens:
            self.users.pop(token, None)
            self.core.eids.forget_token(token)

    def _withdrawn(self, topic: str) -> None:
        """The cloud deleted the store: no rules, no stock, until a new ruleset arrives."""
        if topic == store_topic(self.settings.store, "ruleset"):
            self.engine = None
            self.ruleset_cache.unlink(missing_ok=True)
            log.warning("the store's ruleset was withdrawn; no offers until a new one arrives")
        elif topic == store_topic(self.settings.store, "stock"):
            self.stock = None

    def _apply_ruleset(self, ruleset: Ruleset, persist: bool) -> None:
        if ruleset.store != self.settings.store:
            # only the broker's ACL keeps other stores' rulesets off this topic: check anyway
            self.rejected_rulesets += 1
            log.error(
                "ruleset v%s refused: it is for store %r, this gateway is in %r",
                ruleset.version,
                ruleset.store,
                self.settings.store,
            )
            return
        current = self.engine.ruleset.version if self.engine is not None else 0
        if ruleset.version < current:
            # two API processes may publish out of order; the older one must not win
            self.stale_rulesets += 1
            log.info("ruleset v%s ignored: v%s is newer", ruleset.version, current)
            return
        try:
            body = RulesetBody.model_validate(
                {
                    "store": ruleset.store,
                    "version": ruleset.version,
                    "timezone": ruleset.timezone,
                    "rules": ruleset.rules,
                }
            )
        except ValidationError as exc:
            self.rejected_rulesets += 1
            log.error("ruleset v%s refused, keeping the previous one: %s", ruleset.version, exc)
            return
        if self.engine is None:
            thresholds = self.core.tracker.params.dwell_thresholds_s
            self.engine = OfferEngine(body, dwell_thresholds_s=thresholds)
        else:
            self.engine.apply(body)
        for rule in self.engine.unreachable:
            log.warning(
                "rule %s waits for a dwell longer than this store's longest dwell threshold "
                "(%g s, layout's dwell_thresholds_s): it cannot fire",
                rule,
                max(self.engine.dwell_thresholds_s, default=0),
            )
        self.ruleset_received = self.wall_clock()
        log.info("ruleset v%s applied: %d rules", body.version, len(body.rules))
        if persist:
            tmp = self.ruleset_cache.with_suffix(".tmp")
            tmp.write_bytes(encode(ruleset))
            tmp.replace(self.ruleset_cache)  # atomic: a reboot finds the old or the new one

    def _load_cached_ruleset(self) -> None:
        if not self.ruleset_cache.exists():
            return
        try:
            cached = Ruleset.model_validate_json(self.ruleset_cache.read_bytes())
        except (ValidationError, OSError) as exc:
            log.warning("cached ruleset %s unusable: %s", self.ruleset_cache, exc)
            return
        self._apply_ruleset(cached, persist=False)

    # ------------------------------------------------------------ periodic jobs (loop thread)

    def resolve_pending(self) -> None:
        eids = self.core.eids.take_pending()
        for start in range(0, len(eids), 512):
            request = ResolveRequest(
                request_id=_new_id(),
                store=self.settings.store,
                gateway=self.settings.gateway,
                ts=self.wall_clock(),
                eids=eids[start : start + 512],
            )
            topic = gateway_topic(self.settings.store, self.settings.gateway, "resolve")
            self.link.publish_now(topic, encode(request))

    def heartbeat(self) -> None:
        now_mono, adverts = time.monotonic(), self.core.stats.adverts
        last_mono, last_adverts = self._last_beat
        self._last_beat = (now_mono, adverts)
        rate = (adverts - last_adverts) / max(now_mono - last_mono, 1e-6)
        beat = Heartbeat(
            store=self.settings.store,
            gateway=self.settings.gateway,
            ts=self.wall_clock(),
            uptime_s=time.monotonic() - self.started,
            adverts_per_s=round(rate, 1),
            devices_tracked=self.core.tracker.tracked,
            outbox_depth=len(self.outbox),
            ruleset_version=self.engine.ruleset.version if self.engine else None,
        )
        topic = gateway_topic(self.settings.store, self.settings.gateway, "heartbeat")
        self.link.publish_now(topic, encode(beat), qos=0)

    def housekeeping(self) -> None:
        now = self.wall_clock()
        self._check_clock(now, self.monotonic_clock())
        self.core.eids.expire(now)
        events = self.core.advance(now)  # dwell thresholds and silent exits need no advert
        if events:
            self._handle_events(events)
        self._warn_if_stale(now)

    def _warn_if_stale(self, now: float) -> None:
        """The cloud republishes every ruleset every few hours (``ruleset_refresh_s``), so
        one older than ``ruleset_stale_s`` means it is not reaching this gateway: said
        once an hour, not on every housekeeping round."""
        if self.ruleset_received is None:
            return
        age = now - self.ruleset_received
        stale = age > self.settings.ruleset_stale_s
        if not stale or now - self._stale_warned_at < STALE_WARN_EVERY_S:
            return
        self._stale_warned_at = now
        log.warning(
            "ruleset is %.0f s old: is the cloud reachable? (it republishes every store's "
            "ruleset every few hours)",
            age,
        )

    def metric_sources(self, scanner: ScannerStats | None = None) -> MetricSources:
        return (
            self.core.stats,
            scanner,
            self.link.stats,
            self.outbox.stats,
            len(self.outbox),
            self.core.tracker.tracked,
            self.rejected_rulesets,
        )

    def stats(self) -> dict[str, object]:
        return {
            "core": self.core.stats.as_dict(),
            "outbox": len(self.outbox),
            "link": str(self.link.stats),
            "rejected_rulesets": self.rejected_rulesets,
        }


async def run_gateway(
    settings: GatewaySettings,
    version: str = "",
    notify: Callable[[str], None] = lambda state: None,
) -> None:
    """Run until SIGTERM/SIGINT; ``notify`` receives systemd states (READY=1, WATCHDOG=1…)."""
    layout = load_layout(settings.layout)
    gateway = Gateway(settings, layout, version)
    loop = asyncio.get_running_loop()
    gateway.loop = loop
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    scanner = Scanner(
        ScannerConfig(
            adapter=settings.scanner.adapter,
            passive=settings.scanner.passive,
            silence_timeout_s=settings.scanner.silence_timeout_s,
        ),
        gateway.on_advert,
    )
    serve_metrics(
        GatewayCollector(lambda: gateway.metric_sources(scanner.stats)), settings.metrics_port
    )
    scheduler = AsyncIOScheduler(event_loop=loop)
    scheduler.add_job(gateway.resolve_pending, "interval", seconds=RESOLVE_INTERVAL_S)
    scheduler.add_job(gateway.heartbeat, "interval", seconds=settings.heartbeat_s)
    scheduler.add_job(gateway.housekeeping, "interval", seconds=HOUSEKEEPING_INTERVAL_S)
    scheduler.add_job(gateway.publish_fleet, "interval", seconds=FLEET_INTERVAL_S)
    scheduler.add_job(lambda: notify("WATCHDOG=1"), "interval", seconds=5.0)
    gateway.link.start()
    scheduler.start()
    scan = asyncio.create_task(scanner.run(stop))
    notify("READY=1")
    log.info(
        "gateway %s/%s running: %d zone(s), adapter %s, broker %s:%s",
        settings.store,
        settings.gateway,
        len(layout.zones),
        settings.scanner.adapter,
        settings.mqtt.host,
        settings.mqtt.port,
    )
    await stop.wait()
    notify("STOPPING=1")
    log.info("stopping: %s", json.dumps(gateway.stats(), default=str))
    scheduler.shutdown(wait=False)
    with contextlib.suppress(asyncio.CancelledError):
        await scan
    gateway.link.stop()
    gateway.outbox.close()


def systemd_notifier() -> Callable[[str], None]:
    """sd_notify when run by systemd (NOTIFY_SOCKET set), otherwise a no-op."""
    if "NOTIFY_SOCKET" not in os.environ:
        return lambda state: None
    notifier = sdnotify.SystemdNotifier()
    return notifier.notify  # type: ignore[no-any-return]
