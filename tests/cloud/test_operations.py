"""Health, readiness, metrics, and a database outage answered with 503 JSON, never a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.db.migrate import upgrade
from cloud.services.auth import Role
from cloud.settings import CloudSettings
from tests.cloud.conftest import STORE, Api
from tests.support.postgres import PostgresServer, running_postgres


def test_health_and_readiness(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready"}


def test_openapi_docs(api: Api) -> None:
    assert api.client.get("/docs").status_code == 200
    schema = api.client.get("/openapi.json").json()
    assert "/v1/stores/{store_id}/gateways" in schema["paths"]
    stock = schema["paths"]["/v1/stores/{store_id}/stock"]["put"]["requestBody"]["content"]
    assert {"application/json", "text/csv"} <= set(stock)


def test_metrics_count_requests_by_route_and_status(api: Api, store: dict[str, Any]) -> None:
    api.get("viewer", f"/v1/stores/{STORE['id']}")
    api.get("viewer", "/v1/stores/nowhere")
    api.get("viewer", "/v1/stores/elsewhere")
    text = api.client.get("/metrics").text
    route = 'route="/v1/stores/{store_id}"'
    assert f'nahfeld_cloud_http_requests_total{{method="GET",{route},status="200"}} 1.0' in text
    assert f'nahfeld_cloud_http_requests_total{{method="GET",{route},status="404"}} 2.0' in text
    assert "nowhere" not in text


def _dead_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'missing-dir' / 'cloud.db'}"
    # a socket directory no server listens in
    return f"postgresql+psycopg://postgres@/nahfeld?host={tmp_path}&port=5"


def _assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "database_unavailable"
    assert "database is unavailable" in response.json()["detail"]
    assert response.headers["Retry-After"]


def test_a_dead_database_is_503_json(backend: str, tmp_path: Path) -> None:
    app = create_app(CloudSettings(database_url=_dead_url(backend, tmp_path)))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz").status_code == 200
        _assert_unavailable(client.get("/readyz"))
        key = {"Authorization": "Bearer nfk_0123456789ab_whatever"}
        _assert_unavailable(client.get("/v1/stores", headers=key))
        _assert_unavailable(client.post("/v1/campaigns", json={"id": "x"}, headers=key))
        assert "nahfeld_cloud_database_unavailable_total 3.0" in client.get("/metrics").text


@pytest.fixture
def own_postgres() -> Any:
    """A PostgreSQL server of this test's own, to stop and start under a running app."""
    with running_postgres() as server:
        yield server


def test_postgres_going_down_and_coming_back(own_postgres: PostgresServer) -> None:
    from cloud.db.engine import make_engine, make_sessionmaker
    from cloud.services.auth import bootstrap_api_key

    url = own_postgres.create_database("cloud")
    upgrade(url)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        token = bootstrap_api_key(session, "acme", Role.VIEWER)[1]
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(CloudSettings(database_url=url), engine=engine)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/v1/stores", headers=headers).status_code == 200
            own_postgres.stop()
            _assert_unavailable(client.get("/v1/stores", headers=headers))
            _assert_unavailable(client.get("/readyz"))
            own_postgres.start()
            assert client.get("/readyz").status_code == 200
            assert client.get("/v1/stores", headers=headers).status_code == 200
    finally:
        engine.dispose()
