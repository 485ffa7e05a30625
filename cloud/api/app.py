"""The FastAPI application factory.

Everything the app needs is passed in or built from the settings here, once:
the engine, the session factory (with the ruleset-change hook installed), the
metrics registry. Tests build as many apps as they like, each on its own
database, without global state.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ..bus import CloudBus
from ..db.engine import make_engine, make_sessionmaker
from ..publisher import StorePublisher
from ..services.changes import StoreChangeHook, install_store_change_hook, log_store_change
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
    on_store_change: StoreChangeHook | None = None,
    publish: bool = False,
) -> FastAPI:
    """With ``publish``, changed stores' rulesets and stock are published to the broker
    (:mod:`cloud.publisher`); otherwise changes go to ``on_store_change`` or the log."""
    settings = settings or CloudSettings()
    owns_engine = engine is None
    engine = engine or make_engine(
        settings.database_url,
        connect_timeout_s=settings.database_connect_timeout_s,
        echo=settings.database_echo,
    )
    sessions = make_sessionmaker(engine)
    publisher = _publisher(settings, sessions) if publish else None
    hook = on_store_change or (publisher.notify if publisher else log_store_change)
    install_store_change_hook(sessions, hook)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if publisher is not None:
            publisher.start()  # connects in the background: the API serves without a broker
        yield
        if publisher is not None:
            publisher.stop()
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
    app.state.publisher = publisher

    install_error_handlers(app, metrics)
    app.include_router(health.router)
    for module in (stores, campaigns, rules, stock, keys, funnel, app_routes):
        app.include_router(module.router, prefix=API_PREFIX)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _publisher(settings: CloudSettings, sessions: sessionmaker[Session]) -> StorePublisher:
    # one publisher per API process, so the client id names the process; nothing it
    # publishes needs a session that outlives it
    bus_settings = settings.bus(f"{settings.mqtt_client_id}-api-{os.getpid()}")
    bus = CloudBus(replace(bus_settings, session_expiry_s=0), handlers={})
    return StorePublisher(sessions, bus, refresh_s=settings.ruleset_refresh_s)
