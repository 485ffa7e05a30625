"""Answering a gateway's resolve request: EIDs in, per-store tokens out.

Only what resolved is answered, and nothing is kept about the rest: an EID
that matched no opted-in install is counted and forgotten. The answer names a
person by their token for this store only (:func:`store_token`), never by the
install id, and carries the EID that follows, so the gateway needs no second
round trip when the window turns. Tokens of installs that opted out recently
ride along in every answer, so a gateway drops them within one window.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.contract import ResolvedEid, ResolveRequest, ResolveResponse

from .table import EidResolverTable
from .tokens import store_token


@dataclass(frozen=True, slots=True)
class InstallProfile:
    """What the resolver may tell a store about an install (the uid only feeds the token)."""

    uid: str
    segments: tuple[str, ...] = ()


class InstallDirectory(Protocol):
    """The cloud's records of opted-in installs (the database, in the service)."""

    def profiles(self, installs: Collection[int]) -> Mapping[int, InstallProfile]: ...

    def recently_revoked(self) -> Iterable[str]:
        """uids of installs that opted out or were erased within the last windows."""
        ...


@dataclass(slots=True)
class ResolverStats:
    requests: int = 0
    eids: int = 0
    resolved: int = 0


class ResolverService:
    def __init__(self, table: EidResolverTable, secret: bytes, directory: InstallDirectory) -> None:
        self.table = table
        self.secret = secret
        self.directory = directory
        self.stats = ResolverStats()

    def answer(self, request: ResolveRequest, now: float) -> ResolveResponse:
        hits = self.table.resolve(request.eids, now)
        profiles = self.directory.profiles({hit.install for hit in hits})
        resolved = [
            ResolvedEid(
                eid=hit.eid,
                token=store_token(self.secret, request.store, profile.uid),
                valid_until=hit.valid_until,
                next_eid=hit.next_eid,
                next_valid_until=hit.next_valid_until,
                segments=list(profile.segments),
            )
            for hit in hits
            if (profile := profiles.get(hit.install)) is not None
        ]
        self.stats.requests += 1
        self.stats.eids += len(request.eids)
        self.stats.resolved += len(resolved)
        revoked = sorted(
            store_token(self.secret, request.store, uid)
            for uid in self.directory.recently_revoked()
        )
        return ResolveResponse(
            request_id=request.request_id,
            store=request.store,
            ts=now,
            resolved=resolved,
            revoked_tokens=revoked,
        )
