"""The outbox: a persistent queue between the core and MQTT, in SQLite (WAL).

Events are written here before anything is sent, and deleted only when the
broker acknowledged them (QoS 1 PUBACK), so they survive an uplink outage, a
crash and ``kill -9``. Delivery is at-least-once; every row carries the
message's idempotency key, which the cloud deduplicates on. The queue is
bounded: past ``max_rows`` the oldest rows are dropped and counted. Offers
carry an expiry and are dropped rather than delivered late.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    key        TEXT    NOT NULL UNIQUE,
    topic      TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    created    REAL    NOT NULL,
    expires_at REAL
);
"""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    key: str
    topic: str
    payload: bytes
    created: float
    expires_at: float | None


@dataclass(slots=True)
class OutboxStats:
    queued: int = 0
    duplicates: int = 0
    acked: int = 0
    dropped_overflow: int = 0
    dropped_expired: int = 0


class Outbox:
    """A bounded, durable FIFO of MQTT messages keyed by idempotency key; thread-safe."""

    def __init__(self, path: Path | str, max_rows: int = 100_000, durable: bool = False) -> None:
        """WAL survives crashes; ``durable=True`` adds an fsync per commit for power loss."""
        self.path = str(path)
        self.max_rows = max_rows
        self.stats = OutboxStats()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
            return int(count)

    def put(
        self, key: str, topic: str, payload: bytes, now: float, expires_at: float | None = None
    ) -> bool:
        """Queue a message; ``False`` when a message with this key is already queued."""
        return self.put_many([(key, topic, payload, expires_at)], now) == 1

    def put_many(self, items: Iterable[tuple[str, str, bytes, float | None]], now: float) -> int:
        """Queue several messages in one transaction; returns how many were new."""
        rows = [(key, topic, payload, now, expires) for key, topic, payload, expires in items]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                before = self._db.total_changes
                self._db.executemany(
                    "INSERT OR IGNORE INTO outbox (key, topic, payload, created, expires_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                added = self._db.total_changes - before
                overflow = self._trim_locked()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self.stats.queued += added
        self.stats.duplicates += len(rows) - added
        self.stats.dropped_overflow += overflow
        return added

    def _trim_locked(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        excess = int(count) - self.max_rows
        if excess <= 0:
            return 0
        self._db.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)", (excess,)
        )
        return excess

    def pending(self, now: float, limit: int = 100, after_id: int = 0) -> list[OutboxItem]:
        """The oldest messages still to send (expired ones are dropped here, and counted)."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM outbox WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )
            self.stats.dropped_expired += cursor.rowcount
            rows = self._db.execute(
                "SELECT id, key, topic, payload, created, expires_at FROM outbox "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [OutboxItem(r[0], r[1], r[2], bytes(r[3]), r[4], r[5]) for r in rows]

    def ack(self, ids: Iterable[int]) -> int:
        """Forget messages the broker acknowledged."""
        batch = [(i,) for i in ids]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            before = self._db.total_changes
            self._db.executemany("DELETE FROM outbox WHERE id = ?", batch)
            removed = self._db.total_changes - before
            self._db.execute("COMMIT")
        self.stats.acked += removed
        return removed
