"""The app's side of consent: opting in, out, erasure, and where offers are pushed.

Opting in records each consent as the app gave it and mints the install's
Eddystone-EID identity key: the cloud is the only other holder of it, and it is
handed out once. Opting out withdraws every consent and destroys the key, so
no EID of the phone resolves any more; a revocation is kept for a while so
resolvers tell gateways to drop the person's tokens at once. Erasure deletes
the install and everything linked to it; funnel rows stay, unlinked.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db.models import Consent, Install, PushChannelRow, Revocation, ServiceSecret, Tenant
from ..schemas.app import OFFERS_PURPOSE, ChannelIn, ChannelKind, OptIn
from .credentials import sha256_hex
from .errors import ConflictError, InvalidError, NotFoundError, Problem

APP_TOKEN_SCHEME = "nfa"
TOKEN_SECRET_NAME = "store_token"


@dataclass(frozen=True, slots=True)
class NewInstall:
    install: Install
    app_token: str  # shown once


def opt_in(session: Session, tenant_slug: str, body: OptIn, exponent: int) -> NewInstall:
    tenant = session.scalars(select(Tenant).where(Tenant.slug == tenant_slug)).one_or_none()
    if tenant is None:
        raise NotFoundError("app", tenant_slug)
    purposes = [consent.purpose for consent in body.consents]
    if OFFERS_PURPOSE not in purposes:
        raise InvalidError(
            [Problem(("body", "consents"), f"opting in means consenting to {OFFERS_PURPOSE!r}")]
        )
    if len(set(purposes)) != len(purposes):
        raise InvalidError([Problem(("body", "consents"), "each purpose may appear once")])
    app_token = f"{APP_TOKEN_SCHEME}_{secrets.token_urlsafe(32)}"
    install = Install(
        tenant_id=tenant.id,
        uid=body.install_id,
        identity_key=secrets.token_bytes(16),
        rotation_exponent=exponent,
        timezone=body.timezone,
        quiet_hours=[window.model_dump(mode="json") for window in body.quiet_hours],
        app_token_sha256=sha256_hex(app_token),
    )
    session.add(install)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(
            f"install {body.install_id!r} has opted in before; erase it or use a new install id"
        ) from exc
    session.add_all(
        Consent(
            install_id=install.id,
            purpose=consent.purpose,
            text_version=consent.text_version,
            granted_at=consent.granted_at,
        )
        for consent in body.consents
    )
    session.execute(delete(Revocation).where(Revocation.uid == install.uid))
    session.commit()
    return NewInstall(install, app_token)


def install_by_token(session: Session, app_token: str) -> Install | None:
    if not app_token.startswith(f"{APP_TOKEN_SCHEME}_"):
        return None
    stmt = select(Install).where(Install.app_token_sha256 == sha256_hex(app_token))
    return session.scalars(stmt).one_or_none()


def _revoke(session: Session, install: Install, now: datetime) -> None:
    session.merge(Revocation(uid=install.uid, install_id=install.id, revoked_at=now))


def opt_out(session: Session, install: Install, now: datetime) -> Install:
    """Withdraw every consent and destroy the identity key; idempotent."""
    if install.revoked_at is None:
        install.identity_key = None
        install.revoked_at = now
        install.changed_at = now
        session.execute(
            update(Consent)
            .where(Consent.install_id == install.id, Consent.withdrawn_at.is_(None))
            .values(withdrawn_at=now)
        )
        _revoke(session, install, now)
        session.commit()
    return install


def erase(session: Session, install: Install, now: datetime) -> None:
    """Everything about the install goes; its funnel rows stay, no longer linked to it."""
    _revoke(session, install, now)
    session.delete(install)
    session.commit()


def consents_of(session: Session, install_id: int) -> list[Consent]:
    stmt = select(Consent).where(Consent.install_id == install_id).order_by(Consent.id)
    return list(session.scalars(stmt))


def active_purposes(session: Session, install_id: int) -> frozenset[str]:
    stmt = select(Consent.purpose).where(
        Consent.install_id == install_id, Consent.withdrawn_at.is_(None)
    )
    return frozenset(session.scalars(stmt))


def channels_of(session: Session, install_id: int) -> list[PushChannelRow]:
    stmt = (
        select(PushChannelRow)
        .where(PushChannelRow.install_id == install_id)
        .order_by(PushChannelRow.kind)
    )
    return list(session.scalars(stmt))


def register_channel(
    session: Session, install: Install, kind: ChannelKind, body: ChannelIn
) -> PushChannelRow:
    """One channel per kind; registering again replaces it (a new device token, say)."""
    address, secret = _channel_address(install, kind, body)
    row = session.get(PushChannelRow, (install.id, kind))
    if row is None:
        row = PushChannelRow(install_id=install.id, kind=kind, address=address, secret=secret)
        session.add(row)
    else:
        row.address, row.secret = address, secret
    session.commit()
    return row


def _channel_address(
    install: Install, kind: ChannelKind, body: ChannelIn
) -> tuple[str, str | None]:
    def missing(field: str, why: str) -> InvalidError:
        return InvalidError([Problem(("body", field), why)])

    if kind == "mqtt":
        return install.uid, None  # the topic is derived from it: apps/{install}/offers
    if kind == "webhook":
        if body.url is None:
            raise missing("url", "a webhook channel needs the URL to POST offers to")
        if body.secret is None:
            raise missing("secret", "a webhook channel needs a secret to sign requests with")
        return str(body.url), body.secret
    if body.device_token is None:
        raise missing("device_token", f"a {kind} channel needs the device token")
    return body.device_token, None


def remove_channel(session: Session, install: Install, kind: ChannelKind) -> None:
    row = session.get(PushChannelRow, (install.id, kind))
    if row is None:
        raise NotFoundError("channel", kind)
    session.delete(row)
    session.commit()


def purge_revocations(session: Session, now: datetime, keep_s: float) -> int:
    """Forget revocations older than the relay period (they have reached every gateway)."""
    result = session.execute(
        delete(Revocation).where(Revocation.revoked_at < now - timedelta(seconds=keep_s))
    )
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def token_secret(session: Session, configured: bytes | None) -> bytes:
    """The store-token key: the configured one, else the database's (made once, shared)."""
    if configured is not None:
        return configured
    row = session.get(ServiceSecret, TOKEN_SECRET_NAME)
    if row is not None:
        return row.value
    session.add(ServiceSecret(name=TOKEN_SECRET_NAME, value=secrets.token_bytes(32)))
    try:
        session.commit()
    except IntegrityError:  # another worker made it first: use theirs
        session.rollback()
    row = session.get(ServiceSecret, TOKEN_SECRET_NAME)
    assert row is not None
    return row.value
