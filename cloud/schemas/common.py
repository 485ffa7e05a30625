"""Shared pieces of request and response bodies."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

T = TypeVar("T")

#: the largest value an INTEGER / BIGINT column holds (SQLite and PostgreSQL alike)
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def _nul_at(value: Any, path: str) -> str | None:
    """Where in a JSON-like value a string holds U+0000, or ``None``."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _nul_at(key, f"{path}.{key!r}") or _nul_at(item, f"{path}.{key}")
        if found:
            return found
    return None


class In(BaseModel):
    """A request body: unknown fields are refused (a typo must not be silently dropped),
    and so is U+0000 in any string (PostgreSQL cannot store it; no text needs it)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        where = _nul_at(data, "body")
        if where:
            raise ValueError(f"NUL characters (U+0000) are not accepted ({where})")
        return data


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True, validate_by_name=True, validate_by_alias=True)


class Page(BaseModel, Generic[T]):
    """One page of a list: ``total`` counts every match, not just this page."""

    items: list[T]
    total: int
    limit: int
    offset: int


class ErrorBody(BaseModel):
    detail: str
    error: str
