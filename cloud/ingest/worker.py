"""Ingestion as a running worker: gateway events in through the shared subscription.

The sender is taken from the topic (the broker's ACL vouches for it), never
from the payload. Presence events are not kept: the funnel starts at offer
decisions, and nothing about a person's movements is stored in the cloud.
"""

from __future__ import annotations

import logging
from collections import Counter

from cloud.bus import BusSettings, CloudBus
from cloud.db.engine import is_outage
from gateway.contract import ALL_GATEWAY_EVENTS, Message, OfferDecisionMessage, gateway_of

from .service import Ingestor

log = logging.getLogger(__name__)


class IngestWorker:
    def __init__(self, bus_settings: BusSettings) -> None:
        self.bus = CloudBus(bus_settings, {ALL_GATEWAY_EVENTS: self.on_event}, transient=is_outage)
        self.ingestor: Ingestor | None = None  # set before start: it pushes through self.bus
        self.refused: Counter[str] = Counter()
        self.presence_events = 0

    def start(self) -> None:
        if self.ingestor is None:
            raise RuntimeError("an IngestWorker needs its ingestor before it starts")
        self.bus.start()

    def stop(self) -> None:
        self.bus.stop()

    def on_event(self, topic: str, message: Message) -> None:
        store, gateway = gateway_of(topic)
        if (getattr(message, "store", store), getattr(message, "gateway", gateway)) != (
            store,
            gateway,
        ):
            self.refused["sender_mismatch"] += 1
            log.warning("refused an event on %s claiming another sender", topic)
            return
        if not isinstance(message, OfferDecisionMessage):
            self.presence_events += 1
            return
        assert self.ingestor is not None
        outcome = self.ingestor.handle(message)
        log.debug("offer decision %s: %s", message.event_id, outcome)
