"""The engine and the session factory, configured for SQLite and PostgreSQL alike.

SQLite: foreign keys are off by default per connection, so they are switched
on at every connect (tenancy and cascades rely on them); the API serves
requests on several threads, so the connection is not tied to its thread.
PostgreSQL: ``postgresql://`` URLs are served by psycopg 3 (the only driver
installed), pooled connections are pinged before use so a restarted server
costs no failed request, and connecting gives up after a few seconds so a
dead database turns into a prompt 503 rather than a hung request.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker


def normalise_url(url: str | URL) -> URL:
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, *, connect_timeout_s: int = 5, echo: bool = False) -> Engine:
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": connect_timeout_s},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        parsed,
        echo=echo,
        pool_pre_ping=True,
        connect_args={"connect_timeout": connect_timeout_s},
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    # objects stay readable after commit: routes serialise what the service returned
    return sessionmaker(engine, expire_on_commit=False)


def is_outage(exc: Exception) -> bool:
    """The database (or the broker) out of reach for now: worth retrying for as long as
    it lasts, unlike a failure that would happen again with the same input."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    return isinstance(exc, PoolTimeoutError | DisconnectionError | TimeoutError | ConnectionError)
