"""A private system bus with python-dbusmock's BlueZ, to drive bleak's real BlueZ backend.

No radio and no host bluetoothd are involved: each test gets its own
``dbus-daemon`` on a socket in a temporary directory, ``DBUS_SYSTEM_BUS_ADDRESS``
pointing at it (bleak talks to BlueZ on the system bus), and the ``bluez5``
template of python-dbusmock owning ``org.bluez`` with one adapter, ``hci0``.
Everything is stopped and removed after the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import BusType, Message, MessageType, Variant, unpack_variants
from dbus_fast.aio import MessageBus

ADAPTER = "hci0"
BLUEZ = "org.bluez"
MOCK_IFACE = "org.freedesktop.DBus.Mock"
BLUEZ_MOCK_IFACE = "org.bluez.Mock"
DEVICE_IFACE = "org.bluez.Device1"
ADAPTER_IFACE = "org.bluez.Adapter1"
OBJECT_MANAGER_IFACE = "org.freedesktop.DBus.ObjectManager"
STARTUP_TIMEOUT_S = 15.0

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


def _require_tools() -> str:
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("dbus-daemon is not installed (Debian: apt-get install dbus)")
    if importlib.util.find_spec("dbusmock") is None:  # the mock runs as `python -m dbusmock`
        pytest.skip("python-dbusmock is not installed (pip install 'nahfeld[dev]')")
    return daemon


async def _connect(address: str) -> MessageBus:
    return await MessageBus(bus_address=address, bus_type=BusType.SYSTEM).connect()


async def _call(
    bus: MessageBus,
    path: str,
    interface: str,
    member: str,
    signature: str = "",
    body: list[Any] | None = None,
    destination: str = BLUEZ,
) -> list[Any]:
    reply = await bus.call(
        Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=body or [],
        )
    )
    if reply.message_type is MessageType.ERROR:
        raise AssertionError(f"{interface}.{member} on {path}: {reply.error_name} {reply.body}")
    return reply.body


async def _wait_for_name(address: str, name: str, process: subprocess.Popen[bytes]) -> None:
    bus = await _connect(address)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the BlueZ mock exited with {process.returncode}")
            owned = await _call(
                bus,
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "NameHasOwner",
                "s",
                [name],
                destination="org.freedesktop.DBus",
            )
            if owned[0]:
                return
            await asyncio.sleep(0.02)
        raise RuntimeError(f"{name} did not appear on the bus within {STARTUP_TIMEOUT_S} s")
    finally:
        bus.disconnect()


class BluezControl:
    """Drives the mock from inside a test's event loop: adapters, devices, adverts."""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    async def add_adapter(self, name: str = ADAPTER) -> None:
        await _call(self.bus, "/", BLUEZ_MOCK_IFACE, "AddAdapter", "ss", [name, "my-computer"])

    async def remove_adapter(self, name: str = ADAPTER, *, with_devices: bool = False) -> None:
        method = "RemoveAdapterWithDevices" if with_devices else "RemoveAdapter"
        await _call(self.bus, "/", BLUEZ_MOCK_IFACE, method, "s", [name])

    async def add_device(
        self,
        address: str,
        *,
        rssi: int,
        manufacturer_data: Mapping[int, bytes] | None = None,
        service_data: Mapping[str, bytes] | None = None,
        adapter: str = ADAPTER,
    ) -> str:
        """A device appears, advert data included, as bluetoothd announces one.

        The template's ``AddDevice`` announces ``ManufacturerData`` and
        ``ServiceData`` as empty *arrays* (``aa{qv}``, ``aa{sv}``), which
        makes bleak's handler raise on the InterfacesAdded signal. So the
        object is built here with the types bluetoothd uses (``a{qv}`` and
        ``a{sv}`` of ``ay``), and InterfacesAdded carries the data, exactly
        the path a real beacon takes through bleak.
        """
        adapter_path = f"/org/bluez/{adapter}"
        path = f"{adapter_path}/dev_{address.replace(':', '_').upper()}"
        props = {
            "Address": Variant("s", address),
            "AddressType": Variant("s", "random"),
            "Alias": Variant("s", address.replace(":", "-")),
            "Adapter": Variant("o", adapter_path),
            "Paired": Variant("b", False),
            "Bonded": Variant("b", False),
            "Trusted": Variant("b", False),
            "Blocked": Variant("b", False),
            "Connected": Variant("b", False),
            "LegacyPairing": Variant("b", False),
            "ServicesResolved": Variant("b", False),
            "UUIDs": Variant("as", sorted(service_data or {})),
            "RSSI": Variant("n", rssi),
            "ManufacturerData": _manufacturer_variant(manufacturer_data or {}),
            "ServiceData": _service_variant(service_data or {}),
        }
        await _call(
            self.bus,
            "/",
            MOCK_IFACE,
            "AddObject",
            "ssa{sv}a(ssss)",
            [path, DEVICE_IFACE, props, []],
        )
        await _call(
            self.bus,
            "/",
            MOCK_IFACE,
            "EmitSignal",
            "sssav",
            [
                OBJECT_MANAGER_IFACE,
                "InterfacesAdded",
                "oa{sa{sv}}",
                [Variant("o", path), Variant("a{sa{sv}}", {DEVICE_IFACE: props})],
            ],
        )
        return path

    async def advertise(
        self,
        path: str,
        *,
        rssi: int | None = None,
        manufacturer_data: Mapping[int, bytes] | None = None,
        service_data: Mapping[str, bytes] | None = None,
    ) -> None:
        """One advert heard again: a single PropertiesChanged, as BlueZ sends with DuplicateData."""
        changed: dict[str, Variant] = {}
        if rssi is not None:
            changed["RSSI"] = Variant("n", rssi)
        if manufacturer_data is not None:
            changed["ManufacturerData"] = _manufacturer_variant(manufacturer_data)
        if service_data is not None:
            changed["ServiceData"] = _service_variant(service_data)
        await _call(
            self.bus, path, MOCK_IFACE, "UpdateProperties", "sa{sv}", [DEVICE_IFACE, changed]
        )

    async def method_calls(self, path: str, method: str) -> list[list[Any]]:
        """Arguments of each call of ``method`` the mock object at ``path`` received."""
        calls = await _call(self.bus, path, MOCK_IFACE, "GetMethodCalls", "s", [method])
        return [unpack_variants(list(args)) for _, args in calls[0]]


def _manufacturer_variant(data: Mapping[int, bytes]) -> Variant:
    return Variant("a{qv}", {company: Variant("ay", value) for company, value in data.items()})


def _service_variant(data: Mapping[str, bytes]) -> Variant:
    return Variant("a{sv}", {uuid: Variant("ay", value) for uuid, value in data.items()})


class BluezMock:
    """The bluez5 template owning ``org.bluez`` on the private bus; killable like bluetoothd."""

    def __init__(self, address: str, workdir: Path) -> None:
        self.address = address
        self.log = workdir / "bluez-mock.log"
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dbusmock", "--system", "--template", "bluez5"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address},
            )
        return self.process

    async def start(self) -> None:
        """Spawn the mock and wait until it owns ``org.bluez`` (no adapter yet)."""
        await _wait_for_name(self.address, BLUEZ, self.spawn())

    def crash(self) -> None:
        """SIGKILL, as when bluetoothd dies: no InterfacesRemoved, only the name vanishing."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    @contextlib.asynccontextmanager
    async def control(self) -> AsyncIterator[BluezControl]:
        bus = await _connect(self.address)
        try:
            yield BluezControl(bus)
        finally:
            bus.disconnect()


@dataclass(frozen=True)
class PrivateBus:
    address: str
    workdir: Path


@pytest.fixture
def system_bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateBus]:
    """A private dbus-daemon standing in for the system bus."""
    daemon = _require_tools()
    # a short directory of our own: unix socket paths are limited to 108 bytes
    workdir = Path(tempfile.mkdtemp(prefix="nahfeld-dbus-"))
    config = workdir / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket=workdir / "bus.sock"))
    with (workdir / "dbus-daemon.log").open("ab") as log:
        process = subprocess.Popen(
            [daemon, f"--config-file={config}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        assert process.stdout is not None
        address = process.stdout.readline().decode().strip()
        if not address:
            raise RuntimeError(
                f"dbus-daemon did not start: {(workdir / 'dbus-daemon.log').read_text()}"
            )
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
        yield PrivateBus(address, workdir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def bluez(system_bus: PrivateBus) -> Iterator[BluezMock]:
    """The BlueZ mock with adapter ``hci0``, on the private system bus."""
    mock = BluezMock(system_bus.address, system_bus.workdir)

    async def setup() -> None:
        await mock.start()
        async with mock.control() as control:
            await control.add_adapter(ADAPTER)

    try:
        asyncio.run(setup())
        yield mock
    finally:
        mock.stop()


Scenario = Callable[[], Coroutine[Any, Any, None]]


@pytest.fixture
def run_bleak() -> Callable[[Scenario], None]:
    """Run a scenario in a fresh event loop and close bleak's D-Bus connection after it.

    bleak keeps one BlueZ manager per event loop in a module-level dict and only
    releases it lazily, from the next loop that asks for one; the last test's
    connection would otherwise outlive its bus.
    """

    async def guarded(scenario: Scenario) -> None:
        try:
            await scenario()
        finally:
            await _release_bleak()

    def runner(scenario: Scenario) -> None:
        asyncio.run(guarded(scenario))

    return runner


async def _release_bleak() -> None:
    from bleak.backends.bluezdbus import manager as bluez_manager

    instance = bluez_manager._global_instances.pop(asyncio.get_running_loop(), None)
    if instance is None:
        return
    bus = instance._bus
    if bus is not None:
        bus.disconnect()
    watcher = instance._bus_watcher_task
    if watcher is not None:
        # never cancelled: it awaits the bus's disconnect future, a cancel would cancel that
        # too; it logs our disconnect as "connection lost" and returns
        await asyncio.wait_for(watcher, 5)


async def wait_for(
    condition: Callable[[], object],
    what: str,
    timeout_s: float = 10.0,
    detail: Callable[[], object] | None = None,
) -> float:
    """Poll ``condition()`` until true; return the seconds it took, fail after ``timeout_s``."""
    start = time.monotonic()
    deadline = start + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            state = f" ({detail()})" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}{state}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def wait_for_async(
    condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 10.0
) -> None:
    """Like :func:`wait_for` for a condition that has to ask the bus."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)
