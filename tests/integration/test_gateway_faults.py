"""The whole daemon through faults: a 30 s broker outage, and ``kill -9`` mid-stream.

``nahfeld gateway run`` runs as a subprocess on bleak's real BlueZ backend
(dbusmock) against a real Mosquitto. An opted-in phone walks in and out of the
zone, so presence events and offer decisions keep coming. The gateway's own
Prometheus counters say how many events it queued; the broker-side auditor says
which arrived. Nothing lost: every queued event id arrives. Nothing twice in
effect: the ids that arrive are exactly the queued ones (a re-sent copy carries
the same id, which the cloud ingests once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gateway.ble.eid import eid_at
from gateway.contract import gateway_topic
from tests.integration.conftest import (
    ADAPTER,
    BluezControl,
    BluezMock,
    Scenario,
    wait_for,
    wait_for_async,
)
from tests.integration.test_gateway_daemon import GATEWAY, KEY, PHONE, STORE, FakeResolver, K
from tests.integration.test_gateway_daemon import publish_ruleset as publish_welcome_ruleset
from tests.integration.test_scanner_dbus import discovery_starts, eddystone_eid
from tests.support.mosquitto import Broker, Listener, free_port

EVENTS = gateway_topic(STORE, GATEWAY, "events")
OUTAGE_S = 30.0


def write_config(tmp_path: Path, broker_port: int, metrics_port: int) -> Path:
    """A zone with reflexes short enough that walking in and out makes events each second."""
    layout = tmp_path / "layout.toml"
    layout.write_text(
        f'store = "{STORE}"\ntimezone = "Europe/Berlin"\n'
        "[defaults]\nmeasured_power_dbm = -59\npath_loss_exponent = 2.0\n"
        "min_samples = 1\nsmoothing_window_s = 0.3\nenter_after_s = 0\nexit_after_s = 0\n"
        "dwell_thresholds_s = [60]\n"
        f'[[gateways]]\nid = "{GATEWAY}"\n'
        f'[[zones]]\nid = "entrance"\ngateway = "{GATEWAY}"\nradius_m = 2.0\n'
    )
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'store = "{STORE}"\ngateway = "{GATEWAY}"\nlayout = "{layout}"\n'
        f'data_dir = "{tmp_path / "data"}"\nflush_s = 0.1\nmetrics_port = {metrics_port}\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\n'
        "reconnect_min_s = 1\nreconnect_max_s = 2\nkeepalive_s = 5\n"
        f'[scanner]\nadapter = "{ADAPTER}"\n'
    )
    return config


class Daemon:
    """``nahfeld gateway run`` as a child process, with its metrics read over HTTP."""

    def __init__(self, config: Path, metrics_port: int) -> None:
        self.config = config
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "gateway",
            "run",
            "--config",
            str(self.config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    def metric(self, name: str) -> float:
        """A counter or gauge from the daemon's /metrics; -1 while it is not answering."""
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return -1.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    return float(sample.value)
        return -1.0

    def queued(self) -> int:
        return int(self.metric("nahfeld_events_queued_total"))

    async def kill(self, sig: int) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), 20)


@contextlib.asynccontextmanager
async def walking_phone(control: BluezControl) -> AsyncIterator[None]:
    """The opted-in phone, in the zone for 0.6 s then far away for 0.6 s, over and over."""
    phone = await control.add_device(
        PHONE, rssi=-50, service_data=eddystone_eid(eid_at(KEY, K, time.time()))
    )

    async def walk() -> None:
        n = 0
        while True:
            near = (n // 12) % 2 == 0
            eid = eid_at(KEY, K, time.time())
            await control.advertise(
                phone, rssi=-50 if near else -95, service_data=eddystone_eid(eid)
            )
            n += 1
            await asyncio.sleep(0.05)

    task = asyncio.create_task(walk())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _started(control: BluezControl) -> bool:
    return await discovery_starts(control) >= 1


def event_ids(auditor: Listener) -> list[str]:
    return [json.loads(payload)["event_id"] for payload in auditor.on(EVENTS)]


def test_a_30_s_broker_outage_loses_nothing(
    bluez: BluezMock, broker: Broker, run_bleak: Callable[[Scenario], None], tmp_path: Path
) -> None:
    publish_welcome_ruleset(broker.port)
    resolver = FakeResolver(broker.port)
    auditor = Listener(broker.port, [EVENTS], "auditor")  # persistent session: keeps its queue
    metrics_port = free_port()
    daemon = Daemon(write_config(tmp_path, broker.port, metrics_port), metrics_port)
    figures: dict[str, int] = {}

    async def scenario() -> None:
        await daemon.start()
        try:
            async with bluez.control() as control:
                await wait_for_async(lambda: _started(control), "discovery", 20)
                async with walking_phone(control):
                    await wait_for(lambda: len(event_ids(auditor)) >= 2, "events before", 20)
                    await asyncio.to_thread(broker.stop)
                    figures["queued_at_outage"] = daemon.queued()
                    outage_ends = time.monotonic() + OUTAGE_S
                    await wait_for(lambda: time.monotonic() > outage_ends, "the outage", 40)
                    figures["queued_in_outage"] = daemon.queued() - figures["queued_at_outage"]
                    await asyncio.to_thread(broker.start)
                    await wait_for(
                        lambda: (
                            daemon.queued()
                            > figures["queued_at_outage"] + figures["queued_in_outage"]
                        ),
                        "events after the outage",
                        20,
                    )
                # the phone has gone quiet: wait for the outbox to drain and the ids to arrive
                await wait_for(
                    lambda: (
                        daemon.metric("nahfeld_outbox_depth") == 0
                        and len(set(event_ids(auditor))) >= daemon.queued()
                    ),
                    "every queued event at the auditor",
                    30,
                    lambda: f"queued {daemon.queued()}, arrived {len(set(event_ids(auditor)))}",
                )
                figures["queued"] = daemon.queued()
        finally:
            code = await daemon.kill(signal.SIGTERM)
        assert code == 0

    try:
        run_bleak(scenario)
        ids = event_ids(auditor)
        assert figures["queued_in_outage"] >= 10, figures  # the outage really held events back
        assert len(set(ids)) == figures["queued"], figures  # none lost, none invented
        kinds = {json.loads(p)["kind"] for p in auditor.on(EVENTS)}
        assert kinds == {"presence", "offer_decision"}
    finally:
        resolver.close()
        auditor.close()


def test_kill_9_mid_stream_keeps_the_outbox_and_delivers_after_restart(
    bluez: BluezMock, broker: Broker, run_bleak: Callable[[Scenario], None], tmp_path: Path
) -> None:
    publish_welcome_ruleset(broker.port)
    resolver = FakeResolver(broker.port)
    auditor = Listener(broker.port, [EVENTS], "auditor")
    metrics_port = free_port()
    config = write_config(tmp_path, broker.port, metrics_port)
    outbox_db = tmp_path / "data" / "outbox.db"
    first, second = Daemon(config, metrics_port), Daemon(config, metrics_port)
    held: list[str] = []

    async def scenario() -> None:
        await first.start()
        try:
            async with bluez.control() as control:
                await wait_for_async(lambda: _started(control), "discovery", 20)
                async with walking_phone(control):
                    await wait_for(lambda: len(event_ids(auditor)) >= 2, "events delivered", 20)
                    await asyncio.to_thread(broker.stop)  # now events can only pile up
                    base = first.queued()
                    await wait_for(lambda: first.queued() >= base + 10, "events in the outbox", 20)
                    assert await first.kill(signal.SIGKILL) == -signal.SIGKILL
                # what the dead daemon left on disk: every event it had not delivered
                with sqlite3.connect(outbox_db) as db:
                    held.extend(key for (key,) in db.execute("SELECT key FROM outbox ORDER BY id"))
                await asyncio.to_thread(broker.start)
                await second.start()
                await wait_for(
                    lambda: set(held) <= set(event_ids(auditor)),
                    "the held events delivered by the restarted daemon",
                    30,
                    lambda: f"{len(set(held) - set(event_ids(auditor)))} of {len(held)} missing",
                )
        finally:
            with contextlib.suppress(AssertionError, ProcessLookupError):
                await second.kill(signal.SIGTERM)

    try:
        run_bleak(scenario)
        assert len(held) >= 10
        with sqlite3.connect(outbox_db) as db:
            (remaining,) = db.execute("SELECT count(*) FROM outbox").fetchone()
        assert remaining == 0  # acknowledged, so gone from the outbox
    finally:
        resolver.close()
        auditor.close()
