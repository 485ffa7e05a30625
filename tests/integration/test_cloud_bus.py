"""The cloud's MQTT bus against a real Mosquitto: shared subscriptions, refusals, redelivery."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.bus import GIVE_UP_AFTER, BusSettings, CloudBus
from gateway.contract import (
    ALL_GATEWAY_EVENTS,
    Message,
    PresenceEventMessage,
    Ruleset,
    encode,
    gateway_topic,
    store_topic,
)
from tests.support.messages import presence_event
from tests.support.mosquitto import Broker, Listener, wait_until

STORE, GATEWAY = "demo-store", "gw-1"
EVENTS = gateway_topic(STORE, GATEWAY, "events")


def event(n: int) -> PresenceEventMessage:
    return presence_event(n, STORE, GATEWAY)


class Recorder:
    """A handler that records event ids, optionally failing the first time it sees one,
    or failing everything while ``down`` is set."""

    def __init__(self, fail_once: set[str] | None = None) -> None:
        self.seen: list[str] = []
        self.fail_once = set(fail_once or ())
        self.down = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, topic: str, message: Message) -> None:
        assert isinstance(message, PresenceEventMessage)
        with self.lock:
            if message.event_id in self.fail_once or self.down.is_set():
                self.fail_once.discard(message.event_id)
                raise RuntimeError("database unavailable")
            self.seen.append(message.event_id)


@pytest.fixture
def gateway_client(broker: Broker) -> Iterator[mqtt.Client]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gateway")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def make_bus(broker: Broker) -> Iterator[Callable[[str, Recorder], CloudBus]]:
    buses: list[CloudBus] = []

    def make(client_id: str, recorder: Recorder) -> CloudBus:
        bus = CloudBus(
            BusSettings(port=broker.port, client_id=client_id), {ALL_GATEWAY_EVENTS: recorder}
        )
        bus.start()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        bus.stop()


def publish(client: mqtt.Client, payload: bytes, topic: str = EVENTS) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(5)


def test_two_workers_share_the_events_each_handled_once(
    gateway_client: mqtt.Client, make_bus: Callable[[str, Recorder], CloudBus]
) -> None:
    first, second = Recorder(), Recorder()
    buses = [make_bus("worker-1", first), make_bus("worker-2", second)]
    wait_until(lambda: all(b.stats.connects for b in buses), 10, "both workers subscribed")
    for n in range(200):
        publish(gateway_client, encode(event(n)))
    wait_until(lambda: len(first.seen) + len(second.seen) >= 200, 10, "200 events handled")
    handled = Counter(first.seen + second.seen)
    assert set(handled) == {event(n).event_id for n in range(200)}
    assert max(handled.values()) == 1
    assert first.seen and second.seen  # the broker spread them over both workers


def test_a_malformed_message_is_counted_and_the_worker_carries_on(
    gateway_client: mqtt.Client, make_bus: Callable[[str, Recorder], CloudBus]
) -> None:
    recorder = Recorder()
    bus = make_bus("worker-1", recorder)
    publish(gateway_client, b"\xff not json")
    publish(gateway_client, b'{"schema": 1, "kind": "presence"}')
    publish(gateway_client, encode(event(1)))
    wait_until(lambda: recorder.seen, 10, "the valid event after the bad ones")
    assert recorder.seen == [event(1).event_id]
    assert bus.stats.rejected == Counter({"not_json": 1, "invalid": 1})


def test_a_message_whose_handler_failed_is_retried_until_it_succeeds(
    gateway_client: mqtt.Client, make_bus: Callable[[str, Recorder], CloudBus]
) -> None:
    flaky = Recorder(fail_once={event(2).event_id})
    bus = make_bus("worker-1", flaky)
    for n in range(1, 4):
        publish(gateway_client, encode(event(n)))
    wait_until(lambda: len(flaky.seen) == 3, 10, "all three, the failed one on a retry")
    assert flaky.seen[-1] == event(2).event_id
    # counted once the handler returned, a moment after it recorded the event
    wait_until(lambda: bus.stats.handled == 3, 5, "the count of handled messages")
    assert (bus.stats.handler_errors, bus.stats.retried) == (1, 1)


def test_what_failed_until_the_worker_stopped_is_delivered_to_its_next_session(
    gateway_client: mqtt.Client, make_bus: Callable[[str, Recorder], CloudBus]
) -> None:
    broken = Recorder()
    bus = make_bus("worker-1", broken)
    broken.down.set()  # the database is down ...
    for n in range(1, 4):
        publish(gateway_client, encode(event(n)))
    wait_until(lambda: bus.stats.handler_errors >= 3, 10, "three failures")
    bus.stop()  # ... and the worker stops (or dies): its session keeps the unacknowledged
    broken.down.clear()
    bus.start()
    wait_until(lambda: len(broken.seen) == 3, 10, "the failed events, delivered again")
    assert sorted(broken.seen) == [event(n).event_id for n in range(1, 4)]


def test_a_retained_ruleset_reaches_a_gateway_that_connects_later(
    broker: Broker, make_bus: Callable[[str, Recorder], CloudBus]
) -> None:
    bus = make_bus("publisher", Recorder())
    ruleset = Ruleset(
        store=STORE,
        version=3,
        compiled_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        timezone="Europe/Berlin",
        rules=[],
    )
    bus.publish(store_topic(STORE, "ruleset"), ruleset, retain=True)
    late = Listener(broker.port, [store_topic(STORE, "ruleset")], "late-gateway")
    try:
        wait_until(lambda: late.on(store_topic(STORE, "ruleset")), 10, "the retained ruleset")
        assert late.on(store_topic(STORE, "ruleset")) == [encode(ruleset)]
    finally:
        late.close()


def test_a_message_that_can_never_succeed_is_given_up_and_blocks_nothing(
    broker: Broker, gateway_client: mqtt.Client
) -> None:
    """Event 2 fails with a bug (not an outage) every time; event 3 fails once, as in a
    short outage. Event 3 still gets through; event 2 is dropped after three attempts,
    acknowledged, so a new session does not bring it back."""
    seen: list[str] = []
    failures: Counter[str] = Counter()

    def handler(topic: str, message: Message) -> None:
        assert isinstance(message, PresenceEventMessage)
        failures[message.event_id] += 1
        if message.event_id == event(2).event_id:
            raise ValueError("a bug: this event can never be handled")
        if message.event_id == event(3).event_id and failures[message.event_id] == 1:
            raise ConnectionError("the database, briefly away")
        seen.append(message.event_id)

    def make() -> CloudBus:
        bus = CloudBus(
            BusSettings(port=broker.port, client_id="worker-1"),
            {ALL_GATEWAY_EVENTS: handler},
            transient=lambda exc: isinstance(exc, ConnectionError),
        )
        bus.start()
        return bus

    bus = make()
    try:
        for n in range(1, 5):
            publish(gateway_client, encode(event(n)))
        wait_until(lambda: bus.stats.abandoned == 1 and len(seen) == 3, 15, "the give-up")
        assert sorted(seen) == [event(n).event_id for n in (1, 3, 4)]
        assert failures[event(2).event_id] == GIVE_UP_AFTER
    finally:
        bus.stop()
    again = make()  # a new session: nothing was left unacknowledged
    try:
        publish(gateway_client, encode(event(5)))
        wait_until(lambda: event(5).event_id in seen, 10, "the next event")
        assert failures[event(2).event_id] == GIVE_UP_AFTER
    finally:
        again.stop()
