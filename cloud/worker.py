"""A cloud worker: the EID resolver and event ingestion, assembled from the settings.

``nahfeld cloud worker --name N`` runs one; several run side by side on the
shared subscriptions (with PostgreSQL: SQLite serialises writers, so one
worker is its limit). The name keeps each worker's MQTT sessions stable across
restarts, so what it had not acknowledged is delivered to it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from .db.engine import make_engine, make_sessionmaker
from .final_check import GlobalCaps
from .ingest.service import Ingestor
from .ingest.worker import IngestWorker
from .push import MqttPush, PushRouter, WebhookPush
from .resolver.directory import DatabaseDirectory, TableSync
from .resolver.service import ResolverService
from .resolver.table import EidResolverTable
from .resolver.worker import ADVANCE_EVERY_S, ResolverWorker
from .services.installs import token_secret
from .settings import CloudSettings

log = logging.getLogger(__name__)


@dataclass
class CloudWorker:
    engine: Engine
    resolver: ResolverWorker
    ingest: IngestWorker

    def start(self) -> None:
        self.resolver.start()
        self.ingest.start()
        log.info(
            "cloud worker running: %d opted-in installs in the resolver table",
            len(self.resolver.service.table),
        )

    def stop(self) -> None:
        self.ingest.stop()
        self.resolver.stop()
        self.engine.dispose()

    def retire(self, quiet_s: float = 2.0, timeout_s: float = 60.0) -> bool:
        """Take this worker away for good (see :meth:`CloudBus.retire`), both its
        sessions; ``True`` when everything they still held was handled."""
        results = [bus.retire(quiet_s, timeout_s) for bus in (self.resolver.bus, self.ingest.bus)]
        self.stop()
        return all(results)


def build_worker(
    settings: CloudSettings,
    name: str = "1",
    clock: Callable[[], float] = time.time,
    advance_every_s: float = ADVANCE_EVERY_S,
) -> CloudWorker:
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        secret = token_secret(session, settings.secret_bytes())
    table = EidResolverTable()
    # the directory and the sync compare with rows the API stamped on the machine's clock;
    # ``clock`` is the time of the store's events (a simulated one in ``nahfeld demo``)
    resolver = ResolverWorker(
        ResolverService(table, secret, DatabaseDirectory(sessions, settings.revocation_relay_s)),
        settings.bus(f"{settings.mqtt_client_id}-resolver-{name}"),
        clock,
        sync=TableSync(sessions, table, keep_revocations_s=settings.revocation_relay_s),
        advance_every_s=advance_every_s,
    )
    ingest = IngestWorker(settings.bus(f"{settings.mqtt_client_id}-ingest-{name}"))
    push = PushRouter(
        {
            # on the bus's handler thread: an offer counts as sent once the broker has it
            "mqtt": MqttPush(ingest.bus.publish),
            "webhook": WebhookPush(settings.webhook_timeout_s, clock),
        }
    )
    caps = GlobalCaps(settings.cap_per_person_per_day, settings.cap_per_person_lifetime)
    ingest.ingestor = Ingestor(sessions, secret, push, caps, clock)
    return CloudWorker(engine, resolver, ingest)
