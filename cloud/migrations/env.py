"""Alembic's environment: the URL (or an open connection) comes from ``cloud.db.migrate``.

No ``alembic.ini`` is read: the caller puts the database URL, or a
connection to run in, into the config's attributes, so a URL with ``%`` in
its password needs no escaping and a test can migrate inside its own
connection.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from cloud.db.base import Base
from cloud.db.engine import make_engine

# register every table on the metadata
from cloud.db import models  # noqa: F401  # isort: skip

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite alters tables by copying them; batch mode does that for later revisions
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_offline() -> None:
    context.configure(
        url=config.attributes["database_url"],
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.attributes["database_url"])
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
