"""``nahfeld gateway run`` end to end: bleak on dbusmock's BlueZ → core → offers → Mosquitto.

The cloud's own resolver worker answers the gateway's EID resolve requests; the
test publishes the store's ruleset and watches everything on the broker.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.bus import BusSettings
from cloud.resolver import EidResolverTable, store_token
from cloud.resolver.service import InstallProfile, ResolverService
from cloud.resolver.worker import ResolverWorker
from gateway.ble.eid import eid_at
from gateway.contract import (
    ResolvedEid,
    ResolveRequest,
    ResolveResponse,
    Ruleset,
    encode,
    gateway_topic,
    parse_message,
    store_topic,
)
from tests.integration.conftest import ADAPTER, BluezMock, Scenario, wait_for
from tests.integration.test_scanner_dbus import discovery_started, eddystone_eid
from tests.support.mosquitto import Broker, Listener

STORE, GATEWAY = "demo-store", "gw-entrance"
KEY = bytes(range(16))
K = 10
PHONE = "5A:11:22:33:44:55"
STRANGER = "7B:00:11:22:33:44"
STRANGER_PAYLOAD = bytes.fromhex("1005031c8a1b2c3d")
ALICE, SECRET = "install-alice", b"token-secret-for-tests-0123456789"


class OneInstall:
    """The cloud's install records: Alice, opted in, in the "vip" segment."""

    def profiles(self, installs: Collection[int]) -> Mapping[int, InstallProfile]:
        return {1: InstallProfile(ALICE, ("vip",))} if 1 in installs else {}

    def recently_revoked(self) -> Iterable[str]:
        return []


class FakeResolver:
    """A stand-in resolver for one identity, for the fault tests: it must outlive broker
    restarts without the cloud's session handling in the way."""

    def __init__(self, port: int) -> None:
        self.requests: list[ResolveRequest] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cloud")
        self.client.on_message = self._on_message
        # (re)subscribe on every connect: it outlives broker restarts in the fault tests
        self.client.on_connect = lambda client, *args: client.subscribe(
            gateway_topic(STORE, GATEWAY, "resolve"), qos=1
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        request = parse_message(msg.topic, bytes(msg.payload))
        assert isinstance(request, ResolveRequest)
        with self.lock:
            self.requests.append(request)
        known = {eid_at(KEY, K, request.ts + d).hex() for d in (-(1 << K), 0, 1 << K)}
        resolved = [
            ResolvedEid(eid=eid, token="tok-alice", valid_until=request.ts + 3600, segments=["vip"])
            for eid in request.eids
            if eid in known
        ]
        response = ResolveResponse(
            request_id=request.request_id, store=STORE, ts=request.ts, resolved=resolved
        )
        client.publish(gateway_topic(STORE, GATEWAY, "resolved"), encode(response), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def write_config(tmp_path: Path, port: int) -> Path:
    layout = tmp_path / "layout.toml"
    layout.write_text(
        f'store = "{STORE}"\ntimezone = "Europe/Berlin"\n'
        "[defaults]\nmeasured_power_dbm = -59\npath_loss_exponent = 2.0\n"
        "min_samples = 1\nenter_after_s = 0\n"
        f'[[gateways]]\nid = "{GATEWAY}"\n'
        f'[[zones]]\nid = "entrance"\ngateway = "{GATEWAY}"\nradius_m = 2.0\n'
    )
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'store = "{STORE}"\ngateway = "{GATEWAY}"\nlayout = "{layout}"\n'
        f'data_dir = "{tmp_path / "data"}"\nflush_s = 0.1\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[scanner]\nadapter = "{ADAPTER}"\n'
    )
    return config


def publish_ruleset(port: int) -> None:
    ruleset = Ruleset(
        store=STORE,
        version=1,
        compiled_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        timezone="Europe/Berlin",
        rules=[
            {
                "id": "welcome",
                "campaign": "spring",
                "offer": "ten-percent",
                "trigger": {"type": "enter", "zones": ["entrance"]},
            }
        ],
    )
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rules")
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(
        store_topic(STORE, "ruleset"), encode(ruleset), qos=1, retain=True
    ).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_opted_in_phone_triggers_an_offer_and_strangers_leave_no_trace(
    bluez: BluezMock, broker: Broker, run_bleak: Callable[[Scenario], None], tmp_path: Path
) -> None:
    publish_ruleset(broker.port)
    table = EidResolverTable()
    table.add_many([(1, KEY, K)])
    resolver = ResolverWorker(  # the cloud's own resolver, not a stand-in
        ResolverService(table, SECRET, OneInstall()),
        BusSettings(port=broker.port, client_id="cloud-resolver"),
    )
    resolver.start()
    events_topic = gateway_topic(STORE, GATEWAY, "events")
    everything = Listener(broker.port, ["nahfeld/#"], "auditor")
    config = write_config(tmp_path, broker.port)

    def kinds() -> list[str]:
        return [json.loads(p)["kind"] for p in everything.on(events_topic)]

    async def scenario() -> None:
        daemon = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "gateway",
            "run",
            "--config",
            str(config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with bluez.control() as control:
                await discovery_started(control, "the daemon to start discovery")
                phone = await control.add_device(
                    PHONE, rssi=-55, service_data=eddystone_eid(eid_at(KEY, K, time.time()))
                )
                stranger = await control.add_device(
                    STRANGER, rssi=-50, manufacturer_data={0x004C: STRANGER_PAYLOAD}
                )
                for n in range(200):  # the radio keeps hearing both, ~20 adverts a second
                    if "offer_decision" in kinds():
                        break
                    rssi = -55 - n % 3
                    eid = eid_at(KEY, K, time.time())
                    await control.advertise(phone, rssi=rssi, service_data=eddystone_eid(eid))
                    await control.advertise(stranger, rssi=-50)
                    await asyncio.sleep(0.05)
                await wait_for(lambda: "offer_decision" in kinds(), "an offer decision", 10)
        finally:
            daemon.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(daemon.communicate(), 20)
        assert daemon.returncode == 0, output.decode()

    try:
        run_bleak(scenario)
        messages = [json.loads(p) for p in everything.on(events_topic)]
        enter = next(m for m in messages if m["kind"] == "presence")
        token = store_token(SECRET, STORE, ALICE)
        assert (enter["type"], enter["zone"], enter["token"]) == ("enter", "entrance", token)
        decision = next(m for m in messages if m["kind"] == "offer_decision")
        assert decision["offer"] == "ten-percent"
        assert decision["trigger_event_id"] == enter["event_id"]
        assert resolver.service.stats.resolved >= 1, "the gateway never asked the resolver"
        state = [
            json.loads(p)["state"] for p in everything.on(gateway_topic(STORE, GATEWAY, "state"))
        ]
        assert state[-1] == "offline"
        # privacy: nothing about the stranger, and no MAC address at all, left the gateway
        with everything.lock:
            wire = b"".join(payload for _, payload, _ in everything.messages)
        for secret in (PHONE, STRANGER, PHONE.replace(":", ""), STRANGER_PAYLOAD.hex(), ALICE):
            assert secret.encode().lower() not in wire.lower()
    finally:
        resolver.stop()
        everything.close()
