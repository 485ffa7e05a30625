"""The stock feed, as an ERP sends it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import Field, model_validator

from gateway.fields import duplicates

from .common import INT32_MAX, In, Out

Sku = Annotated[str, Field(min_length=1, max_length=64)]


class StockLine(In):
    sku: Sku
    quantity: Annotated[int, Field(ge=0, le=INT32_MAX)]


class StockUpload(In):
    items: list[StockLine]

    @model_validator(mode="after")
    def _unique_skus(self) -> Self:
        repeated = duplicates(line.sku for line in self.items)
        if repeated:
            raise ValueError(f"sku listed more than once: {', '.join(repeated[:5])}")
        return self


class StockOut(Out):
    sku: str
    quantity: int
    updated_at: datetime


class StockResult(Out):
    store: str
    upserted: int
    removed: int = Field(description="SKUs deleted because a full snapshot did not list them")
