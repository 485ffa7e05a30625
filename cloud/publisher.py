"""Stores' rulesets and stock snapshots, published retained as soon as they change.

The API's services announce a change after it committed
(:mod:`cloud.services.changes`); :meth:`StorePublisher.notify` only notes the
store in a set and returns, so a request never waits for the broker and the
API answers whether the broker is up or not. A thread of its own takes the
set, compiles the stores' rulesets from the database in bulk and publishes
them retained at QoS 1, waiting for the broker's acknowledgements. A burst of
edits to one store coalesces into one publish of its latest version; a gateway
that was offline gets the latest on reconnect, from the broker.

Each (re)connection to the broker republishes every store: the broker may have
lost its retained messages, and what changed while it was unreachable was only
noted. So does every ``refresh_s`` without a change: a gateway whose ruleset
grows older than a day (its ``ruleset_stale_s``) knows the cloud is not
reaching it, not merely that nobody edited a rule. A deleted store's retained
ruleset and stock are withdrawn (an empty retained payload, MQTT's way of
deleting one). The stock snapshot carries only the SKUs the store's rules
depend on, so it stays small whatever the ERP sends; it is published again
after a stock upload, on reconnection, or when a new ruleset depends on other
SKUs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import paho.mqtt.client as mqtt
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract import Ruleset, StockSnapshot, encode, store_topic
from gateway.offers.rules import RulesetBody

from .bus import CloudBus
from .db.base import utcnow
from .db.models import Store
from .services.changes import Change
from .services.ruleset import store_rulesets
from .services.stock import stock_levels

log = logging.getLogger(__name__)

#: stores compiled and sent at a time
CHUNK = 100


@dataclass(slots=True)
class PublisherStats:
    rulesets: int = 0
    stock_snapshots: int = 0
    withdrawn: int = 0
    #: rounds that failed (broker or database) and were retried
    failures: int = 0


def ruleset_message(body: RulesetBody, compiled_at: datetime) -> Ruleset:
    """The wire form of a compiled ruleset, as gateways receive it."""
    return Ruleset(
        store=body.store,
        version=body.version,
        compiled_at=compiled_at,
        timezone=body.timezone,
        rules=[rule.model_dump(mode="json") for rule in body.rules],
    )


class StorePublisher:
    """Publishes changed stores from one background thread; :meth:`notify` is the change hook."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        bus: CloudBus,
        *,
        ack_timeout_s: float = 5.0,
        retry_s: float = 5.0,
        refresh_s: float | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.ack_timeout_s = ack_timeout_s
        self.retry_s = retry_s
        self.refresh_s = refresh_s
        self._refreshed_at = time.monotonic()  # the first connection publishes everything
        self.clock = clock
        self.stats = PublisherStats()
        self._pending: dict[str, set[Change]] = {}
        #: the SKUs each store's last published stock snapshot carried (this thread only)
        self._published_skus: dict[str, frozenset[str]] = {}
        self._everything = False
        self._busy = False
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        bus.on_connected.append(self.publish_everything)

    # ------------------------------------------------------------ what to publish

    def notify(self, store_id: str, change: Change) -> None:
        with self._wake:
            self._pending.setdefault(store_id, set()).add(change)
            self._wake.notify_all()

    def publish_everything(self) -> None:
        """Republish every store (at each broker (re)connection)."""
        with self._wake:
            self._everything = True
            self._wake.notify_all()

    def idle(self) -> bool:
        """Everything noted so far is published (acknowledged by the broker)."""
        with self._wake:
            return not (self._pending or self._everything or self._busy)

    def wait_idle(self, timeout_s: float) -> bool:
        with self._wake:
            return self._wake.wait_for(
                lambda: not (self._pending or self._everything or self._busy), timeout_s
            )

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the publishing thread and connect in the background (the first
        connection publishes everything)."""
        self._thread = threading.Thread(target=self._run, name="ruleset-publisher", daemon=True)
        self._thread.start()
        self.bus.start(timeout_s=None)

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.bus.stop()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and not (
                    (self._pending or self._everything) and self.bus.connected.is_set()
                ):
                    # woken by a change or a (re)connection; the timeout re-checks the
                    # connection, which paho's thread may have lost meanwhile, and the refresh
                    if self._refresh_due():
                        self._everything = True
                        continue
                    self._wake.wait(1.0)
                if self._stopping:
                    return
                batch, everything = self._pending, self._everything
                self._pending, self._everything, self._busy = {}, False, True
            try:
                self.publish(batch, everything=everything)
            except Exception as exc:
                self.stats.failures += 1
                log.warning("publishing %d store(s) failed, retrying: %s", len(batch), exc)
                with self._wake:
                    for store_id, changes in batch.items():
                        self._pending.setdefault(store_id, set()).update(changes)
                    self._everything |= everything
                    self._busy = False
                    self._wake.wait(self.retry_s)
            else:
                with self._wake:
                    if everything:
                        self._refreshed_at = time.monotonic()
                    self._busy = False
                    self._wake.notify_all()

    def _refresh_due(self) -> bool:
        return (
            self.refresh_s is not None
            and not self._everything
            and time.monotonic() - self._refreshed_at >= self.refresh_s
        )

    # ------------------------------------------------------------ one round

    def publish(self, batch: dict[str, set[Change]], *, everything: bool = False) -> None:
        """Compile and publish ``batch`` (and with ``everything``, every store), retained;
        returns once the broker acknowledged all of it, raises if it did not. Stores go
        in chunks, each sent as soon as it is compiled, so the broker and the network
        work while the next chunk compiles."""
        sent: list[tuple[str, mqtt.MQTTMessageInfo]] = []
        stock_sent: dict[str, frozenset[str]] = {}
        with self.sessions() as session:
            if everything:
                for store_id in session.scalars(select(Store.id)):
                    batch.setdefault(store_id, set()).update(("ruleset", "stock"))
            stores = sorted(batch)
            for start in range(0, len(stores), CHUNK):
                chunk = {store_id: batch[store_id] for store_id in stores[start : start + CHUNK]}
                sent += self._publish_chunk(session, chunk, stock_sent)
        for topic, info in sent:
            info.wait_for_publish(self.ack_timeout_s)
            if not info.is_published():
                raise TimeoutError(
                    f"no acknowledgement for {topic} within {self.ack_timeout_s:g} s"
                )
        self._published_skus.update(stock_sent)  # only once the broker has them
        if batch:
            log.info("published %d store(s)", len(batch))

    def _publish_chunk(
        self,
        session: Session,
        chunk: dict[str, set[Change]],
        stock_sent: dict[str, frozenset[str]],
    ) -> list[tuple[str, mqtt.MQTTMessageInfo]]:
        bodies = store_rulesets(session, chunk)
        skus = {
            store_id: frozenset(rule.sku for rule in body.rules if rule.sku is not None)
            for store_id, body in bodies.items()
        }
        # a new ruleset that depends on the same SKUs needs no new stock snapshot
        stale = {
            store_id
            for store_id, wanted in skus.items()
            if "stock" in chunk[store_id] or self._published_skus.get(store_id) != wanted
        }
        levels = stock_levels(session, {store_id: skus[store_id] for store_id in stale})
        now = self.clock()
        sent: list[tuple[str, mqtt.MQTTMessageInfo]] = []
        for store_id, changes in chunk.items():
            ruleset_topic = store_topic(store_id, "ruleset")
            stock_topic = store_topic(store_id, "stock")
            body = bodies.get(store_id)
            if body is None:  # the store was deleted
                sent += self._send([(ruleset_topic, b""), (stock_topic, b"")])
                self._published_skus.pop(store_id, None)
                self.stats.withdrawn += 1
                continue
            if "ruleset" in changes:
                sent += self._send([(ruleset_topic, encode(ruleset_message(body, now)))])
                self.stats.rulesets += 1
            if store_id in stale:
                snapshot = StockSnapshot(
                    store=store_id, ts=now.timestamp(), in_stock=levels[store_id]
                )
                sent += self._send([(stock_topic, encode(snapshot))])
                stock_sent[store_id] = skus[store_id]
                self.stats.stock_snapshots += 1
        return sent

    def _send(
        self, messages: Iterable[tuple[str, bytes]]
    ) -> list[tuple[str, mqtt.MQTTMessageInfo]]:
        return [(topic, self.bus.send(topic, payload, retain=True)) for topic, payload in messages]
