"""Stores, their zones and gateways: admins change them, every role reads them."""

from __future__ import annotations

from fastapi import APIRouter, status

from gateway.offers.rules import RulesetBody

from ...schemas.common import Page
from ...schemas.fleet import (
    GatewayCreate,
    GatewayCredentials,
    GatewayOut,
    StoreCreate,
    StoreFields,
    StoreOut,
    ZoneCreate,
    ZoneFields,
    ZoneOut,
)
from ...services import fleet, ruleset
from ..deps import FleetReader, FleetWriter, PageDep, SessionDep

router = APIRouter(prefix="/stores", tags=["stores"])


def _credentials(gateway: object, password: str) -> GatewayCredentials:
    out = GatewayOut.model_validate(gateway)
    return GatewayCredentials(**out.model_dump(), mqtt_password=password)


@router.get("")
def list_stores(principal: FleetReader, session: SessionDep, page: PageDep) -> Page[StoreOut]:
    result = fleet.list_stores(session, principal, page)
    return Page[StoreOut].model_validate(result, from_attributes=True)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_store(principal: FleetWriter, session: SessionDep, body: StoreCreate) -> StoreOut:
    return StoreOut.model_validate(fleet.create_store(session, principal, body))


@router.get("/{store_id}")
def get_store(principal: FleetReader, session: SessionDep, store_id: str) -> StoreOut:
    return StoreOut.model_validate(fleet.get_store(session, principal, store_id))


@router.put("/{store_id}")
def update_store(
    principal: FleetWriter, session: SessionDep, store_id: str, body: StoreFields
) -> StoreOut:
    return StoreOut.model_validate(fleet.update_store(session, principal, store_id, body))


@router.delete("/{store_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_store(principal: FleetWriter, session: SessionDep, store_id: str) -> None:
    fleet.delete_store(session, principal, store_id)


@router.get("/{store_id}/ruleset", summary="the ruleset the store's gateways execute")
def get_ruleset(principal: FleetReader, session: SessionDep, store_id: str) -> RulesetBody:
    return ruleset.ruleset_for(session, principal, store_id)


# ------------------------------------------------------------------ zones


@router.get("/{store_id}/zones")
def list_zones(
    principal: FleetReader, session: SessionDep, store_id: str, page: PageDep
) -> Page[ZoneOut]:
    result = fleet.list_zones(session, principal, store_id, page)
    return Page[ZoneOut].model_validate(result, from_attributes=True)


@router.post("/{store_id}/zones", status_code=status.HTTP_201_CREATED)
def create_zone(
    principal: FleetWriter, session: SessionDep, store_id: str, body: ZoneCreate
) -> ZoneOut:
    return ZoneOut.model_validate(fleet.create_zone(session, principal, store_id, body))


@router.get("/{store_id}/zones/{zone_id}")
def get_zone(principal: FleetReader, session: SessionDep, store_id: str, zone_id: str) -> ZoneOut:
    return ZoneOut.model_validate(fleet.get_zone(session, principal, store_id, zone_id))


@router.put("/{store_id}/zones/{zone_id}")
def update_zone(
    principal: FleetWriter, session: SessionDep, store_id: str, zone_id: str, body: ZoneFields
) -> ZoneOut:
    return ZoneOut.model_validate(fleet.update_zone(session, principal, store_id, zone_id, body))


@router.delete("/{store_id}/zones/{zone_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_zone(principal: FleetWriter, session: SessionDep, store_id: str, zone_id: str) -> None:
    fleet.delete_zone(session, principal, store_id, zone_id)


# ------------------------------------------------------------------ gateways


@router.get("/{store_id}/gateways")
def list_gateways(
    principal: FleetReader, session: SessionDep, store_id: str, page: PageDep
) -> Page[GatewayOut]:
    result = fleet.list_gateways(session, principal, store_id, page)
    return Page[GatewayOut].model_validate(result, from_attributes=True)


@router.post(
    "/{store_id}/gateways",
    status_code=status.HTTP_201_CREATED,
    summary="provision a gateway: its MQTT password is in this answer only",
)
def provision_gateway(
    principal: FleetWriter, session: SessionDep, store_id: str, body: GatewayCreate
) -> GatewayCredentials:
    gateway, password = fleet.provision_gateway(session, principal, store_id, body)
    return _credentials(gateway, password)


@router.get("/{store_id}/gateways/{gateway_id}")
def get_gateway(
    principal: FleetReader, session: SessionDep, store_id: str, gateway_id: str
) -> GatewayOut:
    return GatewayOut.model_validate(fleet.get_gateway(session, principal, store_id, gateway_id))


@router.post(
    "/{store_id}/gateways/{gateway_id}/credentials",
    summary="issue a new MQTT password (the old one stops working once the broker reloads)",
)
def rotate_gateway_password(
    principal: FleetWriter, session: SessionDep, store_id: str, gateway_id: str
) -> GatewayCredentials:
    gateway, password = fleet.rotate_gateway_password(session, principal, store_id, gateway_id)
    return _credentials(gateway, password)


@router.delete("/{store_id}/gateways/{gateway_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_gateway(
    principal: FleetWriter, session: SessionDep, store_id: str, gateway_id: str
) -> None:
    fleet.delete_gateway(session, principal, store_id, gateway_id)
