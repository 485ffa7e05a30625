"""Fixtures for the cloud service: every API test runs on SQLite and on a real PostgreSQL.

Each backend is migrated once per session; each test then starts with no rows
(a copy of the migrated SQLite file; the PostgreSQL database truncated), so
tests never see each other's rows and never pay for a migration run.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text

from cloud.api.app import create_app
from cloud.db.base import Base
from cloud.db.engine import make_engine, make_sessionmaker
from cloud.db.migrate import upgrade
from cloud.services.auth import Role, bootstrap_api_key
from cloud.services.changes import Change
from cloud.settings import CloudSettings
from tests.support.postgres import PostgresServer, running_postgres

BACKENDS = ["sqlite", "postgresql"]
_names = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A database with no tables (for migration and CLI tests)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"empty_{next(_names)}"
    yield server.create_database(name)
    server.drop_database(name)


@pytest.fixture(scope="session")
def postgres_database(postgres: PostgresServer) -> str:
    """One migrated database for the session's API tests, emptied before each test."""
    url = postgres.create_database("nahfeld_api")
    upgrade(url)
    return url


def _truncate_all(url: str) -> None:
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database with no rows: a copy of the template file (SQLite), or the
    session's database truncated (PostgreSQL, 50 ms against 200 ms for a new database)."""
    if backend == "sqlite":
        path = tmp_path / "cloud.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    _truncate_all(url)
    return url


def _sqlite_without_fsync(dbapi_connection: Any, _record: object) -> None:
    # a test database need not survive a power cut; commits then cost no fsync
    dbapi_connection.execute("PRAGMA synchronous=OFF")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    instance = make_engine(database_url)
    if instance.dialect.name == "sqlite":
        event.listen(instance, "connect", _sqlite_without_fsync)
    yield instance
    instance.dispose()


@dataclass
class StoreChanges:
    """What the store-change hook was called with, in order: stores whose ruleset changed,
    stores whose stock changed."""

    rulesets: list[str] = field(default_factory=list)
    stock: list[str] = field(default_factory=list)

    def __call__(self, store_id: str, change: Change) -> None:
        (self.rulesets if change == "ruleset" else self.stock).append(store_id)


@pytest.fixture
def store_changes() -> StoreChanges:
    return StoreChanges()


@pytest.fixture
def client(database_url: str, engine: Engine, store_changes: StoreChanges) -> Iterator[TestClient]:
    app = create_app(
        CloudSettings(database_url=database_url), engine=engine, on_store_change=store_changes
    )
    with TestClient(app) as test_client:
        yield test_client


@dataclass
class Api:
    """The test client with a key per role for the tenant "acme", and an admin of "rival"."""

    client: TestClient
    keys: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers(who), **kwargs.pop("headers", {})}
        response: httpx.Response = self.client.request(method, path, headers=headers, **kwargs)
        return response

    def get(self, who: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.call(who, "GET", path, **kwargs)

    def post(self, who: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.call(who, "POST", path, **kwargs)

    def put(self, who: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.call(who, "PUT", path, **kwargs)

    def delete(self, who: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.call(who, "DELETE", path, **kwargs)

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json() if response.content else None


@pytest.fixture
def api(client: TestClient, engine: Engine) -> Api:
    return api_with_keys(client, engine)


def api_with_keys(client: TestClient, engine: Engine) -> Api:
    """Keys for every role of "acme" and an admin of "rival", for this client's app."""
    keys: dict[str, str] = {}
    with make_sessionmaker(engine)() as session:
        for role in Role:
            keys[role.value] = bootstrap_api_key(session, "acme", role)[1]
        keys["rival"] = bootstrap_api_key(session, "rival", Role.ADMIN)[1]
    return Api(client, keys)


STORE = {
    "id": "berlin-mitte",
    "name": "Berlin Mitte",
    "timezone": "Europe/Berlin",
    "opening_hours": {"mon": [{"start": "09:00", "end": "20:00"}]},
}


@pytest.fixture
def store(api: Api) -> dict[str, Any]:
    """A store with zones "entrance" and "coffee", a campaign, an offer and a segment."""
    created = api.ok(api.post("admin", "/v1/stores", json=STORE), 201)
    for zone in ("entrance", "coffee"):
        api.ok(api.post("admin", f"/v1/stores/{STORE['id']}/zones", json={"id": zone}), 201)
    api.ok(
        api.post(
            "marketer",
            "/v1/campaigns",
            json={"id": "spring", "status": "active", "priority": 5},
        ),
        201,
    )
    api.ok(
        api.post(
            "marketer",
            "/v1/offers",
            json={"id": "latte", "campaign": "spring", "title": "2-for-1 latte", "sku": "LATTE"},
        ),
        201,
    )
    api.ok(api.post("marketer", "/v1/segments", json={"id": "regulars"}), 201)
    return dict(created)


def rule_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "latte-at-coffee",
        "store": STORE["id"],
        "offer": "latte",
        "trigger": {"type": "dwell", "zones": ["coffee"], "dwell_s": 20},
        "caps": {"per_user_per_day": 1, "cooldown_s": 600},
    }
    body.update(overrides)
    return body
