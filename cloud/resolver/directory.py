"""The resolver's view of the database: who is opted in, and who just left.

:class:`DatabaseDirectory` answers the resolver's questions about installs the
table matched (only active ones: an install that opted out a moment ago gets
no answer even before the table has dropped it). :class:`TableSync` keeps the
in-memory table in step with the database by what changed since it last
looked, so a worker with a million installs does not reload them every time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ..db.models import Install, Revocation, SegmentMember
from ..services.installs import purge_revocations
from .service import InstallProfile
from .table import EidResolverTable

#: a change committed while a sync runs is picked up by the next one
SYNC_OVERLAP = timedelta(seconds=5)


class DatabaseDirectory:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        relay_s: float,
        clock: Callable[[], float] = time.time,
        cache_s: float = 2.0,
    ) -> None:
        self.sessions = sessions
        self.relay_s = relay_s
        self.clock = clock
        self.cache_s = cache_s
        self._revoked: tuple[float, list[str]] = (float("-inf"), [])

    def profiles(self, installs: Collection[int]) -> Mapping[int, InstallProfile]:
        if not installs:
            return {}
        with self.sessions() as session:
            active = select(Install.id, Install.uid).where(
                Install.id.in_(list(installs)), Install.revoked_at.is_(None)
            )
            uids = {install: uid for install, uid in session.execute(active)}
            segments: dict[int, list[str]] = {}
            for install, segment in session.execute(
                select(SegmentMember.install_id, SegmentMember.segment_id)
                .where(SegmentMember.install_id.in_(list(uids)))
                .order_by(SegmentMember.segment_id)
            ):
                segments.setdefault(install, []).append(segment)
        return {
            install: InstallProfile(uid, tuple(segments.get(install, ())))
            for install, uid in uids.items()
        }

    def recently_revoked(self) -> list[str]:
        """Asked on every answer, so read at most every ``cache_s`` seconds."""
        now = self.clock()
        read_at, uids = self._revoked
        if now - read_at >= self.cache_s:
            since = datetime.fromtimestamp(now - self.relay_s, UTC)
            with self.sessions() as session:
                stmt = select(Revocation.uid).where(Revocation.revoked_at >= since)
                uids = sorted(session.scalars(stmt))
            self._revoked = (now, uids)
        return uids


class TableSync:
    """Brings ``table`` up to date with the database; call it on a schedule."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        table: EidResolverTable,
        clock: Callable[[], float] = time.time,
        keep_revocations_s: float | None = None,
    ) -> None:
        self.sessions = sessions
        self.table = table
        self.clock = clock
        self.keep_revocations_s = keep_revocations_s
        self._since: datetime | None = None

    def __call__(self) -> tuple[int, int]:
        """(installs added, installs removed) since the last call."""
        started = datetime.fromtimestamp(self.clock(), UTC)
        with self.sessions() as session:
            stmt = select(Install.id, Install.identity_key, Install.rotation_exponent).where(
                Install.revoked_at.is_(None), Install.identity_key.is_not(None)
            )
            gone = select(Revocation.install_id)
            if self._since is not None:
                stmt = stmt.where(Install.changed_at >= self._since)
                gone = gone.where(Revocation.revoked_at >= self._since)
            fresh = [
                (install, key, exponent)
                for install, key, exponent in session.execute(stmt)
                if key is not None and install not in self.table
            ]
            removed = [install for install in session.scalars(gone) if install in self.table]
            if self.keep_revocations_s is not None:  # relayed long enough: forget them
                purge_revocations(session, started, self.keep_revocations_s)
        self.table.add_many(fresh)
        for install in removed:
            self.table.remove(install)
        self._since = started - SYNC_OVERLAP
        return len(fresh), len(removed)
