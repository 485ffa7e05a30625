"""``nahfeld cloud migrate`` and ``create-api-key`` against a fresh database of each backend."""

from __future__ import annotations

import argparse

import pytest
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.cli import add_cloud_commands
from cloud.settings import CloudSettings


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="nahfeld")
    add_cloud_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_migrate_then_bootstrap_a_key(
    empty_database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAHFELD_CLOUD_DATABASE_URL", empty_database_url)
    assert _run("cloud", "migrate") == 0
    assert _run("cloud", "create-api-key", "--tenant", "acme", "--role", "admin") == 0
    out, err = capsys.readouterr()
    token = out.strip().splitlines()[-1]
    assert token.startswith("nfk_") and "shown once" in err
    app = create_app(CloudSettings())
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {token}"}
        store = {"id": "s1", "name": "S1", "timezone": "UTC"}
        assert client.post("/v1/stores", json=store, headers=headers).status_code == 201
    # the tenant is reused, not duplicated
    assert _run("cloud", "create-api-key", "--tenant", "acme", "--role", "viewer") == 0
    viewer = capsys.readouterr().out.strip()
    with TestClient(create_app(CloudSettings())) as client:
        listed = client.get("/v1/stores", headers={"X-API-Key": viewer}).json()
        assert [s["id"] for s in listed["items"]] == ["s1"]


def test_create_api_key_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _run("cloud", "create-api-key", "--tenant", "acme", "--role", "owner")
    with pytest.raises(SystemExit):
        _run("cloud", "create-api-key", "--tenant", "no spaces", "--role", "admin")
    assert "invalid" in capsys.readouterr().err


def test_create_api_key_without_migration_fails_clearly(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(
        "cloud", "create-api-key", "--tenant", "acme", "--role", "admin",
        "--database-url", empty_database_url,
    )  # fmt: skip
    assert code == 1
    assert "nahfeld cloud migrate" in capsys.readouterr().err


@pytest.mark.parametrize("command", [("worker",), ("migrate",), ("serve",)])
def test_a_bad_setting_is_named_not_a_traceback(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAHFELD_CLOUD_CAP_PER_PERSON_PER_DAY", "three")
    assert _run("cloud", *command) == 2
    err = capsys.readouterr().err
    assert f"nahfeld cloud {command[0]}: NAHFELD_CLOUD_CAP_PER_PERSON_PER_DAY" in err
    assert "'three'" in err and "Traceback" not in err


def test_retire_needs_mqtt_5_and_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAHFELD_CLOUD_MQTT_PROTOCOL", "3.1.1")
    assert _run("cloud", "worker", "--name", "x", "--retire") == 2
    assert "--retire: needs MQTT 5" in capsys.readouterr().err
