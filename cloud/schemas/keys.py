"""API keys, as an admin manages them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from .common import In, Out

RoleName = Literal["admin", "marketer", "viewer"]


class ApiKeyCreate(In):
    role: RoleName
    name: Annotated[str, Field(max_length=200)] = ""


class ApiKeyOut(Out):
    id: int
    prefix: str = Field(description="the key's public start, to tell keys apart")
    role: RoleName
    name: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="shown once; only its hash is stored")
