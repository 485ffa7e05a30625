"""Stores, zones and gateways of a tenant.

Store ids are unique fleet-wide because they name MQTT topics with no tenant
in them; a taken id is therefore a conflict even when another tenant holds it.
A gateway's MQTT password is generated here, returned once to the caller and
kept only as a Mosquitto ``$7$`` hash.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db.base import utcnow
from ..db.models import Gateway, Rule, Store, Zone
from ..schemas.fleet import GatewayCreate, StoreCreate, StoreFields, ZoneCreate, ZoneFields
from .auth import Principal
from .changes import ruleset_changed
from .credentials import mosquitto_hash, new_gateway_password
from .errors import ConflictError, NotFoundError
from .paging import PageRequest, PageResult, fetch_page


def _commit_or_conflict(session: Session, what: str) -> None:
    """Commit; a unique or foreign key clash that raced past the checks becomes a conflict."""
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"{what} conflicts with existing data") from exc


# ------------------------------------------------------------------ stores


def list_stores(session: Session, principal: Principal, page: PageRequest) -> PageResult[Store]:
    stmt = select(Store).where(Store.tenant_id == principal.tenant_id).order_by(Store.id)
    return fetch_page(session, stmt, page)


def get_store(session: Session, principal: Principal, store_id: str) -> Store:
    store = session.get(Store, store_id)
    if store is None or store.tenant_id != principal.tenant_id:
        raise NotFoundError("store", store_id)
    return store


def find_store(session: Session, principal: Principal, store_id: str) -> Store | None:
    try:
        return get_store(session, principal, store_id)
    except NotFoundError:
        return None


def create_store(session: Session, principal: Principal, data: StoreCreate) -> Store:
    if session.get(Store, data.id) is not None:
        raise ConflictError(f"store id {data.id!r} is taken")
    store = Store(
        id=data.id,
        tenant_id=principal.tenant_id,
        name=data.name,
        timezone=data.timezone,
        opening_hours=data.opening_hours.model_dump(mode="json"),
    )
    session.add(store)
    ruleset_changed(session, [store.id], bump=False)  # its gateways get an empty ruleset v1
    _commit_or_conflict(session, f"store {data.id!r}")
    return store


def update_store(session: Session, principal: Principal, store_id: str, data: StoreFields) -> Store:
    store = get_store(session, principal, store_id)
    if store.timezone != data.timezone:
        ruleset_changed(session, [store.id])
    store.name = data.name
    store.timezone = data.timezone
    store.opening_hours = data.opening_hours.model_dump(mode="json")
    session.commit()
    return store


def delete_store(session: Session, principal: Principal, store_id: str) -> None:
    store = get_store(session, principal, store_id)
    ruleset_changed(session, [store.id])  # announced, so the retained ruleset is withdrawn
    session.delete(store)
    session.commit()


# ------------------------------------------------------------------ zones


def list_zones(
    session: Session, principal: Principal, store_id: str, page: PageRequest
) -> PageResult[Zone]:
    store = get_store(session, principal, store_id)
    stmt = select(Zone).where(Zone.store_id == store.id).order_by(Zone.id)
    return fetch_page(session, stmt, page)


def zone_ids(session: Session, store_id: str) -> set[str]:
    return set(session.scalars(select(Zone.id).where(Zone.store_id == store_id)))


def get_zone(session: Session, principal: Principal, store_id: str, zone_id: str) -> Zone:
    store = get_store(session, principal, store_id)
    zone = session.get(Zone, (store.id, zone_id))
    if zone is None:
        raise NotFoundError("zone", zone_id)
    return zone


def create_zone(session: Session, principal: Principal, store_id: str, data: ZoneCreate) -> Zone:
    store = get_store(session, principal, store_id)
    if session.get(Zone, (store.id, data.id)) is not None:
        raise ConflictError(f"zone {data.id!r} already exists in store {store.id!r}")
    zone = Zone(store_id=store.id, id=data.id, name=data.name)
    session.add(zone)
    _commit_or_conflict(session, f"zone {data.id!r}")
    return zone


def update_zone(
    session: Session, principal: Principal, store_id: str, zone_id: str, data: ZoneFields
) -> Zone:
    zone = get_zone(session, principal, store_id, zone_id)
    zone.name = data.name
    session.commit()
    return zone


def rules_using_zone(rules: Iterable[Rule], zone_id: str) -> list[str]:
    return sorted(rule.id for rule in rules if zone_id in rule.trigger.get("zones", ()))


def delete_zone(session: Session, principal: Principal, store_id: str, zone_id: str) -> None:
    zone = get_zone(session, principal, store_id, zone_id)
    users = rules_using_zone(
        session.scalars(select(Rule).where(Rule.store_id == zone.store_id)), zone.id
    )
    if users:
        raise ConflictError(f"zone {zone_id!r} is used by rule(s) {', '.join(users)}")
    session.delete(zone)
    session.commit()


# ------------------------------------------------------------------ gateways


def list_gateways(
    session: Session, principal: Principal, store_id: str, page: PageRequest
) -> PageResult[Gateway]:
    store = get_store(session, principal, store_id)
    stmt = select(Gateway).where(Gateway.store_id == store.id).order_by(Gateway.id)
    return fetch_page(session, stmt, page)


def get_gateway(session: Session, principal: Principal, store_id: str, gateway_id: str) -> Gateway:
    store = get_store(session, principal, store_id)
    gateway = session.get(Gateway, (store.id, gateway_id))
    if gateway is None:
        raise NotFoundError("gateway", gateway_id)
    return gateway


def provision_gateway(
    session: Session, principal: Principal, store_id: str, data: GatewayCreate
) -> tuple[Gateway, str]:
    """The new gateway and its MQTT password, which is not kept anywhere in clear."""
    store = get_store(session, principal, store_id)
    if session.get(Gateway, (store.id, data.id)) is not None:
        raise ConflictError(f"gateway {data.id!r} already exists in store {store.id!r}")
    password = new_gateway_password()
    gateway = Gateway(
        store_id=store.id, id=data.id, name=data.name, password_hash=mosquitto_hash(password)
    )
    session.add(gateway)
    _commit_or_conflict(session, f"gateway {data.id!r}")
    return gateway, password


def rotate_gateway_password(
    session: Session, principal: Principal, store_id: str, gateway_id: str
) -> tuple[Gateway, str]:
    gateway = get_gateway(session, principal, store_id, gateway_id)
    password = new_gateway_password()
    gateway.password_hash = mosquitto_hash(password)
    gateway.credentials_issued_at = utcnow()
    session.commit()
    return gateway, password


def delete_gateway(session: Session, principal: Principal, store_id: str, gateway_id: str) -> None:
    session.delete(get_gateway(session, principal, store_id, gateway_id))
    session.commit()
