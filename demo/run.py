"""`nahfeld demo`: broker, cloud, gateways and phones in one process, on simulated radio.

The parts are the real ones, wired as in a store: the cloud API (uvicorn, on
SQLite in a temporary directory) with its ruleset publisher, one cloud worker
(resolver and ingestion), the store's gateways (the daemon's own ``Gateway``
with its SQLite outbox and MQTT link), and reference app clients that opted in
through the app API. Only the radio is simulated: a scripted store visit
(``gateway.sim.store``) in which the opted-in phones advertise the EIDs their
app computes, beside anonymous phones, an EID app the store does not know and
the store's own beacons; each advert is handed to the gateway that heard it,
in real time. Offers reach the phones over MQTT and are printed as they
arrive; a live view shows presence per zone and the funnel.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import uvicorn
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from cloud.api.app import create_app
from cloud.db.engine import make_engine, make_sessionmaker
from cloud.db.migrate import upgrade
from cloud.services.auth import Role, bootstrap_api_key
from cloud.settings import CloudSettings
from cloud.worker import build_worker
from gateway.ble.decode import Decoded, decode_ad
from gateway.contract import (
    ROOT,
    ContractError,
    OfferPush,
    PresenceEventMessage,
    parse_message,
    store_topic,
)
from gateway.daemon import RESOLVE_INTERVAL_S, Gateway
from gateway.layout import StoreLayout, load_layout
from gateway.mqtt_session import MqttProtocol, new_client
from gateway.scanner import Advert, Scanner, ScannerConfig
from gateway.settings import GatewaySettings, MqttSettings
from gateway.sim.store import SimRecord, StoreSimulation

from .app_client import AppClient
from .broker import EmbeddedBroker, free_port
from .scenario import CAMPAIGNS, TENANT, seed

log = logging.getLogger(__name__)

DEFAULT_LAYOUT = Path("firmware-config/stores/demo-store/layout.toml")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    layout: Path = DEFAULT_LAYOUT
    duration_s: float = 150.0
    phones: int = 4
    anonymous_phones: int = 6
    stranger_phones: int = 1
    forever: bool = False
    live: bool = True
    #: "host:port" of a broker that speaks MQTT 5 (Mosquitto); None: the embedded one
    broker: str | None = None
    #: the layout's first gateway listens to this machine's real radio (bleak on BlueZ)
    #: instead of the simulation; the others stay silent
    ble: bool = False
    seed: int = 7


@dataclass(slots=True)
class DemoSummary:
    adverts: int = 0
    presence: Counter[str] = field(default_factory=Counter)
    offers: dict[str, list[str]] = field(default_factory=dict)
    redeemed: int = 0
    funnel: dict[str, dict[str, object]] = field(default_factory=dict)


class PresenceBoard:
    """Who is in which zone, read off the gateways' presence events on the broker (as a
    store dashboard would: pseudonymous tokens only)."""

    def __init__(self, host: str, port: int, protocol: MqttProtocol) -> None:
        self.zones: dict[str, set[str]] = {}
        self.counts: Counter[str] = Counter()
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
        with self._lock:
            self.counts[message.type] += 1
            present = self.zones.setdefault(message.zone, set())
            if message.type == "exit":
                present.discard(message.token)
            else:
                present.add(message.token)

    def snapshot(self) -> tuple[dict[str, int], Counter[str]]:
        with self._lock:
            return {zone: len(tokens) for zone, tokens in self.zones.items()}, Counter(self.counts)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


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
            with make_sessionmaker(engine)() as session:
                admin_key = bootstrap_api_key(session, TENANT, Role.ADMIN, "demo")[1]
            settings = CloudSettings(
                database_url=url,
                mqtt_host=host,
                mqtt_port=port,
                mqtt_username=None,
                mqtt_protocol=protocol,
                mqtt_session_expiry_s=0,
            )
            base_url = stack.enter_context(self._api(settings))
            http = stack.enter_context(httpx.Client(base_url=base_url, timeout=10))
            seed(http, admin_key, self.layout)
            worker = build_worker(settings, name="demo")
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
                f"{self.options.anonymous_phones} anonymous"
            )
            asyncio.run(self._play(http, admin_key, board))
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
            )
            self.gateways[spec.id] = Gateway(settings, self.layout, version="demo")

    def _stop_gateways(self) -> None:
        for gateway in self.gateways.values():
            gateway.link.stop()
            gateway.outbox.close()

    # ------------------------------------------------------------ the store's day

    def _simulation(self, start: float, round_: int) -> list[SimRecord]:
        identities = [app.eid_identity() for app in self.apps]
        sim = StoreSimulation(
            self.layout,
            identities,
            start=start,
            duration_s=self.options.duration_s,
            anonymous_phones=self.options.anonymous_phones,
            stranger_eid_phones=self.options.stranger_phones,
            seed=self.options.seed + round_,
        )
        return list(sim.records())

    async def _play(self, http: httpx.Client, admin_key: str, board: PresenceBoard) -> None:
        loop = asyncio.get_running_loop()
        for gateway in self.gateways.values():
            gateway.loop = loop
            gateway.link.start()
        if not await self._until(
            lambda: all(g.engine is not None for g in self.gateways.values()), 15
        ):
            raise RuntimeError("the gateways got no ruleset from the cloud within 15 s")
        jobs = [asyncio.create_task(self._every(RESOLVE_INTERVAL_S, self._resolve))]
        jobs.append(asyncio.create_task(self._every(1.0, self._housekeeping)))
        live = Live(self._view(board), console=self.console, refresh_per_second=2)
        if self.options.live:
            live.start()
            jobs.append(
                asyncio.create_task(
                    self._every(1.0, lambda: self._refresh(live, http, admin_key, board))
                )
            )
        try:
            if self.options.ble:
                await self._listen_to_the_radio()
            round_ = 0
            while not self.options.ble:
                start = time.time() + 0.5
                await self._feed(self._simulation(start, round_))
                round_ += 1
                if not self.options.forever:
                    break
            # the last offers: outboxes drain, the worker decides, the phones receive
            await self._until(lambda: all(len(g.outbox) == 0 for g in self.gateways.values()), 10)
            await asyncio.sleep(2.0)
        finally:
            for job in jobs:
                job.cancel()
            if self.options.live:
                self._refresh(live, http, admin_key, board)
                live.stop()

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

    async def _feed(self, records: list[SimRecord]) -> None:
        for record in records:
            delay = record.ts - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            decoded = self._decoded.get(record.ad)
            if decoded is None:
                decoded = self._decoded.setdefault(record.ad, decode_ad(record.ad))
            advert = Advert(time.monotonic(), record.ts, record.address, record.rssi, decoded)
            self.gateways[record.gateway].on_advert(advert)
            self.summary.adverts += 1

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
        present, counts = board.snapshot()
        zones = Table(title="presence per zone (opted-in app users)")
        zones.add_column("zone")
        zones.add_column("now", justify="right")
        for zone in self.layout.zones:
            zones.add_row(zone.id, str(present.get(zone.id, 0)))
        funnel = Table(title="funnel")
        for column in ("campaign", "triggered", "suppressed", "sent", "delivered", "opened"):
            funnel.add_column(column, justify="right" if column != "campaign" else "left")
        funnel.add_column("redeemed", justify="right")
        for campaign, row in self._funnel.items():
            suppressed = row.get("suppressed")
            suppressed_total = sum(suppressed.values()) if isinstance(suppressed, dict) else 0
            funnel.add_row(
                campaign,
                *(str(row.get(k, 0)) for k in ("triggered",)),
                str(suppressed_total),
                *(str(row.get(k, 0)) for k in ("sent", "delivered", "opened", "redeemed")),
            )
        events = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "none yet"
        return Group(
            zones, funnel, f"adverts fed {self.summary.adverts}; presence events: {events}"
        )

    def _print_summary(self) -> None:
        s = self.summary
        received = sum(len(titles) for titles in s.offers.values())
        self.console.print(
            f"[bold]Summary[/]: {s.adverts} adverts; presence events "
            f"{dict(sorted(s.presence.items()))}; {received} offers received by "
            f"{sum(1 for t in s.offers.values() if t)} of {len(s.offers)} phones, "
            f"{s.redeemed} redeemed"
        )
        for campaign, row in s.funnel.items():
            self.console.print(
                f"  {campaign}: triggered {row.get('triggered')}, sent {row.get('sent')}, "
                f"delivered {row.get('delivered')}, opened {row.get('opened')}, "
                f"redeemed {row.get('redeemed')}, suppressed {row.get('suppressed')}"
            )
