"""Push channels for real: a webhook receiver on a local HTTP server, the app topic on Mosquitto."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from cloud.bus import BusSettings, CloudBus
from cloud.db.engine import is_outage
from cloud.push import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    MqttPush,
    PushChannel,
    PushRouter,
    WebhookPush,
    sign,
)
from gateway.contract import OfferPush, app_offers_topic, encode
from tests.support.mosquitto import Broker, Listener, wait_until

OFFER = OfferPush(
    delivery_id="dlv-00000001",
    campaign="spring",
    offer="ten-percent",
    title="10 % off shoes",
    body="Today only, at the shoe wall.",
    ts=1_790_000_000.0,
)


@dataclass
class Receiver:
    """What the retailer's push service received, and the status it answers with."""

    url: str
    status: int = 202
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((dict(self.headers.items()), body))
            self.send_response(state.status)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/push"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def test_webhook_posts_the_offer_signed(receiver: Receiver) -> None:
    result = WebhookPush(clock=lambda: 1_790_000_123.0).send(
        PushChannel("webhook", receiver.url, secret="s3cret"), OFFER
    )
    assert result.accepted, result
    [(headers, body)] = receiver.requests
    assert body == encode(OFFER)
    assert headers[TIMESTAMP_HEADER] == "1790000123"
    assert headers[SIGNATURE_HEADER] == sign("s3cret", "1790000123", body)
    assert headers[SIGNATURE_HEADER] != sign("other", "1790000123", body)


def test_webhook_refusals_and_unreachable_receivers_are_reported(receiver: Receiver) -> None:
    receiver.status = 503
    result = WebhookPush().send(PushChannel("webhook", receiver.url), OFFER)
    assert (result.accepted, result.detail) == (False, "http_503")
    gone = WebhookPush(timeout_s=2).send(PushChannel("webhook", "http://127.0.0.1:9/x"), OFFER)
    assert not gone.accepted
    assert gone.detail.startswith("unreachable")


def test_mqtt_push_reaches_the_apps_topic_and_unconfigured_kinds_say_so(broker: Broker) -> None:
    app = Listener(broker.port, [app_offers_topic("install-1")], "app")
    bus = CloudBus(BusSettings(port=broker.port, client_id="pusher"), {})
    bus.start()
    try:
        router = PushRouter({"mqtt": MqttPush(bus.publish)})
        assert router.send(PushChannel("mqtt", "install-1"), OFFER).accepted
        wait_until(lambda: app.on(app_offers_topic("install-1")), 10, "the offer at the app")
        assert app.on(app_offers_topic("install-1")) == [encode(OFFER)]
        fcm = router.send(PushChannel("fcm", "device-token"), OFFER)
        assert (fcm.accepted, fcm.detail) == (False, "not_configured")
    finally:
        bus.stop()
        app.close()


def test_an_mqtt_push_while_our_broker_is_down_is_an_outage_not_a_refusal(
    broker: Broker,
) -> None:
    """The bus retries an outage until the broker is back; a ``push_failed`` would have
    given the offer up for good."""
    bus = CloudBus(BusSettings(port=broker.port, client_id="pusher-outage"), {})
    bus.start()
    try:
        push = MqttPush(bus.publish)
        wait_until(bus.connected.is_set, 10, "the bus connected")
        broker.stop()
        wait_until(lambda: not bus.connected.is_set(), 10, "the bus noticing the outage")
        with pytest.raises((ConnectionError, TimeoutError)) as raised:
            push.send(PushChannel("mqtt", "install-1"), OFFER)
        assert is_outage(raised.value)
    finally:
        bus.stop()
