"""The whole loop with every real part: bleak's BlueZ backend on dbusmock, the gateway
daemon as a process, a real Mosquitto, the cloud API (with its ruleset publisher) and a
cloud worker on a real PostgreSQL, and the reference app client.

An opted-in phone's EID adverts → enter → rule match in the gateway → the cloud's final
checks → the offer on the app's topic → opened → redeemed → the funnel shows it. A
stranger's phone (an EID the cloud does not know) and an anonymous phone in the same
stream leave no trace: the broker's traffic, the cloud's database and the gateway's
files are searched for them. After opting out, the phone's next EID resolves to nothing.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect, text

from cloud.api.app import create_app
from cloud.settings import CloudSettings
from cloud.worker import build_worker
from demo.app_client import AppClient
from gateway.ble.eid import eid_at
from gateway.contract import ResolveRequest, ResolveResponse, gateway_topic, parse_message
from tests.cloud.conftest import Api, api_with_keys
from tests.integration.conftest import BluezMock, Scenario, wait_for
from tests.integration.test_gateway_daemon import GATEWAY, PHONE, STORE, write_config
from tests.integration.test_scanner_dbus import discovery_started, eddystone_eid
from tests.support.mosquitto import Broker, Listener

STRANGER_EID_PHONE = "6C:10:20:30:40:50"
ANONYMOUS_PHONE = "7B:00:11:22:33:44"
ANONYMOUS_PAYLOAD = bytes.fromhex("1005031c8a1b2c3d")
STRANGER_KEY = bytes(range(100, 116))
INSTALL = "phone-e2e-1"
EVENTS = gateway_topic(STORE, GATEWAY, "events")
RESOLVE, RESOLVED = (
    gateway_topic(STORE, GATEWAY, "resolve"),
    gateway_topic(STORE, GATEWAY, "resolved"),
)
STRANGER_EID = eid_at(STRANGER_KEY, 10, time.time())  # the stranger's app: a key the cloud lacks


def seed(api: Api) -> None:
    for who, path, body in [
        ("admin", "/v1/stores", {"id": STORE, "name": "Demo", "timezone": "Europe/Berlin"}),
        ("admin", f"/v1/stores/{STORE}/zones", {"id": "entrance"}),
        ("admin", f"/v1/stores/{STORE}/gateways", {"id": GATEWAY}),
        ("marketer", "/v1/campaigns", {"id": "spring", "status": "active"}),
        ("marketer", "/v1/offers", {"id": "welcome", "campaign": "spring", "title": "Welcome!"}),
        (
            "marketer",
            "/v1/rules",
            {
                "id": "welcome-at-door",
                "store": STORE,
                "offer": "welcome",
                "trigger": {"type": "enter", "zones": ["entrance"]},
            },
        ),
    ]:
        api.ok(api.post(who, path, json=body), 201)


def database_text(engine: Engine) -> str:
    """Every row of every table of the cloud's database, as text."""
    rows: list[str] = []
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            rows += [
                repr(tuple(row)) for row in connection.execute(text(f'SELECT * FROM "{table}"'))
            ]
    return "\n".join(rows)


def gateway_files_text(data_dir: Path) -> str:
    """The gateway's outbox rows and every other file it keeps, as text."""
    parts: list[str] = []
    for path in data_dir.iterdir():
        if path.suffix == ".db":
            with sqlite3.connect(path) as db:
                for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                    parts += [repr(row) for row in db.execute(f'SELECT * FROM "{table}"')]
        elif path.is_file():
            parts.append(path.read_bytes().decode(errors="replace"))
    return "\n".join(parts)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_an_offer_goes_the_whole_way_and_strangers_leave_no_trace(
    bluez: BluezMock,
    broker: Broker,
    run_bleak: Callable[[Scenario], None],
    database_url: str,
    engine: Engine,
    tmp_path: Path,
) -> None:
    settings = CloudSettings(
        database_url=database_url,
        mqtt_port=broker.port,
        mqtt_username=None,
        cap_per_person_per_day=None,
    )
    auditor = Listener(broker.port, ["nahfeld/#"], "auditor")
    with TestClient(create_app(settings, engine=engine, publish=True)) as client:
        api = api_with_keys(client, engine)
        seed(api)
        app = AppClient(client, "acme", INSTALL)
        identity = app.opt_in()
        app.listen("127.0.0.1", broker.port)
        worker = build_worker(settings, name="e2e", advance_every_s=0.5)
        worker.start()
        config = write_config(tmp_path, broker.port)
        key, k = identity.identity_key, identity.rotation_exponent
        next_window = time.time() + (1 << k)  # the phone's EID after the next rotation

        def resolved_nothing_for(eid: str) -> bool:
            """The gateway asked about ``eid`` and the cloud's answer did not resolve it."""
            asked = {
                m.request_id
                for m in (parse_message(RESOLVE, p) for p in auditor.on(RESOLVE))
                if isinstance(m, ResolveRequest) and eid in m.eids
            }
            answers = [parse_message(RESOLVED, p) for p in auditor.on(RESOLVED)]
            return any(
                isinstance(a, ResolveResponse)
                and a.request_id in asked
                and eid not in {r.eid for r in a.resolved}
                for a in answers
            )

        async def scenario() -> None:
            daemon = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway", "gateway", "run", "--config", str(config),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            try:
                async with bluez.control() as control:
                    await discovery_started(control, "the daemon to start discovery")
                    phone = await control.add_device(
                        PHONE, rssi=-55, service_data=eddystone_eid(app.eid(time.time()))
                    )
                    stranger = await control.add_device(
                        STRANGER_EID_PHONE,
                        rssi=-52,
                        service_data=eddystone_eid(STRANGER_EID),
                    )
                    anonymous = await control.add_device(
                        ANONYMOUS_PHONE, rssi=-50, manufacturer_data={0x004C: ANONYMOUS_PAYLOAD}
                    )

                    async def radio(eid: bytes) -> None:
                        await control.advertise(phone, rssi=-55, service_data=eddystone_eid(eid))
                        await control.advertise(stranger, rssi=-52)
                        await control.advertise(anonymous, rssi=-50)

                    for _ in range(300):  # ~20 adverts a second until the phone shows the offer
                        if app.offers():
                            break
                        await radio(app.eid(time.time()))
                        await asyncio.sleep(0.05)
                    await wait_for(lambda: bool(app.offers()), "the offer on the phone", 10)

                    # the shopper opens it, the till redeems it, then the user opts out
                    [offer] = app.offers()
                    app.opened(offer)
                    api.ok(api.post("marketer", f"/v1/deliveries/{offer.delivery_id}/redeem"))
                    app.opt_out()
                    rotated = eid_at(key, k, next_window)
                    for _ in range(100):
                        if resolved_nothing_for(rotated.hex()):
                            break
                        await radio(rotated)
                        await asyncio.sleep(0.05)
                    await wait_for(
                        lambda: resolved_nothing_for(rotated.hex()),
                        "the rotated EID answered with nothing",
                        10,
                    )
            finally:
                daemon.send_signal(signal.SIGTERM)
                output, _ = await asyncio.wait_for(daemon.communicate(), 20)
            assert daemon.returncode == 0, output.decode()

        try:
            run_bleak(scenario)
            funnel = api.ok(api.get("viewer", "/v1/funnel", params={"campaign": "spring"}))
            assert {s: funnel[s] for s in ("sent", "delivered", "opened", "redeemed")} == {
                "sent": 1, "delivered": 1, "opened": 1, "redeemed": 1,
            }  # fmt: skip
            assert len(app.offers()) == 1  # nothing after opting out
        finally:
            worker.stop()
            app.close()
            auditor.close()

    # privacy: no MAC address and nothing of the anonymous phone left the gateway; the
    # stranger's EID went only into resolve requests, and is stored nowhere
    with auditor.lock:
        wire = [(topic, payload.decode(errors="replace")) for topic, payload, _ in auditor.messages]
    for secret in (PHONE, STRANGER_EID_PHONE, ANONYMOUS_PHONE, ANONYMOUS_PAYLOAD.hex()):
        for variant in (secret.lower(), secret.replace(":", "").lower()):
            assert not any(variant in f"{t} {p}".lower() for t, p in wire), secret
    stored = {"cloud db": database_text(engine), "gateway": gateway_files_text(tmp_path / "data")}
    for where, haystack in stored.items():
        assert STRANGER_EID.hex() not in haystack, where
        assert ANONYMOUS_PAYLOAD.hex() not in haystack and "7b:00" not in haystack.lower(), where
    assert not any(STRANGER_EID.hex() in p for t, p in wire if t != RESOLVE)
    # the install id is the app's own topic's business, never a gateway's
    assert not any(INSTALL in f"{t} {p}" for t, p in wire if "/gateways/" in t)
    assert any(json.loads(p)["kind"] == "offer_decision" for p in auditor.on(EVENTS) if p)
