"""`nahfeld demo`: broker, cloud, gateways and phones in one process, on simulated radio.

The parts are the real ones, wired as in a store: the cloud API (uvicorn, on
SQLite in a temporary directory) with its ruleset publisher, one cloud worker
(resolver and ingestion), the store's gateways (the daemon's own ``Gateway``
with its SQLite outbox and MQTT link), and reference app clients that opted in
through the app API. Only the radio is simulated: a scripted store day
(``gateway.sim.day``: opening to closing, visitors along a traffic curve) in
which the opted-in phones advertise the EIDs their app computes, beside
anonymous phones, EID phones of an app the store does not know and the store's
beacons with their telemetry; each advert is handed to the gateway that heard
it. The day runs ``speed`` times faster than real time on a
``SimulatedClock`` that the gateways and the cloud worker both read, so dwell
times, EID rotation, offer expiry and daily caps all happen in store time.
Offers reach the phones over MQTT and are printed as they arrive; a live view
shows the store's time, presence per zone, the funnel and the store beacons.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from rich.console import Console, Group
from rich.live import Live

from cloud.api.app import create_app
from cloud.db.engine import make_engine, make_sessionmaker
from cloud.db.migrate import upgrade
from cloud.resolver.tokens import install_of_token
from cloud.resolver.worker import ADVANCE_EVERY_S
from cloud.services.auth import Role, bootstrap_api_key
from cloud.services.installs import token_secret
from cloud.settings import CloudSettings
from cloud.worker import build_worker
from gateway.ble.decode import Decoded, decode_ad
from gateway.contract import (
    OfferPush,
    store_topic,
)
from gateway.daemon import HOUSEKEEPING_INTERVAL_S, RESOLVE_INTERVAL_S, Gateway
from gateway.layout import StoreLayout, load_layout
from gateway.mqtt_session import MqttProtocol, new_client
from gateway.presence.events import PresenceEvent
from gateway.scanner import Advert, Scanner, ScannerConfig
from gateway.settings import GatewaySettings, MqttSettings
from gateway.sim.clock import SimulatedClock
from gateway.sim.day import DAY_S, HOUR_S, SimulatedHour, check_visits, store_day
from gateway.sim.store import SimRecord

from .app_client import AppClient
from .broker import EmbeddedBroker, free_port
from .scenario import CAMPAIGNS, TENANT, seed
from .view import (
    DemoSummary,
    PresenceBoard,
    best_beacon_health,
    live_view,
    print_summary,
    store_time_line,
)

log = logging.getLogger(__name__)

DEFAULT_LAYOUT = Path("firmware-config/stores/demo-store/layout.toml")
#: an advert this close to its time (real seconds) is fed without sleeping
FEED_SLACK_S = 0.005
#: adverts fed between two chances for the event loop's other work when behind
FEED_YIELD_EVERY = 200
#: the gateways' ruleset_stale_s: store days go by faster than the cloud's ruleset
#: refresh (hours of real time), and the cloud in this process cannot become unreachable
RULESET_NEVER_STALE_S = 365 * 86_400.0
#: decoded payloads kept (phones and beacons repeat theirs; TLM frames never do)
DECODED_CACHE = 4096


def _has_ruleset(gateway: Gateway) -> bool:
    return gateway.engine is not None


def _records_of(hour: SimulatedHour) -> list[SimRecord]:
    return list(hour.sim.records())


@dataclass(frozen=True, slots=True)
class DemoOptions:
    layout: Path = DEFAULT_LAYOUT
    #: the store's opening hours (local time, whole hours): the day that is replayed
    opening_hour: int = 8
    closing_hour: int = 20
    #: simulated seconds per real second (300: a 12-hour day in 2 minutes 24)
    speed: float = 300.0
    #: opted-in app users, each visiting once a day
    phones: int = 6
    #: visitors a day without the app, and with another app's EIDs
    anonymous_phones: int = 240
    stranger_phones: int = 4
    forever: bool = False
    live: bool = True
    #: "host:port" of a broker that speaks MQTT 5 (Mosquitto); None: the embedded one
    broker: str | None = None
    #: the layout's first gateway listens to this machine's real radio (bleak on BlueZ)
    #: in real time, for ``duration_s``, instead of the simulated day
    ble: bool = False
    duration_s: float = 150.0
    seed: int = 7


def first_day(now: float, timezone: str, opening_hour: int) -> float:
    """Midnight (unix time) of the next day the store opens: today if it has not
    opened yet, else tomorrow. Offers are valid into the future, so the till can
    redeem them while the day plays."""
    zone = ZoneInfo(timezone)
    local = datetime.fromtimestamp(now, zone)
    day = local.date() if local.hour < opening_hour else local.date() + timedelta(days=1)
    return datetime.combine(day, datetime.min.time(), zone).timestamp()


class Demo:
    def __init__(self, options: DemoOptions, console: Console | None = None) -> None:
        self.options = options
        self.console = console or Console()
        self.layout: StoreLayout = load_layout(options.layout)
        self.summary = DemoSummary()
        self.gateways: dict[str, Gateway] = {}
        self.apps: list[AppClient] = []
        self._decoded: dict[bytes, Decoded] = {}
        self._funnel: dict[str, dict[str, object]] = {}
        self._token_secret: bytes | None = None
        self.midnight = first_day(time.time(), self.layout.timezone, options.opening_hour)
        #: store time; None with ``ble`` (the real radio lives in real time)
        self.clock: SimulatedClock | None = None
        if not options.ble:
            if not 0 <= options.opening_hour < options.closing_hour <= 24:
                raise ValueError(
                    f"opening hours {options.opening_hour}-{options.closing_hour}: "
                    "need 0 <= opening < closing <= 24"
                )
            self.clock = SimulatedClock(
                self.midnight + options.opening_hour * HOUR_S, options.speed
            )

    # ------------------------------------------------------------ the parts

    @contextmanager
    def _broker(self) -> Iterator[tuple[str, int, MqttProtocol]]:
        if self.options.broker:
            host, _, port = self.options.broker.rpartition(":")
            self._withdraw_retained(host or "127.0.0.1", int(port))
            yield host or "127.0.0.1", int(port), "5"
            return
        broker = EmbeddedBroker()
        broker.start()
        try:
            yield broker.host, broker.port, "3.1.1"
        finally:
            broker.stop()

    def _withdraw_retained(self, host: str, port: int) -> None:
        """A broker kept from an earlier run holds that run's ruleset, at a version this
        run's new database will only reach later: start the store's topics afresh."""
        client = new_client("demo-reset", "5", persistent=False)
        client.connect(host, port)
        client.loop_start()
        for channel in ("ruleset", "stock"):
            topic = store_topic(self.layout.store, channel)
            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()

    @contextmanager
    def _api(self, settings: CloudSettings) -> Iterator[str]:
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, publish=True),
                host="127.0.0.1",
                port=port,
                log_level="warning",
            )
        )
        thread = threading.Thread(target=server.run, name="cloud-api", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the cloud API did not start")
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(10)

    def run(self) -> DemoSummary:
        with tempfile.TemporaryDirectory(prefix="nahfeld-demo-") as tmp, ExitStack() as stack:
            work = Path(tmp)
            host, port, protocol = stack.enter_context(self._broker())
            url = f"sqlite:///{work / 'cloud.db'}"
            upgrade(url)
            engine = make_engine(url)
            stack.callback(engine.dispose)
            settings = CloudSettings(
                database_url=url,
                mqtt_host=host,
                mqtt_port=port,
                mqtt_username=None,
                mqtt_protocol=protocol,
                mqtt_session_expiry_s=0,
            )
            with make_sessionmaker(engine)() as session:
                admin_key = bootstrap_api_key(session, TENANT, Role.ADMIN, "demo")[1]
                self._token_secret = token_secret(session, settings.secret_bytes())
            base_url = stack.enter_context(self._api(settings))
            http = stack.enter_context(httpx.Client(base_url=base_url, timeout=10))
            seed(http, admin_key, self.layout)
            worker = build_worker(
                settings,
                name="demo",
                clock=self.clock.time if self.clock else time.time,
                advance_every_s=self._real_interval(ADVANCE_EVERY_S, 0.5),
            )
            worker.start()
            stack.callback(worker.stop)
            self._start_apps(http, admin_key, host, port, protocol)
            stack.callback(self._close_apps)
            self._make_gateways(work, host, port, protocol)
            stack.callback(self._stop_gateways)
            board = PresenceBoard(host, port, protocol)
            stack.callback(board.close)
            self.console.print(
                f"[bold]Nahfeld demo[/]: cloud at {base_url}, broker {host}:{port} "
                f"(MQTT {protocol}), store {self.layout.store} with "
                f"{len(self.gateways)} gateways, {len(self.apps)} opted-in phones, "
                f"{self.options.anonymous_phones} anonymous visitors a day"
            )
            try:
                asyncio.run(self._play(http, admin_key, board))
            except KeyboardInterrupt:  # --forever's way to stop: still the summary
                self.summary.interrupted = True
                self.console.print("stopped (Ctrl-C)")
            self.summary.presence = board.snapshot()[1]
            self.summary.funnel = self._read_funnel(http, admin_key)
        self._print_summary()
        return self.summary

    def _start_apps(
        self, http: httpx.Client, admin_key: str, host: str, port: int, protocol: MqttProtocol
    ) -> None:
        for n in range(self.options.phones):
            app = AppClient(http, TENANT, f"phone-{n + 1}")
            app.opt_in()

            def shown(offer: OfferPush, app: AppClient = app) -> None:
                self._on_offer(http, admin_key, app, offer)

            app.listen(host, port, protocol=protocol, on_offer=shown)
            self.summary.offers[app.install_id] = []
            self.apps.append(app)

    def _on_offer(
        self, http: httpx.Client, admin_key: str, app: AppClient, offer: OfferPush
    ) -> None:
        """The phone shows the offer, the shopper opens it; every other one is redeemed at
        the till (the POS calls the redeem endpoint with the store's key)."""
        self.summary.offers[app.install_id].append(offer.title)
        self.console.print(f"  [green]{app.install_id}[/] received: [bold]{offer.title}[/]")
        try:
            app.opened(offer)
            if len(self.summary.offers[app.install_id]) % 2 == 1:
                response = http.post(
                    f"/v1/deliveries/{offer.delivery_id}/redeem",
                    headers={"Authorization": f"Bearer {admin_key}"},
                )
                if response.is_success:
                    self.summary.redeemed += 1
        except httpx.HTTPError as exc:
            log.warning("opening or redeeming %s failed: %s", offer.delivery_id, exc)

    def _close_apps(self) -> None:
        for app in self.apps:
            app.close()

    def _make_gateways(self, work: Path, host: str, port: int, protocol: MqttProtocol) -> None:
        """The gateways, not yet connected: their link starts once the event loop their
        MQTT messages are handed to runs (see :meth:`_play`)."""
        for spec in self.layout.gateways:
            settings = GatewaySettings(
                store=self.layout.store,
                gateway=spec.id,
                layout=self.options.layout,
                data_dir=work / spec.id,
                mqtt=MqttSettings(host=host, port=port, protocol=protocol),
                flush_s=0.1,
                ruleset_stale_s=RULESET_NEVER_STALE_S,
            )
            clock = self.clock
            self.gateways[spec.id] = Gateway(
                settings,
                self.layout,
                version="demo",
                wall_clock=clock.time if clock else time.time,
                monotonic_clock=clock.monotonic if clock else time.monotonic,
            )

    def _stop_gateways(self) -> None:
        for gateway in self.gateways.values():
            gateway.link.stop()
            gateway.outbox.close()

    # ------------------------------------------------------------ the store's day

    def _real_interval(self, store_s: float, floor_s: float) -> float:
        """A periodic job's interval in real seconds: the daemon's interval in store time,
        but no more often than ``floor_s`` (at 300x a store second lasts 3 ms)."""
        speed = self.clock.speed if self.clock else 1.0
        return max(floor_s, store_s / speed)

    async def _play(self, http: httpx.Client, admin_key: str, board: PresenceBoard) -> None:
        loop = asyncio.get_running_loop()
        for gateway in self.gateways.values():
            # one after another: amqtt 0.12 walks its subscriptions, awaiting, as a client
            # connects, and fails that connection if another client subscribes meanwhile
            gateway.loop = loop
            gateway.link.start()
            if not await self._until(partial(_has_ruleset, gateway), 15):
                raise RuntimeError(
                    f"{gateway.settings.gateway} got no ruleset from the cloud within 15 s"
                )
        jobs = [
            asyncio.create_task(
                self._every(self._real_interval(RESOLVE_INTERVAL_S, 0.02), self._resolve)
            ),
            asyncio.create_task(
                self._every(self._real_interval(HOUSEKEEPING_INTERVAL_S, 0.05), self._housekeeping)
            ),
        ]
        live = Live(self._view(board), console=self.console, refresh_per_second=4)
        if self.options.live:
            live.start()
            jobs.append(
                asyncio.create_task(
                    self._every(0.5, lambda: self._refresh(live, http, admin_key, board))
                )
            )
        try:
            if self.clock is None:
                await self._listen_to_the_radio()
            else:
                await self._play_days(self.clock)
            # the last offers: outboxes drain, the worker decides, the phones receive
            await self._until(lambda: all(len(g.outbox) == 0 for g in self.gateways.values()), 10)
            await asyncio.sleep(2.0)
        finally:
            for job in jobs:
                job.cancel()
            if self.options.live:
                self._refresh(live, http, admin_key, board)
                live.stop()
        if self.clock is not None:  # not reached when interrupted: a day half played
            seen = self._by_install(board.history())
            self.summary.missed_visits = check_visits(self.summary.expected_visits, seen)[0]

    def _by_install(self, events: list[PresenceEvent]) -> list[PresenceEvent]:
        """The events with each store token opened to the install it stands for, as only
        the cloud (which holds the token key) can: to check them against the script."""
        assert self._token_secret is not None
        store = self.layout.store
        return [
            replace(e, device=install_of_token(self._token_secret, store, e.device) or e.device)
            for e in events
        ]

    async def _play_days(self, clock: SimulatedClock) -> None:
        """The store's day, opening to closing, and with ``forever`` the next one (the
        night skipped)."""
        options = self.options
        identities = [app.eid_identity() for app in self.apps]
        open_hours = range(options.opening_hour, options.closing_hour)
        midnight = self.midnight
        while True:
            day = store_day(
                self.layout,
                identities,
                midnight,
                open_hours,
                options.seed + self.summary.days,
                anonymous=options.anonymous_phones,
                strangers=options.stranger_phones,
                open_hours=open_hours,
            )
            await self._play_day(clock, list(day))
            self.summary.days += 1
            if not options.forever:
                return
            midnight += DAY_S
            clock.skip_to(midnight + options.opening_hour * HOUR_S)

    async def _play_day(self, clock: SimulatedClock, hours: list[SimulatedHour]) -> None:
        """Each hour's adverts are simulated on a worker thread while the hour before
        is being played."""
        upcoming = asyncio.create_task(asyncio.to_thread(_records_of, hours[0]))
        for n, hour in enumerate(hours):
            records = await upcoming
            if n + 1 < len(hours):
                upcoming = asyncio.create_task(asyncio.to_thread(_records_of, hours[n + 1]))
            self.summary.visitors += hour.phones
            self.summary.expected_visits.extend(hour.expected)
            await self._feed(clock, records)
        closing = hours[-1].sim.start + HOUR_S
        await asyncio.sleep(max(0.0, clock.real_seconds_until(closing)))
        clock.reach(closing)

    async def _feed(self, clock: SimulatedClock, records: list[SimRecord]) -> None:
        """Hand each advert to its gateway when store time reaches it."""
        for n, record in enumerate(records):
            wait = clock.real_seconds_until(record.ts)
            if wait > FEED_SLACK_S:
                await asyncio.sleep(wait)
            elif n % FEED_YIELD_EVERY == 0:
                # behind or on time: still let the MQTT messages and jobs in
                self.summary.worst_lag_s = max(self.summary.worst_lag_s, -wait * clock.speed)
                await asyncio.sleep(0)
            decoded = self._decoded.get(record.ad)
            if decoded is None:
                decoded = decode_ad(record.ad)
                if len(self._decoded) < DECODED_CACHE:  # TLM frames are all different
                    self._decoded[record.ad] = decoded
            advert = Advert(time.monotonic(), record.ts, record.address, record.rssi, decoded)
            clock.reach(record.ts)
            self.gateways[record.gateway].on_advert(advert)
            self.summary.adverts += 1

    async def _listen_to_the_radio(self) -> None:
        """The real radio for the layout's first gateway, for the duration (or until Ctrl-C
        with ``--forever``). Shows each opted-in phone's identity, so a programmable
        Eddystone-EID beacon (or a phone) can be set up to advertise as that phone."""
        spec = self.layout.gateways[0]
        gateway = self.gateways[spec.id]
        for app in self.apps:
            identity = app.eid_identity()
            self.console.print(
                f"  {app.install_id}: Eddystone-EID identity key {identity.identity_key.hex()}, "
                f"K={identity.exponent}"
            )
        self.console.print(f"listening on {spec.adapter} as {spec.id} (the real radio)")
        stop = asyncio.Event()
        config = ScannerConfig(adapter=spec.adapter, passive=spec.passive)
        scanner = Scanner(config, gateway.on_advert)
        scanning = asyncio.create_task(scanner.run(stop))
        try:
            if self.options.forever:
                await asyncio.Event().wait()  # until Ctrl-C cancels the demo
            await asyncio.sleep(self.options.duration_s)
        finally:
            stop.set()
            await scanning
        self.summary.adverts = scanner.stats.adverts

    def _resolve(self) -> None:
        for gateway in self.gateways.values():
            gateway.resolve_pending()

    def _housekeeping(self) -> None:
        for gateway in self.gateways.values():
            gateway.housekeeping()

    @staticmethod
    async def _every(interval_s: float, job: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                job()
            except Exception:  # a demo view must not stop the store
                log.exception("a periodic demo job failed")

    @staticmethod
    async def _until(condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    # ------------------------------------------------------------ what is shown

    def _read_funnel(self, http: httpx.Client, admin_key: str) -> dict[str, dict[str, object]]:
        headers = {"Authorization": f"Bearer {admin_key}"}
        funnel: dict[str, dict[str, object]] = {}
        for campaign in CAMPAIGNS:
            response = http.get("/v1/funnel", params={"campaign": campaign["id"]}, headers=headers)
            if response.is_success:
                funnel[campaign["id"]] = response.json()
        return funnel

    def _refresh(
        self, live: Live, http: httpx.Client, admin_key: str, board: PresenceBoard
    ) -> None:
        self._funnel = self._read_funnel(http, admin_key)
        live.update(self._view(board))

    def _view(self, board: PresenceBoard) -> Group:
        now = self.clock.time() if self.clock else time.time()
        present, counts = board.snapshot()
        return live_view(
            self.layout,
            present,
            counts,
            self._funnel,
            self.summary.adverts,
            store_time_line(
                self.clock, self.layout, self.options.opening_hour, self.options.closing_hour
            ),
            best_beacon_health(g.fleet_report(now) for g in self.gateways.values()),
        )

    def _print_summary(self) -> None:
        hours = (self.options.opening_hour, self.options.closing_hour)
        print_summary(self.console, self.summary, self.clock, hours, self.layout.timezone)
