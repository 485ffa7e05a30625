"""Tenants, API keys and who is asking.

A principal is a tenant and a role; every query a service runs for it is
filtered by that tenant, so another tenant's objects are simply not found.
What each role may do is decided here, in one table, not in the routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.base import utcnow
from ..db.models import ApiKey, Tenant
from .credentials import digest_matches, issue_api_key, key_prefix
from .errors import NotFoundError


class Role(StrEnum):
    ADMIN = "admin"
    MARKETER = "marketer"
    VIEWER = "viewer"


class Area(StrEnum):
    """What a request touches, for the permission table."""

    MARKETING = "marketing"  # campaigns, offers, rules, segments, stock
    FLEET = "fleet"  # stores, zones, gateways
    KEYS = "keys"


#: which roles may write each area; everyone authenticated may read marketing and fleet
WRITERS: dict[Area, frozenset[Role]] = {
    Area.MARKETING: frozenset({Role.ADMIN, Role.MARKETER}),
    Area.FLEET: frozenset({Role.ADMIN}),
    Area.KEYS: frozenset({Role.ADMIN}),
}
READERS: dict[Area, frozenset[Role]] = {
    Area.MARKETING: frozenset(Role),
    Area.FLEET: frozenset(Role),
    Area.KEYS: frozenset({Role.ADMIN}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: int
    tenant: str
    role: Role
    key_id: int

    def may(self, area: Area, write: bool) -> bool:
        return self.role in (WRITERS if write else READERS)[area]


def authenticate(session: Session, token: str) -> Principal | None:
    """The principal a presented key stands for, or ``None`` (unknown, wrong or revoked)."""
    prefix = key_prefix(token)
    if prefix is None:
        return None
    row = session.execute(
        select(ApiKey, Tenant.slug)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.prefix == prefix)
    ).one_or_none()
    if row is None:
        return None
    key, slug = row
    if key.revoked_at is not None or not digest_matches(token, key.secret_sha256):
        return None
    return Principal(tenant_id=key.tenant_id, tenant=slug, role=Role(key.role), key_id=key.id)


def ensure_tenant(session: Session, slug: str) -> Tenant:
    tenant = session.scalars(select(Tenant).where(Tenant.slug == slug)).one_or_none()
    if tenant is None:
        tenant = Tenant(slug=slug)
        session.add(tenant)
        session.flush()
    return tenant


def create_api_key(
    session: Session, tenant_id: int, role: Role, name: str = ""
) -> tuple[ApiKey, str]:
    """A new key row and the token, which exists nowhere else after this returns."""
    issued = issue_api_key()
    key = ApiKey(
        tenant_id=tenant_id,
        role=role.value,
        prefix=issued.prefix,
        secret_sha256=issued.secret_sha256,
        name=name,
    )
    session.add(key)
    session.commit()
    return key, issued.token


def bootstrap_api_key(
    session: Session, tenant: str, role: Role, name: str = ""
) -> tuple[ApiKey, str]:
    """``nahfeld cloud create-api-key``: the tenant is created on first use."""
    row = ensure_tenant(session, tenant)
    return create_api_key(session, row.id, role, name)


def list_api_keys(session: Session, principal: Principal) -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey).where(ApiKey.tenant_id == principal.tenant_id).order_by(ApiKey.id)
        )
    )


def revoke_api_key(session: Session, principal: Principal, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None or key.tenant_id != principal.tenant_id:
        raise NotFoundError("api key", str(key_id))
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.commit()
    return key
