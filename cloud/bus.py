"""The cloud's MQTT connection: gateway traffic in through shared subscriptions, rulesets
and offers out.

Several cloud workers run side by side: each subscribes to the gateway topics as
``$share/{group}/…``, so the broker hands every message to exactly one of them.
A message is acknowledged only after its handler returned (paho's manual
acknowledgement): a worker killed mid-way leaves it unacknowledged, and the
broker delivers it again, to this worker's next session or another worker's.
Handlers must therefore be idempotent (events carry an id for that). Payloads
are parsed with the shared contract; a refused one is counted by reason,
logged once per reason, acknowledged (it will not get better) and dropped.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.contract import ContractError, Message, encode, parse_message
from gateway.mqtt_session import MqttProtocol, connect_in_background, new_client

log = logging.getLogger(__name__)

Handler = Callable[[str, Message], None]
SHARE_GROUP = "nahfeld-cloud"


@dataclass(frozen=True, slots=True)
class BusSettings:
    host: str = "localhost"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    client_id: str = "nahfeld-cloud"
    #: None: plain subscriptions (one worker only; for brokers without MQTT 5)
    share_group: str | None = SHARE_GROUP
    protocol: MqttProtocol = "5"
    keepalive_s: int = 30
    #: how long the broker keeps an absent worker's session, queueing its share of the
    #: traffic and what it had not acknowledged; 0 ends the session on disconnect
    session_expiry_s: int = 3600


@dataclass(slots=True)
class BusStats:
    received: int = 0
    handled: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    handler_errors: int = 0
    connects: int = 0
    published: int = 0


class CloudBus:
    """One worker's MQTT session; ``handlers`` maps topic filters (unshared) to handlers."""

    def __init__(self, settings: BusSettings, handlers: Mapping[str, Handler]) -> None:
        self.settings = settings
        self.handlers = dict(handlers)
        self.stats = BusStats()
        self.connected = threading.Event()
        #: called on paho's thread after each successful (re)connection
        self.on_connected: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self.client = new_client(
            settings.client_id, settings.protocol, persistent=True, manual_ack=True
        )
        if settings.username:
            self.client.username_pw_set(settings.username, settings.password)
        if settings.ca_file is not None:
            self.client.tls_set(ca_certs=str(settings.ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def shared(self, topic_filter: str) -> str:
        if self.settings.share_group is None:
            return topic_filter
        return f"$share/{self.settings.share_group}/{topic_filter}"

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float | None = 10.0) -> None:
        """Connect and subscribe; returns once the broker confirmed both (``timeout_s=None``:
        at once, connecting in the background and retrying until it succeeds). The session
        is persistent: unacknowledged messages survive a restart of the worker."""
        connect_in_background(
            self.client,
            self.settings.protocol,
            self.settings.host,
            self.settings.port,
            keepalive_s=self.settings.keepalive_s,
            session_expiry_s=self.settings.session_expiry_s,
        )
        self.client.loop_start()
        if timeout_s is not None and not self.connected.wait(timeout_s):
            self.stop()
            raise ConnectionError(
                f"no MQTT connection to {self.settings.host}:{self.settings.port} "
                f"within {timeout_s:g} s"
            )

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("MQTT connection refused: %s", reason)
            return
        self.stats.connects += 1
        log.info("MQTT connected to %s:%s", self.settings.host, self.settings.port)
        if self.handlers:  # ready once the broker confirmed the subscriptions
            client.subscribe([(self.shared(topic), 1) for topic in self.handlers])
        else:
            self.connected.set()
        for callback in self.on_connected:
            try:
                callback()
            except Exception:
                log.exception("a connection callback failed")

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        props: Properties | None,
    ) -> None:
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            log.error("subscriptions refused by the broker: %s", ", ".join(refused))
        self.connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        self.connected.clear()
        if reason.value != 0:
            log.warning("MQTT connection lost (%s); reconnecting", reason)

    # ------------------------------------------------------------ inbound

    def _handler_for(self, topic: str) -> Handler | None:
        for topic_filter, handler in self.handlers.items():
            if mqtt.topic_matches_sub(topic_filter, topic):
                return handler
        return None

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.stats.received += 1
        try:
            message = parse_message(msg.topic, bytes(msg.payload))
        except ContractError as exc:
            with self._lock:
                first = exc.reason not in self.stats.rejected
                self.stats.rejected[exc.reason] += 1
            if first:
                log.warning("refused a message on %s: %s (counted from now on)", msg.topic, exc)
            client.ack(msg.mid, msg.qos)
            return
        handler = self._handler_for(msg.topic)
        if handler is None:
            client.ack(msg.mid, msg.qos)
            return
        try:
            handler(msg.topic, message)
        except Exception:
            # not acknowledged: the broker delivers it again after the next reconnect
            self.stats.handler_errors += 1
            log.exception(
                "handling a %s on %s failed; left unacknowledged", message.kind, msg.topic
            )
            return
        self.stats.handled += 1
        client.ack(msg.mid, msg.qos)

    # ------------------------------------------------------------ outbound

    def publish(
        self, topic: str, message: Message, retain: bool = False, timeout_s: float | None = 5.0
    ) -> None:
        """Publish at QoS 1; with ``timeout_s``, wait for the broker's acknowledgement."""
        info = self.send(topic, encode(message), retain=retain)
        if timeout_s is not None:
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise TimeoutError(f"no acknowledgement for {topic} within {timeout_s:g} s")

    def send(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        """Hand a payload to paho at QoS 1 without waiting (an empty retained payload
        withdraws the topic's retained message); counted as published."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self.stats.published += 1
        return info
