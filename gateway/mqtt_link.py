"""The gateway's MQTT link (paho-mqtt 2.x): birth and Last Will, outbox delivery, subscriptions.

Delivery is driven by the outbox: ``flush`` publishes rows not yet in
flight with QoS 1, and a row is deleted only when the broker's PUBACK comes
back. A reconnect re-sends what was in flight (at-least-once); every message
carries its own idempotency key. Incoming messages are parsed against the
wire contract, and anything malformed is counted and dropped, never raised.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .contract import (
    ContractError,
    GatewayState,
    Message,
    encode,
    gateway_topic,
    gateway_username,
    parse_message,
)
from .mqtt_session import connect_in_background, new_client
from .outbox import Outbox
from .settings import MqttSettings

log = logging.getLogger(__name__)

#: called with the message, or with ``None`` when a retained message was withdrawn
#: (an empty payload: the cloud deleted what the topic held)
MessageHandler = Callable[[str, Message | None], None]


@dataclass(slots=True)
class LinkStats:
    connects: int = 0
    disconnects: int = 0
    published: int = 0
    acked: int = 0
    received: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


#: the broker keeps a gateway's session (its subscriptions, what it missed) this long
SESSION_EXPIRY_S = 24 * 3600


class MqttLink:
    """One gateway's connection to the broker."""

    def __init__(
        self,
        settings: MqttSettings,
        store: str,
        gateway: str,
        outbox: Outbox,
        subscriptions: list[str],
        on_message: MessageHandler,
        version: str = "",
        clock: Callable[[], float] = time.time,
        flush_interval_s: float = 0.5,
    ) -> None:
        self.flush_interval_s = flush_interval_s
        self.settings = settings
        self.store = store
        self.gateway = gateway
        self.outbox = outbox
        self.subscriptions = subscriptions
        self.on_message = on_message
        self.version = version
        self.clock = clock
        self.stats = LinkStats()
        self.connected = threading.Event()
        self._in_flight: dict[int, int] = {}  # paho mid → outbox row id (flusher thread only)
        self._acks: deque[tuple[int, bool, str]] = deque()  # from paho's thread
        # rows up to here were handed to paho (ids only grow); paho re-sends its
        # in-flight messages after a reconnect, a restart starts again from 0
        self._high_water = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._flusher: threading.Thread | None = None
        self.state_topic = gateway_topic(store, gateway, "state")
        self.client = self._build_client()

    def _state(self, state: Literal["online", "offline"]) -> bytes:
        return encode(
            GatewayState(
                store=self.store,
                gateway=self.gateway,
                state=state,
                version=self.version,
                ts=self.clock(),
            )
        )

    def _build_client(self) -> mqtt.Client:
        s = self.settings
        client = new_client(gateway_username(self.store, self.gateway), s.protocol, persistent=True)
        if s.username:
            client.username_pw_set(
                s.username, s.password.get_secret_value() if s.password else None
            )
        if s.tls:
            client.tls_set(
                ca_certs=str(s.ca_file),
                certfile=str(s.cert_file) if s.cert_file else None,
                keyfile=str(s.key_file) if s.key_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.will_set(self.state_topic, self._state("offline"), qos=1, retain=True)
        # paho doubles the delay between attempts; the jitter in the first delay
        # keeps a store's gateways from reconnecting in lockstep after an outage
        jitter = random.uniform(0, s.reconnect_min_s)
        client.reconnect_delay_set(
            min_delay=max(1, round(s.reconnect_min_s + jitter)), max_delay=round(s.reconnect_max_s)
        )
        client.max_inflight_messages_set(s.max_inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Connect in the background (reconnecting until ``stop``) and start the flusher."""
        connect_in_background(
            self.client,
            self.settings.protocol,
            self.settings.host,
            self.settings.port,
            keepalive_s=self.settings.keepalive_s,
            session_expiry_s=SESSION_EXPIRY_S,
        )
        self.client.loop_start()
        self._flusher = threading.Thread(target=self._flush_loop, name="outbox-flush", daemon=True)
        self._flusher.start()

    def publish_now(self, topic: str, payload: bytes, qos: int = 1) -> bool:
        """Publish outside the outbox (heartbeats, resolve requests): stale when late anyway."""
        if not self.connected.is_set():
            return False
        return self.client.publish(topic, payload, qos=qos).rc == mqtt.MQTT_ERR_SUCCESS

    def notify(self) -> None:
        """New rows are in the outbox: send them now rather than at the next tick."""
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Send what can be sent, wait for the broker's acknowledgements of what is in
        flight (so a clean stop leaves no delivered row behind to send again), publish
        ``offline``, disconnect."""
        self._stopping.set()
        self._wake.set()
        if self._flusher is not None:
            self._flusher.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        while self._in_flight and self.connected.is_set() and time.monotonic() < deadline:
            self._wake.wait(0.05)  # set by each acknowledgement
            self._wake.clear()
            self._settle_acks()  # the flusher has ended: this thread settles now
        if self.connected.is_set():
            info = self.client.publish(self.state_topic, self._state("offline"), qos=1, retain=True)
            info.wait_for_publish(timeout=timeout_s)
        self.client.disconnect()
        self.client.loop_stop()

    # ------------------------------------------------------------ callbacks (paho's thread)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("MQTT broker refused the connection: %s", reason)
            return
        self.stats.connects += 1
        log.info(
            "MQTT connected to %s:%s (session %s)",
            self.settings.host,
            self.settings.port,
            "resumed" if flags.session_present else "new",
        )
        client.publish(self.state_topic, self._state("online"), qos=1, retain=True)
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        self.connected.set()
        self._wake.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.connected.clear()
        if self._stopping.is_set():
            log.info("MQTT disconnected: stopping")
            return
        self.stats.disconnects += 1
        log.warning("MQTT disconnected (%s); outbox keeps everything until acknowledged", reason)

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        # paho holds its own locks here: hand over to the flusher, never block
        self._acks.append((mid, reason.is_failure, reason.getName()))
        self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.stats.received += 1
        message: Message | None = None
        if msg.payload:
            try:
                message = parse_message(msg.topic, bytes(msg.payload))
            except ContractError as exc:
                self.stats.rejected[exc.reason] += 1
                log.warning("rejected message on %s: %s", msg.topic, exc)
                return
        try:
            self.on_message(msg.topic, message)
        except Exception:
            self.stats.rejected["handler_error"] += 1
            log.exception("handler failed for a message on %s", msg.topic)

    # ------------------------------------------------------------ delivery (flusher thread only)

    def _flush_loop(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self._settle_acks()
                while self._send_pending() > 0:
                    self._settle_acks()
            except Exception:  # the loop must outlive any one bad flush
                log.exception("outbox flush failed; retrying at the next tick")
            if self._stopping.is_set():
                return

    def _settle_acks(self) -> None:
        # Runs in the flusher thread, which registers every row's mid right after
        # publish() returns: an ack for an unknown mid is for a state message.
        acked: list[int] = []
        while self._acks:
            mid, failed, name = self._acks.popleft()
            row = self._in_flight.pop(mid, None)
            if row is None:
                continue
            if failed:
                self.stats.rejected[f"puback_{name}"] += 1
                self._high_water = min(self._high_water, row - 1)  # send it again
            else:
                acked.append(row)
        if acked:
            self.stats.acked += self.outbox.ack(acked)

    def _send_pending(self, batch: int = 200) -> int:
        """Hand outbox rows beyond the high-water mark to paho; returns how many."""
        if not self.connected.is_set():
            return 0
        room = self.settings.max_inflight * 4 - len(self._in_flight)
        if room <= 0:
            return 0
        items = self.outbox.pending(self.clock(), limit=min(batch, room), after_id=self._high_water)
        handed = 0
        for item in items:
            info = self.client.publish(item.topic, item.payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                break
            # success, or NO_CONN: paho keeps it queued and sends it on reconnect
            self._in_flight[info.mid] = item.id
            self._high_water = max(self._high_water, item.id)
            handed += 1
        self.stats.published += handed
        return handed

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)
