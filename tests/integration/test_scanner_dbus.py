"""The scanner on bleak's real BlueZ backend, through a real dbus-daemon and a mocked bluetoothd.

What is real here: bleak's D-Bus client code, dbus-fast, the D-Bus daemon and
its signal routing, our watchdog. What is mocked: bluetoothd (python-dbusmock's
``bluez5`` template), so adapters can vanish and bluetoothd can crash on cue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from bleak.exc import BleakError

from gateway.ble.eddystone import EDDYSTONE_SERVICE_UUID
from gateway.ble.frames import EddystoneEid, IBeacon
from gateway.scanner import Advert, Scanner, ScannerConfig, scan_once
from tests.integration.conftest import (
    ADAPTER,
    BluezControl,
    BluezMock,
    Scenario,
    wait_for,
    wait_for_async,
)

ADAPTER_PATH = f"/org/bluez/{ADAPTER}"
STORE_UUID = UUID("f7826da6-4fa2-4e98-8024-bc5b71e0893e")
BEACON = "C0:FF:EE:00:00:01"
PHONE = "5A:11:22:33:44:55"
RunBleak = Callable[[Scenario], None]


def ibeacon(major: int, minor: int, tx_power: int = -59) -> dict[int, bytes]:
    """Manufacturer data as bleak reports it: company id → payload after the id."""
    payload = (
        b"\x02\x15"
        + STORE_UUID.bytes
        + major.to_bytes(2, "big")
        + minor.to_bytes(2, "big")
        + (tx_power & 0xFF).to_bytes(1, "big")
    )
    return {0x004C: payload}


def eddystone_eid(eid: bytes, tx_power: int = -20) -> dict[str, bytes]:
    return {EDDYSTONE_SERVICE_UUID: bytes([0x30, tx_power & 0xFF]) + eid}


class Recorder:
    """The scanner's callback: keeps every advert."""

    def __init__(self) -> None:
        self.adverts: list[Advert] = []

    def __call__(self, advert: Advert) -> None:
        self.adverts.append(advert)

    def of(self, address: str) -> list[Advert]:
        return [a for a in self.adverts if a.address == address]


class Running:
    """A scanner running in a task of the test's loop, stopped cleanly at the end."""

    def __init__(self, config: ScannerConfig) -> None:
        self.recorder = Recorder()
        self.scanner = Scanner(config, self.recorder)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.scanner.run(self.stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.stop.set()
        # a clean stop is prompt and never raises
        await asyncio.wait_for(self.task, 10)
        assert not self.scanner.stats.scanning

    async def scanning(self, what: str = "scanning to start") -> None:
        await wait_for(lambda: self.scanner.stats.scanning, what, detail=self.scanner.stats.as_dict)


def active(**overrides: Any) -> ScannerConfig:
    settings: dict[str, Any] = {
        "adapter": ADAPTER,
        "silence_timeout_s": None,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
    }
    settings.update(overrides)
    return ScannerConfig(**settings)


async def discovery_starts(control: BluezControl) -> int:
    return len(await control.method_calls(ADAPTER_PATH, "StartDiscovery"))


async def discovery_started(control: BluezControl, what: str, timeout_s: float = 20.0) -> None:
    """Wait until ``what`` (a scanner, a daemon) has asked the adapter to scan."""

    async def started() -> bool:
        return await discovery_starts(control) >= 1

    await wait_for_async(started, what, timeout_s)


def scanner_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "gateway.scanner" and r.levelno >= logging.WARNING
    ]


@pytest.mark.parametrize("passive", [False, True], ids=["active", "passive"])
def test_ibeacon_device_appears_with_its_rssi(
    bluez: BluezMock, run_bleak: RunBleak, passive: bool
) -> None:
    async def scenario() -> None:
        async with bluez.control() as control, Running(active(passive=passive)) as run:
            await run.scanning()
            await control.add_device(BEACON, rssi=-61, manufacturer_data=ibeacon(7, 42))
            await wait_for(lambda: run.recorder.of(BEACON), "the iBeacon's advert")
            advert = run.recorder.of(BEACON)[0]
            assert advert.rssi == -61
            assert advert.decoded.problem is None
            assert advert.decoded.frames == (
                IBeacon(uuid=str(STORE_UUID), major=7, minor=42, tx_power=-59),
            )
            assert abs(advert.unix - time.time()) < 5
            assert advert.monotonic <= time.monotonic()
            assert run.scanner.stats.adverts >= 1

            if passive:
                monitors = await control.method_calls(ADAPTER_PATH, "RegisterMonitor")
                assert len(monitors) == 1
            else:
                # continuous RSSI needs BlueZ to report duplicates; bleak's default is off
                filters = await control.method_calls(ADAPTER_PATH, "SetDiscoveryFilter")
                assert filters[0][0] == {"Transport": "le", "DuplicateData": True}
                assert await discovery_starts(control) == 1

        # clean stop: discovery stopped on the adapter
        async with bluez.control() as control:
            if passive:
                assert len(await control.method_calls(ADAPTER_PATH, "UnregisterMonitor")) == 1
            else:
                assert len(await control.method_calls(ADAPTER_PATH, "StopDiscovery")) == 1

    run_bleak(scenario)


def test_rssi_and_data_updates_stream_through(bluez: BluezMock, run_bleak: RunBleak) -> None:
    eids = [bytes.fromhex(h) for h in ("0011223344556677", "8899aabbccddeeff", "0123456789abcdef")]

    async def scenario() -> None:
        async with bluez.control() as control, Running(active()) as run:
            await run.scanning()
            phone = await control.add_device(PHONE, rssi=-80, service_data=eddystone_eid(eids[0]))
            beacon = await control.add_device(BEACON, rssi=-70, manufacturer_data=ibeacon(1, 1))
            # each advert heard again is one PropertiesChanged: RSSI only, data only, or both
            await control.advertise(phone, rssi=-75)
            await control.advertise(phone, service_data=eddystone_eid(eids[1]))
            await control.advertise(phone, rssi=-66, service_data=eddystone_eid(eids[2]))
            await control.advertise(beacon, rssi=-71, manufacturer_data=ibeacon(1, 2))
            await control.advertise(phone, rssi=-64)

            def seen(address: str) -> list[tuple[int, object]]:
                return [(a.rssi, a.decoded.frames[0]) for a in run.recorder.of(address)]

            await wait_for(
                lambda: len(run.recorder.adverts) >= 7,
                "seven adverts",
                detail=lambda: (seen(PHONE), seen(BEACON)),
            )
            assert seen(PHONE) == [
                (-80, EddystoneEid(eid=eids[0].hex(), tx_power=-20)),
                (-75, EddystoneEid(eid=eids[0].hex(), tx_power=-20)),
                (-75, EddystoneEid(eid=eids[1].hex(), tx_power=-20)),
                (-66, EddystoneEid(eid=eids[2].hex(), tx_power=-20)),
                (-64, EddystoneEid(eid=eids[2].hex(), tx_power=-20)),
            ]
            assert seen(BEACON) == [
                (-70, IBeacon(uuid=str(STORE_UUID), major=1, minor=1, tx_power=-59)),
                (-71, IBeacon(uuid=str(STORE_UUID), major=1, minor=2, tx_power=-59)),
            ]
            assert run.scanner.stats.adverts == 7
            assert run.scanner.stats.restarts == 0

    run_bleak(scenario)


def test_a_failing_callback_does_not_stop_scanning(bluez: BluezMock, run_bleak: RunBleak) -> None:
    async def scenario() -> None:
        received: list[int] = []

        def fragile(advert: Advert) -> None:
            received.append(advert.rssi)
            if len(received) == 1:
                raise RuntimeError("a bug downstream")

        stop = asyncio.Event()
        scanner = Scanner(active(), fragile)
        task = asyncio.create_task(scanner.run(stop))
        async with bluez.control() as control:
            await wait_for(lambda: scanner.stats.scanning, "scanning to start")
            path = await control.add_device(BEACON, rssi=-60, manufacturer_data=ibeacon(1, 1))
            await control.advertise(path, rssi=-61)
            await wait_for(lambda: len(received) == 2, "the advert after the failing one")
        stop.set()
        await asyncio.wait_for(task, 10)
        assert received == [-60, -61]
        assert scanner.stats.callback_errors == 1
        assert scanner.stats.restarts == 0

    run_bleak(scenario)


@pytest.mark.parametrize("with_devices", [False, True], ids=["adapter", "adapter+devices"])
def test_adapter_removed_and_readded_restarts_scanning(
    bluez: BluezMock, run_bleak: RunBleak, caplog: pytest.LogCaptureFixture, with_devices: bool
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.scanner")

    async def scenario() -> None:
        # a long backoff: only the adapter's reappearance on D-Bus can bring scanning
        # back within the 10 s the product promises
        config = active(backoff_initial_s=30.0, backoff_max_s=30.0)
        async with bluez.control() as control, Running(config) as run:
            stats = run.scanner.stats
            await run.scanning()
            path = await control.add_device(BEACON, rssi=-60, manufacturer_data=ibeacon(3, 4))
            await wait_for(lambda: run.recorder.of(BEACON), "the first advert")

            await control.remove_adapter(with_devices=with_devices)
            await wait_for(lambda: stats.failures >= 1, "a failed restart without adapter")
            assert not stats.scanning
            assert dict(stats.incidents) == {"adapter_removed": 1}

            readded = time.monotonic()
            await control.add_adapter()
            await run.scanning("scanning to resume on the new adapter")
            assert time.monotonic() - readded < 10
            assert stats.restarts == 1
            # the new adapter object got a fresh filter and discovery
            filters = await control.method_calls(ADAPTER_PATH, "SetDiscoveryFilter")
            assert filters == [[{"Transport": "le", "DuplicateData": True}]]
            assert await discovery_starts(control) == 1

            before = len(run.recorder.adverts)
            if with_devices:
                await control.add_device(BEACON, rssi=-55, manufacturer_data=ibeacon(3, 4))
            else:
                await control.advertise(path, rssi=-55)
            await wait_for(lambda: len(run.recorder.adverts) > before, "adverts after recovery")
            assert run.recorder.adverts[-1].rssi == -55
            assert dict(stats.incidents) == {"adapter_removed": 1}

        assert len(scanner_warnings(caplog)) == 1, scanner_warnings(caplog)
        assert any("recovered from adapter_removed" in r.getMessage() for r in caplog.records)

    run_bleak(scenario)


def test_bluetoothd_crash_and_restart_restarts_scanning(
    bluez: BluezMock, run_bleak: RunBleak
) -> None:
    async def scenario() -> None:
        config = active(backoff_initial_s=30.0, backoff_max_s=30.0)
        async with Running(config) as run:
            stats = run.scanner.stats
            await run.scanning()
            async with bluez.control() as control:
                await control.add_device(BEACON, rssi=-60, manufacturer_data=ibeacon(5, 6))
            await wait_for(lambda: run.recorder.of(BEACON), "the first advert")

            bluez.crash()
            await wait_for(lambda: stats.incidents["bluez_gone"] == 1, "the crash to be noticed")
            await wait_for(lambda: not stats.scanning, "scanning to stop")

            restarted = time.monotonic()
            await bluez.start()
            async with bluez.control() as control:
                await control.add_adapter()
                await run.scanning("scanning to resume after bluetoothd came back")
                assert time.monotonic() - restarted < 10
                await control.add_device(BEACON, rssi=-52, manufacturer_data=ibeacon(5, 6))
                await wait_for(lambda: run.recorder.adverts[-1].rssi == -52, "adverts again")
                assert await discovery_starts(control) == 1
            assert stats.restarts == 1
            assert set(stats.incidents) == {"bluez_gone"}

    run_bleak(scenario)


def test_silence_restarts_scanning(
    bluez: BluezMock, run_bleak: RunBleak, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.scanner")
    silence = 0.6

    async def scenario() -> None:
        async with bluez.control() as control, Running(active(silence_timeout_s=silence)) as run:
            stats = run.scanner.stats
            await run.scanning()
            path = await control.add_device(
                PHONE, rssi=-70, service_data=eddystone_eid(b"\x01" * 8)
            )

            # adverts keep coming for well over the timeout: no restart
            deadline = time.monotonic() + 2.5 * silence
            rssi = -70
            while time.monotonic() < deadline:
                rssi = -70 if rssi != -70 else -71
                await control.advertise(path, rssi=rssi)
                await asyncio.sleep(silence / 6)
            await wait_for(lambda: stats.adverts >= 10, "the streamed adverts")
            assert stats.restarts == 0
            assert await discovery_starts(control) == 1

            # then nothing: discovery is restarted, and again while it stays quiet
            await wait_for(lambda: stats.restarts >= 2, "two silence restarts", timeout_s=10)
            assert await discovery_starts(control) >= 3
            assert len(await control.method_calls(ADAPTER_PATH, "StopDiscovery")) >= 2
            # one incident however many restarts it takes
            assert dict(stats.incidents) == {"silence": 1}
            assert len(scanner_warnings(caplog)) == 1, scanner_warnings(caplog)

            await control.advertise(path, rssi=-50)
            await wait_for(lambda: run.recorder.adverts[-1].rssi == -50, "the advert after")
            await wait_for(
                lambda: any("recovered from silence" in r.getMessage() for r in caplog.records),
                "the recovery to be logged",
            )

    run_bleak(scenario)


def test_missing_adapter_is_retried_and_logged_once(
    bluez: BluezMock, run_bleak: RunBleak, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.scanner")

    async def scenario() -> None:
        # hci1 does not exist yet, as when the USB dongle enumerates after the service started
        async with bluez.control() as control, Running(active(adapter="hci1")) as run:
            stats = run.scanner.stats
            # retries back off, but never beyond backoff_max_s (0.2 s): eight attempts take
            # about 1.2 s, uncapped doubling would take more than 6 s
            await wait_for(lambda: stats.failures >= 8, "eight failed starts", timeout_s=5)
            assert not stats.scanning
            assert dict(stats.incidents) == {"start_failed": 1}
            assert len(scanner_warnings(caplog)) == 1, scanner_warnings(caplog)
            assert "hci1" in scanner_warnings(caplog)[0]

            await control.add_adapter("hci1")
            await run.scanning("scanning on the adapter that appeared")
            await control.add_device(
                BEACON, rssi=-60, manufacturer_data=ibeacon(1, 1), adapter="hci1"
            )
            await wait_for(lambda: run.recorder.of(BEACON), "an advert on hci1")
            assert stats.starts == 1
            assert stats.restarts == 0
            assert len(scanner_warnings(caplog)) == 1

    run_bleak(scenario)


def test_scan_once_reports_adverts_then_stops(bluez: BluezMock, run_bleak: RunBleak) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        async with bluez.control() as control:
            task = asyncio.create_task(scan_once(1.0, recorder, adapter=ADAPTER))

            async def started() -> bool:
                return await discovery_starts(control) == 1

            await wait_for_async(started, "discovery to start")
            await control.add_device(PHONE, rssi=-58, service_data=eddystone_eid(b"\x02" * 8))
            await wait_for(lambda: recorder.adverts, "an advert")
            stats = await asyncio.wait_for(task, 10)
            assert stats.adverts == 1
            assert not stats.scanning
            assert recorder.adverts[0].rssi == -58
            assert len(await control.method_calls(ADAPTER_PATH, "StopDiscovery")) == 1

        with pytest.raises(BleakError, match="hci7"):
            await scan_once(0.1, recorder, adapter="hci7")

    run_bleak(scenario)


def test_gateway_scan_command_prints_decoded_adverts(bluez: BluezMock, run_bleak: RunBleak) -> None:
    """``nahfeld gateway scan --json`` as an installer runs it, on the mocked BlueZ."""

    async def scenario() -> None:
        async with bluez.control() as control:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway",
                "gateway",
                "scan",
                "--json",
                "--duration",
                "3",
                "--adapter",
                ADAPTER,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )

            async def started() -> bool:
                return await discovery_starts(control) == 1

            await wait_for_async(started, "the command to start discovery")
            await control.add_device(BEACON, rssi=-61, manufacturer_data=ibeacon(7, 9))
            stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
            assert process.returncode == 0, stderr.decode()
            lines = [json.loads(line) for line in stdout.decode().splitlines()]
            assert lines[0]["address"] == BEACON
            assert lines[0]["rssi"] == -61
            assert lines[0]["frames"][0]["type"] == "ibeacon"
            assert lines[0]["frames"][0]["major"] == 7
            assert "adverts in 3 s on hci0" in stderr.decode()

    run_bleak(scenario)
