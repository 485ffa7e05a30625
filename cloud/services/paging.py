"""Limit/offset pages with the total count, for every list endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class PageResult(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def fetch_page(session: Session, stmt: Select[T], page: PageRequest) -> PageResult[T]:
    """``stmt`` must be ordered (a page of an unordered query is not a stable page)."""
    counted: Select[Any] = select(func.count()).select_from(stmt.order_by(None).subquery())
    total = session.scalar(counted) or 0
    items = list(session.scalars(stmt.limit(page.limit).offset(page.offset)))
    return PageResult(items=items, total=total, limit=page.limit, offset=page.offset)
