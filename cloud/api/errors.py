"""Service refusals and database outages as HTTP answers.

A database that is down or unreachable is the operator's problem, not a bug:
every endpoint then answers 503 with a JSON body saying so and a
``Retry-After``, never a 500 with a traceback. Integrity errors that raced
past a service's checks are conflicts (409).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from ..services.errors import ConflictError, InvalidError, NotFoundError
from .metrics import Metrics

log = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = {
    "detail": "the database is unavailable; the request was not processed, try again shortly",
    "error": "database_unavailable",
}
RETRY_AFTER_S = "5"


def database_unavailable_response() -> JSONResponse:
    return JSONResponse(
        DATABASE_UNAVAILABLE,
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": RETRY_AFTER_S},
    )


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    async def not_found(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)

    async def conflict(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)

    async def integrity(_request: Request, exc: Exception) -> JSONResponse:
        log.info("integrity error answered as a conflict: %s", exc)
        return JSONResponse(
            {"detail": "the change conflicts with existing data"},
            status_code=status.HTTP_409_CONFLICT,
        )

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidError)
        body = [{"loc": list(p.loc), "msg": p.msg, "type": p.type} for p in exc.problems]
        return JSONResponse({"detail": body}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        metrics.database_unavailable.inc()
        log.warning("database unavailable during %s %s: %s", request.method, request.url.path, exc)
        return database_unavailable_response()

    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(ConflictError, conflict)
    app.add_exception_handler(InvalidError, invalid)
    app.add_exception_handler(IntegrityError, integrity)
    for kind in (OperationalError, InterfaceError, PoolTimeoutError):
        app.add_exception_handler(kind, database_down)
