"""The FastAPI application factory.

Everything the app needs is passed in or built from the settings here, once:
the engine, the session factory (with the ruleset-change hook installed), the
metrics registry. Tests build as many apps as they like, each on its own
database, without global state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from ..db.engine import make_engine, make_sessionmaker
from ..services.changes import RulesetHook, install_ruleset_hook, store_ruleset_changed
from ..settings import CloudSettings
from .errors import install_error_handlers
from .metrics import Metrics, MetricsMiddleware
from .routes import app as app_routes
from .routes import campaigns, funnel, health, keys, rules, stock, stores

API_PREFIX = "/v1"

DESCRIPTION = """\
The Nahfeld rules service: stores, zones and gateways; campaigns, offers, rules,
segments and stock. Authenticate with `Authorization: Bearer <API key>` (or `X-API-Key`).
Roles: **viewer** reads; **marketer** also changes campaigns, offers, rules, segments and
stock, and redeems offers; **admin** also changes stores, zones, gateways and API keys.

The **app** endpoints are the phone app's: opting in (open) returns an app token, and
everything under `/v1/app/me` takes `Authorization: Bearer <app token>` instead of a key.
"""


def create_app(
    settings: CloudSettings | None = None,
    *,
    engine: Engine | None = None,
    ruleset_hook: RulesetHook | None = None,
) -> FastAPI:
    settings = settings or CloudSettings()
    owns_engine = engine is None
    engine = engine or make_engine(
        settings.database_url,
        connect_timeout_s=settings.database_connect_timeout_s,
        echo=settings.database_echo,
    )
    sessions = make_sessionmaker(engine)
    install_ruleset_hook(sessions, ruleset_hook or store_ruleset_changed)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_engine:
            engine.dispose()

    app = FastAPI(
        title="Nahfeld cloud",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.metrics = metrics

    install_error_handlers(app, metrics)
    app.include_router(health.router)
    for module in (stores, campaigns, rules, stock, keys, funnel, app_routes):
        app.include_router(module.router, prefix=API_PREFIX)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
