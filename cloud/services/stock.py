"""The stock feed: an ERP's bulk upload per store, as JSON or as CSV.

CSV is what most ERPs export: a header ``sku,quantity`` and one row per SKU.
A bad row refuses the whole upload (a half-applied stock file is worse than
none) with every problem named by row number (the header is row 1, as a
spreadsheet shows it) and column. By default an upload is an upsert: SKUs not
listed keep their level; ``replace`` makes it a full snapshot.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Set

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..db.base import utcnow
from ..db.chunks import chunks
from ..db.models import StockLevel
from ..schemas.stock import StockLine, StockResult, StockUpload
from .auth import Principal
from .changes import stock_changed
from .errors import InvalidError, Problem
from .fleet import get_store
from .paging import PageRequest, PageResult, fetch_page

CSV_COLUMNS = ("sku", "quantity")
_MAX_PROBLEMS = 20


def parse_stock_csv(text: str, max_rows: int) -> StockUpload:
    """Parse ``sku,quantity`` CSV; raise :class:`InvalidError` naming row and column."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = [cell.strip().lower() for cell in next(reader, [])]
    if tuple(header) != CSV_COLUMNS:
        found = ",".join(header) or "(empty)"
        raise InvalidError(
            [
                Problem(
                    ("body", "row 1"),
                    f"the header must be {','.join(CSV_COLUMNS)}, not {found}",
                    "csv_header",
                )
            ]
        )
    lines: list[StockLine] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for row_number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank lines, as spreadsheets leave them at the end
        if len(lines) >= max_rows:
            problems.append(
                Problem(("body", f"row {row_number}"), f"more than {max_rows} rows", "too_long")
            )
            break
        if len(row) != len(CSV_COLUMNS):
            problems.append(
                Problem(
                    ("body", f"row {row_number}"),
                    f"expected {len(CSV_COLUMNS)} columns, found {len(row)}",
                    "csv_columns",
                )
            )
        else:
            sku, quantity = (cell.strip() for cell in row)
            try:
                line = StockLine.model_validate({"sku": sku, "quantity": quantity})
            except ValidationError as exc:
                for error in exc.errors():
                    column = str(error["loc"][0]) if error["loc"] else "row"
                    problems.append(
                        Problem(("body", f"row {row_number}", column), error["msg"], error["type"])
                    )
            else:
                if line.sku in seen:
                    problems.append(
                        Problem(
                            ("body", f"row {row_number}", "sku"),
                            f"sku {line.sku!r} already listed in row {seen[line.sku]}",
                            "duplicate",
                        )
                    )
                seen[line.sku] = row_number
                lines.append(line)
        if len(problems) >= _MAX_PROBLEMS:
            break
    if problems:
        raise InvalidError(problems)
    return StockUpload(items=lines)


def upsert_stock(
    session: Session,
    principal: Principal,
    store_id: str,
    upload: StockUpload,
    *,
    replace: bool = False,
) -> StockResult:
    """One transaction: every level set, or none."""
    store = get_store(session, principal, store_id)
    now = utcnow()
    rows = [
        {"store_id": store.id, "sku": line.sku, "quantity": line.quantity, "updated_at": now}
        for line in upload.items
    ]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    for batch in chunks(rows):
        stmt = insert(StockLevel).values(list(batch))
        stmt = stmt.on_conflict_do_update(
            index_elements=[StockLevel.store_id, StockLevel.sku],
            set_={"quantity": stmt.excluded.quantity, "updated_at": stmt.excluded.updated_at},
        )
        session.execute(stmt)
    removed = 0
    if replace:
        listed = {line.sku for line in upload.items}
        stale = [
            sku
            for sku in session.scalars(
                select(StockLevel.sku).where(StockLevel.store_id == store.id)
            )
            if sku not in listed
        ]
        for skus in chunks(stale):
            session.execute(
                delete(StockLevel).where(StockLevel.store_id == store.id, StockLevel.sku.in_(skus))
            )
        removed = len(stale)
    stock_changed(session, store.id)
    session.commit()
    return StockResult(store=store.id, upserted=len(rows), removed=removed)


def list_stock(
    session: Session, principal: Principal, store_id: str, page: PageRequest
) -> PageResult[StockLevel]:
    store = get_store(session, principal, store_id)
    stmt = select(StockLevel).where(StockLevel.store_id == store.id).order_by(StockLevel.sku)
    return fetch_page(session, stmt, page)


def stock_levels(
    session: Session, skus_by_store: Mapping[str, Set[str]]
) -> dict[str, dict[str, int]]:
    """Each store's levels of the SKUs asked for (a SKU without a level is left out, which a
    gateway reads as out of stock). A store's snapshot carries only what its rules depend on,
    so it stays small however large the ERP's catalogue."""
    levels: dict[str, dict[str, int]] = {store: {} for store in skus_by_store}
    stores = sorted(store for store, skus in skus_by_store.items() if skus)
    for chunk in chunks(stores):
        skus = sorted(set().union(*(skus_by_store[store] for store in chunk)))
        for sku_chunk in chunks(skus):
            rows = session.execute(
                select(StockLevel.store_id, StockLevel.sku, StockLevel.quantity).where(
                    StockLevel.store_id.in_(chunk), StockLevel.sku.in_(sku_chunk)
                )
            )
            for store_id, sku, quantity in rows:
                if sku in skus_by_store[store_id]:
                    levels[store_id][sku] = quantity
    return levels
