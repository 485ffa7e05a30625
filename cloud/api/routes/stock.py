"""The stock feed: a store's levels uploaded in bulk as JSON or CSV, as an ERP sends them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from ...schemas.common import Page
from ...schemas.stock import StockLine, StockOut, StockResult, StockUpload
from ...services import stock
from ...services.errors import InvalidError, Problem
from ..deps import MarketingReader, MarketingWriter, PageDep, SessionDep, SettingsDep

router = APIRouter(prefix="/stores/{store_id}/stock", tags=["stock"])

_LINE = StockLine.model_json_schema()
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"items": {"type": "array", "items": _LINE}},
                    "required": ["items"],
                    "additionalProperties": False,
                }
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "sku,quantity\n4006381333931,12\n4006381333948,0\n",
            },
        },
    }
}


async def stock_upload(
    _principal: MarketingWriter, request: Request, settings: SettingsDep
) -> StockUpload:
    """The body parsed by its media type (after authorisation: strangers get 401, not 422)."""
    media_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    raw = await request.body()
    if media_type == "text/csv":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidError(
                [Problem(("body",), f"CSV must be UTF-8: {exc.reason}", "csv_encoding")]
            ) from exc
        return stock.parse_stock_csv(text, settings.stock_max_rows)
    if media_type != "application/json":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="send application/json or text/csv (header sku,quantity)",
        )
    try:
        upload = StockUpload.model_validate_json(raw)
    except ValidationError as exc:
        errors = [
            {**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)
        ]
        raise RequestValidationError(errors) from exc
    if len(upload.items) > settings.stock_max_rows:
        raise InvalidError(
            [Problem(("body", "items"), f"more than {settings.stock_max_rows} items", "too_long")]
        )
    return upload


@router.put("", openapi_extra=_UPLOAD_BODY, summary="upsert stock levels (JSON or CSV)")
def upload_stock(
    principal: MarketingWriter,
    session: SessionDep,
    store_id: str,
    upload: Annotated[StockUpload, Depends(stock_upload)],
    replace: Annotated[
        bool, Query(description="a full snapshot: SKUs not listed are removed")
    ] = False,
) -> StockResult:
    return stock.upsert_stock(session, principal, store_id, upload, replace=replace)


@router.get("")
def list_stock(
    principal: MarketingReader, session: SessionDep, store_id: str, page: PageDep
) -> Page[StockOut]:
    result = stock.list_stock(session, principal, store_id, page)
    return Page[StockOut].model_validate(result, from_attributes=True)
