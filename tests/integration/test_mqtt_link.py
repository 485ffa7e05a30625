"""The gateway's MQTT link against a real Mosquitto: birth/will, outbox delivery, outages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.contract import (
    Message,
    PresenceEventMessage,
    StockSnapshot,
    encode,
    gateway_topic,
    store_topic,
)
from gateway.mqtt_link import MqttLink
from gateway.outbox import Outbox
from gateway.settings import MqttSettings
from tests.support.messages import presence_event
from tests.support.mosquitto import Broker, Listener, wait_until
from tests.support.proxy import TcpProxy

STORE, GATEWAY = "demo-store", "gw-1"
EVENTS = gateway_topic(STORE, GATEWAY, "events")
STATE = gateway_topic(STORE, GATEWAY, "state")
LinkFactory = Callable[[Outbox], MqttLink]


def event(n: int) -> PresenceEventMessage:
    return presence_event(n, STORE, GATEWAY)


def queue_events(outbox: Outbox, numbers: range) -> None:
    outbox.put_many([(event(n).event_id, EVENTS, encode(event(n)), None) for n in numbers], now=0.0)


@pytest.fixture
def received() -> list[tuple[str, Message | None]]:
    return []


@pytest.fixture
def link_factory(
    broker: Broker, tmp_path: Path, received: list[tuple[str, Message | None]]
) -> Iterator[LinkFactory]:
    links: list[MqttLink] = []

    def make(outbox: Outbox) -> MqttLink:
        link = MqttLink(
            MqttSettings(port=broker.port, reconnect_min_s=1, reconnect_max_s=2, keepalive_s=5),
            STORE,
            GATEWAY,
            outbox,
            subscriptions=[store_topic(STORE, "stock")],
            on_message=lambda topic, message: received.append((topic, message)),
        )
        links.append(link)
        link.start()
        return link

    yield make
    for link in links:
        link.stop(timeout_s=2)


def test_birth_is_retained_and_shutdown_publishes_offline(
    broker: Broker, link_factory: LinkFactory, tmp_path: Path
) -> None:
    link: MqttLink = link_factory(Outbox(tmp_path / "o.db"))
    assert link.connected.wait(10)
    late = Listener(broker.port, [STATE], "late-joiner")  # joins after the birth: retained
    wait_until(lambda: late.on(STATE), what="retained birth")
    assert json.loads(late.on(STATE)[0])["state"] == "online"
    link.stop()
    wait_until(lambda: len(late.on(STATE)) == 2, what="offline state")
    assert json.loads(late.on(STATE)[-1])["state"] == "offline"
    late.close()


def test_outbox_is_delivered_and_emptied(
    broker: Broker, link_factory: LinkFactory, tmp_path: Path
) -> None:
    listener = Listener(broker.port, [EVENTS])
    outbox = Outbox(tmp_path / "o.db")
    queue_events(outbox, range(300))
    link: MqttLink = link_factory(outbox)
    wait_until(lambda: len(outbox) == 0, what="outbox drained by PUBACKs")
    wait_until(lambda: len(listener.on(EVENTS)) >= 300, what="events at the subscriber")
    ids = [json.loads(p)["event_id"] for p in listener.on(EVENTS)]
    assert sorted(set(ids)) == [f"evt-{n:08d}" for n in range(300)]
    assert link.stats.acked == 300
    listener.close()


def test_broker_restart_loses_nothing(
    broker: Broker, link_factory: LinkFactory, tmp_path: Path
) -> None:
    """The broker goes away and comes back: every event ends up acknowledged by it."""
    outbox = Outbox(tmp_path / "o.db")
    link: MqttLink = link_factory(outbox)
    assert link.connected.wait(10)
    queue_events(outbox, range(100))
    link.notify()
    broker.stop()
    wait_until(lambda: not link.connected.is_set(), what="link to notice the outage")
    queue_events(outbox, range(100, 250))  # produced while the broker is down
    link.notify()
    assert len(outbox) >= 150
    broker.start()
    wait_until(link.connected.is_set, 20, "reconnect", lambda: link.stats)
    wait_until(lambda: len(outbox) == 0, 20, "outbox drained after the outage", lambda: link.stats)
    assert link.stats.acked == 250


def test_uplink_outage_loses_nothing_end_to_end(tmp_path: Path, broker: Broker) -> None:
    """The network to the broker is cut and restored; a subscriber that never left sees all."""
    listener = Listener(broker.port, [EVENTS])
    proxy = TcpProxy(broker.port)
    outbox = Outbox(tmp_path / "o.db")
    settings = MqttSettings(port=proxy.port, reconnect_min_s=1, reconnect_max_s=2, keepalive_s=5)
    link = MqttLink(settings, STORE, GATEWAY, outbox, [], lambda topic, message: None)
    link.start()
    try:
        assert link.connected.wait(10)
        queue_events(outbox, range(100))
        link.notify()
        wait_until(lambda: len(outbox) == 0, 20, "the first 100 acknowledged")
        proxy.cut()
        wait_until(lambda: not link.connected.is_set(), what="link to notice the cut")
        queue_events(outbox, range(100, 250))
        link.notify()
        proxy.restore()

        def state() -> str:
            seen = {int(json.loads(p)["event_id"][4:]) for p in listener.on(EVENTS)}
            missing = sorted(set(range(250)) - seen)
            return f"outbox={len(outbox)} {link.stats} missing={missing[:10]}"

        wait_until(
            lambda: len({json.loads(p)["event_id"] for p in listener.on(EVENTS)}) == 250,
            30,
            "all 250 distinct events at the subscriber",
            state,
        )
        wait_until(lambda: len(outbox) == 0, 10, "the outbox to drain", state)
    finally:
        link.stop(timeout_s=2)
        proxy.close()
        listener.close()


def test_malformed_incoming_is_counted_and_dropped(
    broker: Broker,
    link_factory: LinkFactory,
    tmp_path: Path,
    received: list[tuple[str, Message | None]],
) -> None:
    link: MqttLink = link_factory(Outbox(tmp_path / "o.db"))
    assert link.connected.wait(10)
    wait_until(link.client.is_connected, what="subscriptions")
    topic = store_topic(STORE, "stock")
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="erp")
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    good = StockSnapshot(store=STORE, ts=1.0, in_stock={"SKU-1": 3})
    # the link subscribes in on_connect; publish until the first good one is seen

    garbage = 0

    def garbage_then_good() -> bool:
        nonlocal garbage
        publisher.publish(topic, b"{garbage", qos=1).wait_for_publish(2)
        garbage += 1
        publisher.publish(topic, encode(good), qos=1).wait_for_publish(2)
        return bool(received)

    wait_until(garbage_then_good, what="a good message after garbage")
    assert link.stats.rejected["not_json"] >= 1
    assert received[0] == (topic, good)
    # an empty retained payload is the cloud withdrawing the topic: passed on, not refused
    # (it arrives after every garbage message: one publisher, one topic, in order)
    publisher.publish(topic, b"", qos=1, retain=True).wait_for_publish(2)
    wait_until(lambda: (topic, None) in received, what="the withdrawal")
    assert link.stats.rejected == {"not_json": garbage}
    publisher.disconnect()
    publisher.loop_stop()


LINK_PROCESS = """
import sys, time
from gateway.mqtt_link import MqttLink
from gateway.outbox import Outbox
from gateway.settings import MqttSettings
settings = MqttSettings(port=int(sys.argv[1]))
link = MqttLink(settings, "demo-store", "gw-1", Outbox(sys.argv[2]), [], lambda t, m: None)
link.start()
link.connected.wait(10)
print("up", flush=True)
time.sleep(60)
"""


def test_last_will_says_offline_when_the_gateway_dies(broker: Broker, tmp_path: Path) -> None:
    listener = Listener(broker.port, [STATE])
    proc = subprocess.Popen(
        [sys.executable, "-c", LINK_PROCESS, str(broker.port), str(tmp_path / "o.db")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "up"
    wait_until(lambda: listener.on(STATE), what="birth")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    wait_until(lambda: len(listener.on(STATE)) == 2, 15, "the Last Will")
    assert json.loads(listener.on(STATE)[-1])["state"] == "offline"
    listener.close()
