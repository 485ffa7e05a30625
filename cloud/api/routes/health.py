"""Liveness, readiness and metrics: unauthenticated, for the orchestrator and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from ..errors import database_unavailable_response

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="the process is up (does not touch the database)")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="the database answers",
    responses={503: {"description": "the database is unreachable"}},
)
def readyz(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        request.app.state.metrics.database_unavailable.inc()
        return database_unavailable_response()
    return JSONResponse({"status": "ready"})


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    body = generate_latest(request.app.state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
