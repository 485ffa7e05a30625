"""Long lists cut into pieces one SQL statement takes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

#: values (ids in an IN, rows in an INSERT) per statement: well under SQLite's
#: bound-parameter limit whatever the row's width
SQL_CHUNK = 500


def chunks(items: Sequence[T], size: int = SQL_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
