"""The cloud's MQTT connection: gateway traffic in through shared subscriptions, rulesets
and offers out.

Several cloud workers run side by side: each subscribes to the gateway topics as
``$share/{group}/…``, so the broker hands every message to exactly one of them.
Payloads are parsed on paho's network thread with the shared contract (a
refused one is counted by reason, logged once per reason, acknowledged — it
will not get better — and dropped); handlers run one at a time on a thread of
their own, so they may wait for the broker (an offer's push waits for its
PUBACK before it counts as sent). A message is acknowledged only after its
handler returned (paho's manual acknowledgement): a worker killed mid-way
leaves it unacknowledged, and the broker delivers it again, to this worker's
next session or another worker's. Handlers must therefore be idempotent
(events carry an id for that). A handler that fails (the database is down,
say) leaves its message unacknowledged, to be tried again after a pause that
grows while failures go on (MQTT would redeliver it only to a new session).

A stopped worker's session stays in the shared subscription (so a restart, or
a redeploy of every worker, loses nothing): the broker keeps queueing its
share for it until the session expires. A worker taken away for good is
therefore retired (:meth:`CloudBus.retire`): it unsubscribes, handles what its
session still holds, and ends the session.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.contract import ContractError, Message, encode, parse_message
from gateway.mqtt_session import MqttProtocol, connect_in_background, end_session, new_client

log = logging.getLogger(__name__)

Handler = Callable[[str, Message], None]
SHARE_GROUP = "nahfeld-cloud"
#: attempts at a message whose handler fails for a reason that is not an outage
GIVE_UP_AFTER = 3


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
    #: messages handled on a later attempt, after their handler had failed
    retried: int = 0
    #: messages whose handler kept failing for a reason that is no outage: dropped
    abandoned: int = 0
    connects: int = 0
    published: int = 0


class CloudBus:
    """One worker's MQTT session; ``handlers`` maps topic filters (unshared) to handlers."""

    def __init__(
        self,
        settings: BusSettings,
        handlers: Mapping[str, Handler],
        transient: Callable[[Exception], bool] = lambda exc: True,
    ) -> None:
        """``transient`` tells an outage that will pass (retried for as long as it lasts)
        from a failure that will not (given up on after ``GIVE_UP_AFTER`` attempts)."""
        self.settings = settings
        self.transient = transient
        self.handlers = dict(handlers)
        self.stats = BusStats()
        self.connected = threading.Event()
        #: called on paho's thread after each successful (re)connection
        self.on_connected: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        #: (message, parsed, connection it came on), in arrival order
        self._fresh: deque[tuple[mqtt.MQTTMessage, Message, int]] = deque()
        #: the same and the failures so far, oldest first
        self._failed: list[tuple[mqtt.MQTTMessage, Message, int, int]] = []
        #: counts connections: a message is acknowledged on the one it came on only (its
        #: packet id means nothing, or another message, on the next)
        self._connection = 0
        self._retry_at = 0.0
        self._stopping = False
        #: messages taken off ``_fresh`` or ``_failed`` whose handler has not finished
        self._in_hand = 0
        self._last_received = time.monotonic()
        self._unsubscribed = threading.Event()
        self._handling: threading.Thread | None = None
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
        self.client.on_unsubscribe = lambda *_: self._unsubscribed.set()

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
        self._stopping = False
        self._handling = threading.Thread(
            target=self._handle_loop, name="bus-handlers", daemon=True
        )
        self._handling.start()
        if timeout_s is not None and not self.connected.wait(timeout_s):
            self.stop()
            raise ConnectionError(
                f"no MQTT connection to {self.settings.host}:{self.settings.port} "
                f"within {timeout_s:g} s"
            )

    def stop(self) -> None:
        """Disconnect; what is still unacknowledged waits in the broker's session."""
        self._close(drop_session=False)

    def _close(self, *, drop_session: bool) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
        if self._handling is not None:
            self._handling.join(10)
        with self._lock:  # unacknowledged: the broker's session keeps them (unless ended)
            self._fresh.clear()
            self._failed.clear()
        if drop_session:
            end_session(self.client)
        else:
            self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()

    def retire(self, quiet_s: float = 2.0, timeout_s: float = 60.0) -> bool:
        """Leave the shared subscription for good and end the session: unsubscribe (the
        broker hands this session no new share), handle what it still delivers (what
        queued for it while the worker was away) until nothing has come for ``quiet_s``,
        then disconnect with a session expiry of 0, so the broker drops the session.
        ``True`` when everything delivered was handled within ``timeout_s``; what was
        not is lost with the session. Needs MQTT 5 and a share group."""
        if self.settings.share_group is None or self.settings.protocol != "5":
            raise ValueError("retiring needs MQTT 5 shared subscriptions (a share group)")
        if not self.connected.wait(timeout_s):
            raise ConnectionError(f"not connected to {self.settings.host}:{self.settings.port}")
        self._unsubscribed.clear()
        self.client.unsubscribe([self.shared(topic) for topic in self.handlers])
        if not self._unsubscribed.wait(timeout_s):
            raise TimeoutError("the broker did not confirm the unsubscription")
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while time.monotonic() < deadline:
                busy = self._fresh or self._failed or self._in_hand
                if not busy and time.monotonic() - self._last_received >= quiet_s:
                    break
                self._wake.wait(0.1)
            drained = not (self._fresh or self._failed or self._in_hand)
        self._close(drop_session=True)
        log.info(
            "%s retired: unsubscribed, %s, session ended",
            self.settings.client_id,
            "everything delivered handled" if drained else "NOT everything handled in time",
        )
        return drained

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
        with self._lock:
            self._connection += 1
            if flags.session_present:  # the broker hands back all it has not had acked
                self._fresh.clear()
                self._failed.clear()
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
        if self._handler_for(msg.topic) is None:
            client.ack(msg.mid, msg.qos)
            return
        with self._lock:
            self._fresh.append((msg, message, self._connection))
            self._last_received = time.monotonic()
            self._wake.notify_all()

    def _handle_loop(self, first_pause_s: float = 0.5, max_pause_s: float = 15.0) -> None:
        """Run handlers in arrival order; failed messages again, each on its own, once their
        pause is over (doubling while failures go on)."""
        pause = first_pause_s
        while True:
            with self._lock:
                while not self._stopping:
                    retrying = bool(self._failed) and time.monotonic() >= self._retry_at
                    if retrying or self._fresh:
                        break
                    timeout = self._retry_at - time.monotonic() if self._failed else None
                    self._wake.wait(timeout)
                if self._stopping:
                    return
                if retrying:
                    batch, self._failed = self._failed, []
                else:
                    batch = [(*self._fresh.popleft(), 0)]
                self._in_hand = len(batch)
            still = []
            for msg, message, connection, attempts in batch:
                failures = self._attempt(msg, message, connection, attempts)
                if failures is not None:
                    still.append((msg, message, connection, failures))
            with self._lock:
                self._in_hand = 0
                self._wake.notify_all()
                if retrying:
                    self._failed[:0] = still  # before those that failed meanwhile
                    pause = min(pause * 2, max_pause_s) if still else first_pause_s
                    self._retry_at = time.monotonic() + pause
                elif still:
                    if not self._failed:
                        pause = first_pause_s
                        self._retry_at = time.monotonic() + pause
                    self._failed.extend(still)

    def _attempt(
        self, msg: mqtt.MQTTMessage, message: Message, connection: int, failures: int
    ) -> int | None:
        """Run the handler: ``None`` when the message is done with (handled, or given up
        on), else how many times it has failed now."""
        handler = self._handler_for(msg.topic)
        assert handler is not None
        try:
            handler(msg.topic, message)
        except Exception as exc:
            failures += 1
            if failures == 1:
                self.stats.handler_errors += 1
                log.exception("handling a %s on %s failed", message.kind, msg.topic)
            else:
                log.warning("handling a %s failed again: %s", message.kind, exc)
            if not self.transient(exc) and failures >= GIVE_UP_AFTER:
                # not an outage that will pass: a message that fails like this will fail
                # forever, and would hold one of the broker's in-flight slots meanwhile
                self.stats.abandoned += 1
                log.error(
                    "gave up on a %s on %s after %d attempts (%s); acknowledged and dropped",
                    message.kind,
                    msg.topic,
                    failures,
                    exc,
                )
                self._ack(msg, connection)
                return None
            return failures
        self.stats.handled += 1
        self.stats.retried += failures > 0
        self._ack(msg, connection)
        return None

    def _ack(self, msg: mqtt.MQTTMessage, connection: int) -> None:
        with self._lock:
            current = connection == self._connection
        if current:
            self.client.ack(msg.mid, msg.qos)
        # else: the broker has it again for the new session, and a handler is idempotent

    # ------------------------------------------------------------ outbound

    def publish(
        self, topic: str, message: Message, retain: bool = False, timeout_s: float | None = 5.0
    ) -> None:
        """Publish at QoS 1; with ``timeout_s``, wait for the broker's acknowledgement.
        Not connected: :class:`ConnectionError`; no acknowledgement in time:
        :class:`TimeoutError` (both an outage to ``is_outage``)."""
        info = self.send(topic, encode(message), retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"cannot publish {topic}: {mqtt.error_string(info.rc)}")
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
