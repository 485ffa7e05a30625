"""The BLE scanner: bleak's BlueZ scanner, kept alive.

The core never sees bleak. Each advert becomes an :class:`Advert` (timestamps,
address, RSSI, decoded frames) handed to one callback.

Around bleak sits a watchdog, because in the field scanning dies in ways bleak
does not always report: bluetoothd restarts, USB adapters drop off the bus and
come back, power gets toggled, and BlueZ sometimes just stops delivering
adverts. Instead of exiting and relying on systemd (which throws away the
presence state held in memory), the watchdog restarts discovery (stop → start,
retrying with capped backoff) inside the process. That is the first rung of
the field-proven escalation; resetting the adapter or restarting bluetoothd
are left to the daemon, which can watch ``ScannerStats``.

Trouble is noticed from a small D-Bus connection of our own that watches the
adapter object, its ``Powered`` property and the ``org.bluez`` name owner;
the same signals say when recovery is possible again, so a restart follows
within milliseconds instead of waiting out the backoff. Silence (no advert for
``silence_timeout_s``) is the last line of defence for the failures nobody
signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, cast

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.bluezdbus.utils import get_dbus_authenticator
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from .ble.decode import Decoded, decode_fields

log = logging.getLogger(__name__)

BLUEZ_SERVICE: Final = "org.bluez"
ADAPTER_INTERFACE: Final = "org.bluez.Adapter1"

#: Passive scanning (BlueZ advertisement monitors) needs content patterns. Match
#: the beacon formats themselves: a pattern on the Flags field alone would miss
#: beacons that send no Flags.
BEACON_OR_PATTERNS: Final[tuple[OrPattern, ...]] = (
    # iBeacon: Apple's company id (little-endian), then type 0x02, length 0x15
    OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\x4c\x00\x02\x15"),
    # AltBeacon: any company id, then the 0xBEAC beacon code
    OrPattern(2, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\xbe\xac"),
    # Eddystone (UID, URL, TLM, EID): service data of UUID 0xFEAA
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xaa\xfe"),
)


class Advert(NamedTuple):
    """One advert as the gateway sees it. ``address`` must never leave the gateway."""

    monotonic: float
    unix: float
    address: str
    rssi: int
    decoded: Decoded


AdvertCallback = Callable[[Advert], None]


@dataclass(frozen=True, slots=True)
class ScannerConfig:
    """How to scan and how hard to try. Field names match ``ScannerSettings``."""

    adapter: str = "hci0"
    #: passive scanning needs BlueZ >= 5.56 run with ``--experimental``
    passive: bool = False
    #: no advert for this long while scanning → restart discovery; None disables
    silence_timeout_s: float | None = 30.0
    backoff_initial_s: float = 0.5
    #: keeps a restart within 10 s of recovery even when no D-Bus signal says so
    backoff_max_s: float = 8.0
    start_timeout_s: float = 10.0
    stop_timeout_s: float = 5.0
    or_patterns: tuple[OrPattern, ...] = BEACON_OR_PATTERNS

    def __post_init__(self) -> None:
        if self.silence_timeout_s is not None and self.silence_timeout_s <= 0:
            raise ValueError("silence_timeout_s must be positive (or None to disable)")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")


@dataclass(slots=True)
class ScannerStats:
    """Counters the daemon exports as metrics and health."""

    adverts: int = 0
    #: successful starts of discovery, the first one included
    starts: int = 0
    #: successful starts after the first: how often scanning came back
    restarts: int = 0
    #: start attempts that failed (each retry counts)
    failures: int = 0
    callback_errors: int = 0
    #: distinct incidents by reason (one per outage, however many retries)
    incidents: Counter[str] = field(default_factory=Counter)
    scanning: bool = False
    #: monotonic time of the last advert
    last_advert: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "adverts": self.adverts,
            "starts": self.starts,
            "restarts": self.restarts,
            "failures": self.failures,
            "callback_errors": self.callback_errors,
            "incidents": dict(sorted(self.incidents.items())),
            "scanning": self.scanning,
        }


class Scanner:
    """bleak's scanner on one adapter, restarted by a watchdog whenever scanning breaks."""

    def __init__(self, config: ScannerConfig, on_advert: AdvertCallback) -> None:
        self.config = config
        self.stats = ScannerStats()
        self._on_advert = on_advert
        self._adapter_path = f"/org/bluez/{config.adapter}"
        self._bleak: BleakScanner | None = None
        self._bus: MessageBus | None = None
        self._bus_watch: asyncio.Task[None] | None = None
        #: set whenever the watchdog should look again (trouble, recovery, stop)
        self._wake = asyncio.Event()
        self._trouble: tuple[str, str] | None = None
        self._started_at = 0.0
        self._incident: str | None = None
        self._incident_since = 0.0

    # -- the hot path ---------------------------------------------------------

    def _on_detection(self, device: BLEDevice, adv: AdvertisementData) -> None:
        now = time.monotonic()
        stats = self.stats
        stats.adverts += 1
        stats.last_advert = now
        if self._incident is not None:
            self._close_incident(now)
        advert = Advert(
            now,
            time.time(),
            device.address,
            adv.rssi,
            decode_fields(adv.manufacturer_data, adv.service_data),
        )
        try:
            self._on_advert(advert)
        except Exception:  # a bug downstream must not stop scanning
            stats.callback_errors += 1
            errors = stats.callback_errors
            if errors & (errors - 1) == 0:  # 1st, 2nd, 4th, 8th …: visible, never a flood
                log.exception("advert callback failed (%d times so far)", errors)

    # -- the watchdog ---------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Scan until ``stop`` is set. BLE and D-Bus failures are retried, never raised."""
        relay = asyncio.create_task(self._relay(stop))
        failed_attempts = 0
        try:
            while not stop.is_set():
                # cleared before the attempt: a "recovery possible" signal that
                # arrives while it fails cuts the following backoff short
                self._wake.clear()
                try:
                    await self._start()
                except Exception as exc:  # the process must outlive any adapter trouble
                    if stop.is_set():
                        break
                    self.stats.failures += 1
                    self._open_incident("start_failed", _describe(exc))
                    delay = min(
                        self.config.backoff_initial_s * 2**failed_attempts,
                        self.config.backoff_max_s,
                    )
                    failed_attempts += 1
                    log.debug(
                        "starting discovery on %s failed (%s); retry in %.1f s",
                        self.config.adapter,
                        _describe(exc),
                        delay,
                    )
                    await self._pause(delay)
                    continue
                failed_attempts = 0
                reason = await self._watch(stop)
                await self._stop_scanning()
                if reason is None:
                    break
                log.debug("restarting discovery on %s (%s: %s)", self.config.adapter, *reason)
                self._open_incident(*reason)
        finally:
            relay.cancel()
            await self._stop_scanning()
            await self._close_bus()

    async def _relay(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _pause(self, timeout: float | None) -> None:
        """Sleep until ``timeout``, or earlier if something worth a look happened."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _watch(self, stop: asyncio.Event) -> tuple[str, str] | None:
        """While scanning, wait for trouble or silence; None means stop was asked for."""
        silence = self.config.silence_timeout_s
        while True:
            self._wake.clear()
            if stop.is_set():
                return None
            if self._trouble is not None:
                return self._trouble
            timeout = None
            if silence is not None:
                last = max(self._started_at, self.stats.last_advert or 0.0)
                timeout = last + silence - time.monotonic()
                if timeout <= 0:
                    return "silence", f"no advert for {silence:g} s"
            await self._pause(timeout)

    async def _start(self) -> None:
        self._trouble = None
        await self._ensure_bus()
        scanner = self._make_bleak()
        async with asyncio.timeout(self.config.start_timeout_s):
            await scanner.start()
        self._bleak = scanner
        self._started_at = time.monotonic()
        stats = self.stats
        stats.scanning = True
        stats.starts += 1
        if stats.starts > 1:
            stats.restarts += 1
        log.debug("scanning on %s (start #%d)", self.config.adapter, stats.starts)

    async def _stop_scanning(self) -> None:
        scanner, self._bleak = self._bleak, None
        self.stats.scanning = False
        if scanner is None:
            return
        try:
            async with asyncio.timeout(self.config.stop_timeout_s):
                await scanner.stop()
        except Exception as exc:  # adapter or bluetoothd gone: nothing left to stop
            log.debug("stopping discovery on %s failed: %s", self.config.adapter, _describe(exc))

    def _make_bleak(self) -> BleakScanner:
        config = self.config
        if config.passive:
            args: BlueZScannerArgs = {
                "adapter": config.adapter,
                "or_patterns": list(config.or_patterns),
            }
            return BleakScanner(self._on_detection, scanning_mode="passive", bluez=args)
        # bleak defaults DuplicateData to False: BlueZ would then report a beacon
        # once, and RSSI smoothing needs every advert
        args = {"adapter": config.adapter, "filters": {"DuplicateData": True}}
        return BleakScanner(self._on_detection, scanning_mode="active", bluez=args)

    # -- incidents: logged once each, however many retries they take ----------

    def _open_incident(self, reason: str, detail: str) -> None:
        if self._incident is not None:  # still the same outage
            return
        self._incident = reason
        self._incident_since = time.monotonic()
        self.stats.incidents[reason] += 1
        log.warning(
            "BLE scanning on %s interrupted (%s: %s); restarting until adverts flow again",
            self.config.adapter,
            reason,
            detail,
        )

    def _close_incident(self, now: float) -> None:
        log.info(
            "BLE scanning on %s recovered from %s after %.1f s (%d restarts, %d failed starts)",
            self.config.adapter,
            self._incident,
            now - self._incident_since,
            self.stats.restarts,
            self.stats.failures,
        )
        self._incident = None

    # -- our own D-Bus connection: BlueZ's signals about the adapter ---------

    async def _ensure_bus(self) -> None:
        if self._bus is not None and self._bus.connected:
            return
        await self._close_bus()
        bus = MessageBus(bus_type=BusType.SYSTEM, auth=get_dbus_authenticator())
        try:
            await bus.connect()
            bus.add_message_handler(self._on_bus_message)
            for rule in self._match_rules():
                reply = await bus.call(
                    Message(
                        destination="org.freedesktop.DBus",
                        path="/org/freedesktop/DBus",
                        interface="org.freedesktop.DBus",
                        member="AddMatch",
                        signature="s",
                        body=[rule],
                    )
                )
                if reply.message_type is MessageType.ERROR:
                    raise ConnectionError(f"AddMatch {rule!r} failed: {reply.error_name}")
        except BaseException:
            bus.disconnect()
            raise
        self._bus = bus
        self._bus_watch = asyncio.create_task(self._watch_bus(bus))

    def _match_rules(self) -> list[str]:
        path = self._adapter_path
        return [
            # adapter added / removed (arg0path matches the path exactly, not children)
            "type='signal',interface='org.freedesktop.DBus.ObjectManager',"
            f"member='InterfacesAdded',arg0path='{path}'",
            "type='signal',interface='org.freedesktop.DBus.ObjectManager',"
            f"member='InterfacesRemoved',arg0path='{path}'",
            # Powered on / off
            "type='signal',interface='org.freedesktop.DBus.Properties',"
            f"member='PropertiesChanged',path='{path}',arg0='{ADAPTER_INTERFACE}'",
            # bluetoothd exits (crash, restart) or comes back
            "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
            f"member='NameOwnerChanged',arg0='{BLUEZ_SERVICE}'",
        ]

    def _on_bus_message(self, msg: Message) -> None:
        if msg.message_type is not MessageType.SIGNAL:
            return
        member, body = msg.member, msg.body
        if member == "InterfacesRemoved":
            if body[0] == self._adapter_path and ADAPTER_INTERFACE in body[1]:
                self._report_trouble("adapter_removed", "the adapter left BlueZ")
        elif member == "InterfacesAdded":
            if body[0] == self._adapter_path and ADAPTER_INTERFACE in body[1]:
                self._wake.set()
        elif member == "PropertiesChanged":
            if msg.path == self._adapter_path and body[0] == ADAPTER_INTERFACE:
                powered: Any = body[1].get("Powered")
                if powered is not None:
                    if powered.value:
                        self._wake.set()
                    else:
                        self._report_trouble("adapter_off", "the adapter was powered off")
        elif member == "NameOwnerChanged" and body[0] == BLUEZ_SERVICE:
            if body[2]:
                self._wake.set()
            else:
                self._report_trouble("bluez_gone", "bluetoothd left the system bus")

    def _report_trouble(self, reason: str, detail: str) -> None:
        if self._trouble is None:  # the first cause is the one worth reporting
            self._trouble = (reason, detail)
        self._wake.set()

    async def _watch_bus(self, bus: MessageBus) -> None:
        # dbus-fast leaves this one unannotated
        wait_for_disconnect = cast(Callable[[], Awaitable[None]], bus.wait_for_disconnect)
        with contextlib.suppress(Exception):
            await wait_for_disconnect()
        if bus is self._bus:  # not our own close
            self._report_trouble("dbus_lost", "the system bus connection dropped")

    async def _close_bus(self) -> None:
        bus, self._bus = self._bus, None  # first: the watcher then knows it is our own close
        watch, self._bus_watch = self._bus_watch, None
        if bus is not None:
            bus.disconnect()
        if watch is not None:
            # not cancelled: it awaits the bus's own disconnect future, which a
            # cancel would cancel too
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(watch), self.config.stop_timeout_s)


async def scan_once(
    duration_s: float, on_advert: AdvertCallback, *, adapter: str = "hci0", passive: bool = False
) -> ScannerStats:
    """Scan for ``duration_s`` without a watchdog, for ``nahfeld gateway scan``.

    An installer running this wants to see why scanning fails, not retries:
    bleak's and D-Bus's errors propagate (``BleakError`` when the adapter is
    missing, ``BleakBluetoothNotAvailableError`` when there is none,
    ``OSError`` when the system bus is unreachable).
    """
    scanner = Scanner(ScannerConfig(adapter=adapter, passive=passive), on_advert)
    bleak = scanner._make_bleak()
    await bleak.start()
    scanner.stats.scanning = True
    scanner.stats.starts = 1
    try:
        await asyncio.sleep(duration_s)
    finally:
        scanner.stats.scanning = False
        await bleak.stop()
    return scanner.stats


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
