"""Stores, zones and gateways."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from gateway.fields import IanaTimezone, Identifier
from gateway.offers.rules import TimeWindow

from .common import In, Out

Name = Annotated[str, Field(max_length=200)]


class OpeningHours(In):
    """Local opening hours per weekday; an empty day is closed, a window may pass midnight."""

    mon: list[TimeWindow] = Field(default_factory=list)
    tue: list[TimeWindow] = Field(default_factory=list)
    wed: list[TimeWindow] = Field(default_factory=list)
    thu: list[TimeWindow] = Field(default_factory=list)
    fri: list[TimeWindow] = Field(default_factory=list)
    sat: list[TimeWindow] = Field(default_factory=list)
    sun: list[TimeWindow] = Field(default_factory=list)


class StoreFields(In):
    name: Name
    timezone: IanaTimezone = Field(examples=["Europe/Berlin"])
    opening_hours: OpeningHours = Field(default_factory=OpeningHours)


class StoreCreate(StoreFields):
    id: Identifier = Field(description="fleet-wide unique: it names the store's MQTT topics")


class StoreOut(Out):
    id: str
    name: str
    timezone: str
    opening_hours: OpeningHours
    ruleset_version: int
    created_at: datetime
    updated_at: datetime


class ZoneFields(In):
    name: Name = ""


class ZoneCreate(ZoneFields):
    id: Identifier


class ZoneOut(Out):
    store: str = Field(validation_alias="store_id")
    id: str
    name: str


class GatewayCreate(In):
    id: Identifier
    name: Name = ""


class GatewayOut(Out):
    store: str = Field(validation_alias="store_id")
    id: str
    name: str
    mqtt_username: str
    credentials_issued_at: datetime
    created_at: datetime


class GatewayCredentials(GatewayOut):
    """Returned once, at provisioning or rotation: only a hash of the password is kept."""

    mqtt_password: str
