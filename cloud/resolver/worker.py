"""The resolver as a running worker: resolve requests in over MQTT, answers out.

The sender is taken from the topic, which the broker's ACL vouches for, never
from the payload: a gateway of one store asking "for" another store gets that
refused and counted, not the other store's tokens. The table's windows are
advanced by a scheduler, so the next window's EIDs exist before it begins, and
kept in step with opt-ins and opt-outs by the same job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from cloud.bus import BusSettings, CloudBus
from cloud.db.engine import is_outage
from gateway.contract import (
    ALL_RESOLVE_REQUESTS,
    Message,
    ResolveRequest,
    gateway_of,
    gateway_topic,
)

from .service import ResolverService

log = logging.getLogger(__name__)

ADVANCE_EVERY_S = 10.0


class ResolverWorker:
    def __init__(
        self,
        service: ResolverService,
        bus_settings: BusSettings,
        clock: Callable[[], float] = time.time,
        sync: Callable[[], tuple[int, int]] | None = None,
        advance_every_s: float = ADVANCE_EVERY_S,
    ) -> None:
        self.advance_every_s = advance_every_s
        self.service = service
        self.sync = sync
        self.clock = clock
        self.refused: Counter[str] = Counter()
        self._table_lock = threading.Lock()  # advance and membership changes, not lookups
        self.bus = CloudBus(
            bus_settings, {ALL_RESOLVE_REQUESTS: self.on_request}, transient=is_outage
        )
        self._scheduler = BackgroundScheduler()

    def advance(self) -> None:
        with self._table_lock:
            if self.sync is not None:
                added, removed = self.sync()
                if added or removed:
                    log.info("resolver table: %d installs added, %d removed", added, removed)
            computed = self.service.table.advance(self.clock())
        if computed:
            log.info("resolver table advanced: %d EIDs computed", computed)

    def start(self) -> None:
        self.advance()  # the windows around now exist before the first request is taken
        self._scheduler.add_job(self.advance, "interval", seconds=self.advance_every_s)
        self._scheduler.start()
        self.bus.start()

    def stop(self) -> None:
        self.bus.stop()
        self._scheduler.shutdown(wait=False)

    def on_request(self, topic: str, message: Message) -> None:
        if not isinstance(message, ResolveRequest):
            return
        store, gateway = gateway_of(topic)
        if (message.store, message.gateway) != (store, gateway):
            self.refused["sender_mismatch"] += 1
            log.warning(
                "refused a resolve request on %s claiming to come from %s/%s",
                topic,
                message.store,
                message.gateway,
            )
            return
        response = self.service.answer(message, self.clock())
        # QoS 1 without waiting: a lost answer costs only the gateway's next request
        self.bus.publish(gateway_topic(store, gateway, "resolved"), response, timeout_s=None)
