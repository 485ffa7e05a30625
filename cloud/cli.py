"""The ``nahfeld cloud`` command group: serve the API, migrate the database, bootstrap a key.

``gateway.cli`` adds this group with :func:`add_cloud_commands`. Each command
imports FastAPI, SQLAlchemy and uvicorn itself, so ``nahfeld decode`` on a
gateway does not pay for (or need) the cloud's dependencies.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import CloudSettings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
ROLES = ("admin", "marketer", "viewer")


def _settings(args: argparse.Namespace) -> CloudSettings | None:
    """The settings, or ``None`` after saying which variable is wrong and why."""
    from pydantic import ValidationError

    from .settings import CloudSettings

    try:
        return CloudSettings()
    except ValidationError as exc:
        command = f"nahfeld cloud {args.cloud_command}"
        for error in exc.errors():
            field = "_".join(str(part) for part in error["loc"]).upper()
            value = error.get("input")
            print(
                f"{command}: NAHFELD_CLOUD_{field}: {error['msg']} (got {value!r})",
                file=sys.stderr,
            )
        return None


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from .api.app import create_app

    settings = _settings(args)
    if settings is None:
        return EXIT_USAGE
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    host = args.host or settings.host
    port = args.port or settings.port
    app = create_app(settings, publish=settings.publish_rulesets)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower())
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from .worker import build_worker

    settings = _settings(args)
    if settings is None:
        return EXIT_USAGE
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    if args.retire and settings.mqtt_protocol != "5":
        print(
            "nahfeld cloud worker --retire: needs MQTT 5 (shared subscriptions); with "
            "NAHFELD_CLOUD_MQTT_PROTOCOL=3.1.1 there is one worker and nothing to hand over",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        worker = build_worker(settings, name=args.name)
        worker.start()
        if args.retire:
            drained = worker.retire()
            print(
                f"worker {args.name} retired: its share goes to the other workers, its "
                "sessions are ended"
                + ("" if drained else "; NOT everything they held was handled in time")
            )
            return EXIT_OK if drained else EXIT_FAILED
    except (ConnectionError, TimeoutError, OSError) as exc:
        print(f"nahfeld cloud worker: {exc}", file=sys.stderr)
        return EXIT_FAILED
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    worker.stop()
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from .db.migrate import upgrade

    settings = _settings(args)
    if settings is None:
        return EXIT_USAGE
    url = args.database_url or settings.database_url
    try:
        upgrade(url, args.revision)
    except SQLAlchemyError as exc:
        print(f"nahfeld cloud migrate: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"database migrated to {args.revision}")
    return EXIT_OK


def cmd_create_api_key(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from .db.engine import make_engine, make_sessionmaker
    from .services.auth import Role, bootstrap_api_key

    settings = _settings(args)
    if settings is None:
        return EXIT_USAGE
    engine = make_engine(args.database_url or settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            key, token = bootstrap_api_key(session, args.tenant, Role(args.role), args.name)
    except SQLAlchemyError as exc:
        print(
            f"nahfeld cloud create-api-key: {exc.__class__.__name__}: {exc} "
            "(has `nahfeld cloud migrate` run?)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    finally:
        engine.dispose()
    print(
        f"created {args.role} key {key.prefix} for tenant {args.tenant!r}; "
        "it is shown once, store it now:",
        file=sys.stderr,
    )
    print(token)
    return EXIT_OK


def _tenant(value: str) -> str:
    from pydantic import TypeAdapter, ValidationError

    from gateway.fields import Identifier

    try:
        return TypeAdapter(Identifier).validate_python(value)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(
            f"{value!r}: letters, digits, '_', '.', '-' (1-64, starting alphanumeric)"
        ) from exc


def add_cloud_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cloud = sub.add_parser(
        "cloud",
        help="the cloud rules service's commands",
        description="Commands for the cloud rules service. Settings come from the environment "
        "(NAHFELD_CLOUD_..., e.g. NAHFELD_CLOUD_DATABASE_URL) and .env.",
    )
    cloud_sub = cloud.add_subparsers(dest="cloud_command", required=True, metavar="COMMAND")

    serve = cloud_sub.add_parser(
        "serve",
        help="serve the API (OpenAPI docs at /docs)",
        description="Serve the marketer API with uvicorn. Run `nahfeld cloud migrate` first.",
    )
    serve.add_argument("--host", help="address to listen on (default: NAHFELD_CLOUD_HOST)")
    serve.add_argument("--port", type=int, help="port (default: NAHFELD_CLOUD_PORT)")
    serve.set_defaults(func=cmd_serve)

    worker = cloud_sub.add_parser(
        "worker",
        help="resolve gateways' EIDs and ingest their offer decisions over MQTT",
        description="Run the EID resolver and the event ingestion on the broker named by "
        "NAHFELD_CLOUD_MQTT_*. Several workers share the load (shared subscriptions); with "
        "more than one, use PostgreSQL.",
    )
    worker.add_argument(
        "--name",
        default="1",
        help="this worker's name, unique and the same across restarts, so the broker keeps "
        "what it had not acknowledged for it (default: 1)",
    )
    worker.add_argument(
        "--retire",
        action="store_true",
        help="take the worker of this name away for good: handle what its sessions still "
        "hold, leave the shared subscription and end its sessions, then exit (a stopped "
        "worker's session otherwise keeps receiving its share until it expires: "
        "NAHFELD_CLOUD_MQTT_SESSION_EXPIRY_S)",
    )
    worker.set_defaults(func=cmd_worker)

    migrate = cloud_sub.add_parser(
        "migrate",
        help="create or upgrade the database schema",
        description="Apply the packaged Alembic migrations (SQLite or PostgreSQL).",
    )
    migrate.add_argument("--database-url", help="default: NAHFELD_CLOUD_DATABASE_URL")
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
    migrate.set_defaults(func=cmd_migrate)

    create_key = cloud_sub.add_parser(
        "create-api-key",
        help="create an API key (and the tenant, if new); prints the key once",
        description="Bootstrap access: create a key for TENANT with ROLE. The key goes to "
        "stdout, a note to stderr; only its hash is stored.",
    )
    create_key.add_argument("--tenant", required=True, type=_tenant, help="the retailer's id")
    create_key.add_argument("--role", required=True, choices=ROLES)
    create_key.add_argument("--name", default="", help="a label shown in key listings")
    create_key.add_argument("--database-url", help="default: NAHFELD_CLOUD_DATABASE_URL")
    create_key.set_defaults(func=cmd_create_api_key)
