"""The nahfeld command as a user runs it: output, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import DEMO_STORE

IBEACON = "0201061aff4c000215f7826da64fa24e988024bc5b71e0893e00640001c5"


def nahfeld(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_decode_prints_frames() -> None:
    result = nahfeld("decode", IBEACON)
    assert result.returncode == 0, result.stderr
    frames = json.loads(result.stdout)["frames"]
    assert frames == [
        {
            "type": "ibeacon",
            "uuid": "f7826da6-4fa2-4e98-8024-bc5b71e0893e",
            "major": 100,
            "minor": 1,
            "tx_power": -59,
        }
    ]


def test_decode_bleak_fields() -> None:
    fields = {"service_data": {"0000feaa-0000-1000-8000-00805f9b34fb": "30ec436bfe57d5a09505"}}
    result = nahfeld("decode", "--fields", json.dumps(fields))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"][0]["eid"] == "436bfe57d5a09505"


def test_decode_truncated_says_so_without_traceback() -> None:
    result = nahfeld("decode", IBEACON[:30])
    assert result.returncode == 1
    assert "malformed advertising data" in result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["malformed"]["reason"] == "truncated_ad"


def test_decode_not_hex_and_no_beacon() -> None:
    not_hex = nahfeld("decode", "hello")
    assert not_hex.returncode == 2
    assert "not hex" in not_hex.stderr
    plain = nahfeld("decode", "0201060aff4c0010050b1c8a1b2c")
    assert plain.returncode == 1
    assert "no beacon frame" in plain.stderr


def test_eid_command() -> None:
    result = nahfeld(
        "eid",
        "--identity-key",
        "7c91330e61dfea4606b5b3ecb4457d76",
        "--exponent",
        "0",
        "--time",
        "0",
    )
    assert (result.returncode, result.stdout.strip()) == (0, "436bfe57d5a09505")
    bad = nahfeld("eid", "--identity-key", "00", "--exponent", "0", "--time", "0")
    assert bad.returncode == 2
    assert "identity key must be 16 bytes" in bad.stderr


def test_replay_sample_capture() -> None:
    result = nahfeld(
        "replay",
        "--layout",
        str(DEMO_STORE / "layout.toml"),
        "--input",
        str(DEMO_STORE / "capture.jsonl"),
        "--identities",
        str(DEMO_STORE / "identities.json"),
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert {e["type"] for e in events} == {"enter", "dwell", "exit"}
    assert "replayed" in result.stderr
    assert "AA:" not in result.stdout and "address" not in result.stdout


def test_replay_from_stdin_with_a_bad_line(tmp_path: Path) -> None:
    lines = "\n".join(
        ['{"broken']
        + [
            json.dumps({"ts": i, "gateway": "gw-entrance", "rssi": -55, "device": "d"})
            for i in range(10)
        ]
    )
    result = nahfeld(
        "replay", "--layout", str(DEMO_STORE / "layout.toml"), "--input", "-", stdin=lines
    )
    assert result.returncode == 0
    assert "line 1: skipped: not JSON" in result.stderr
    assert json.loads(result.stdout.splitlines()[0])["type"] == "enter"


def test_replay_bad_layout_is_a_clear_error(tmp_path: Path) -> None:
    layout = tmp_path / "bad.toml"
    layout.write_text('store = "s"\ntimezone = "UTC"\nzones = []\n')
    result = nahfeld("replay", "--layout", str(layout), "--input", "-", stdin="")
    assert result.returncode == 2
    assert "zones: List should have at least 1 item" in result.stderr
    assert "Traceback" not in result.stderr
    missing = nahfeld("replay", "--layout", str(tmp_path / "nope.toml"), "--input", "-", stdin="")
    assert missing.returncode == 2
    assert "cannot read layout" in missing.stderr


def test_help_lists_subcommands() -> None:
    result = nahfeld("--help")
    assert result.returncode == 0
    for command in ("decode", "eid", "replay", "simulate"):
        assert command in result.stdout


def gateway_config(tmp_path: Path, body: str) -> Path:
    config = tmp_path / "gateway.toml"
    config.write_text(f'layout = "{DEMO_STORE / "layout.toml"}"\n' + body)
    return config


def test_gateway_check_config_ok(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, 'store = "demo-store"\ngateway = "gw-entrance"\n')
    result = nahfeld("gateway", "check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "config OK: store demo-store, gateway gw-entrance watching entrance" in result.stdout


def test_gateway_check_config_names_each_wrong_field(tmp_path: Path) -> None:
    body = 'store = "demo-store"\ngateway = "gw-entrance"\n[mqtt]\nport = 99999\nbogus = 1\n'
    result = nahfeld("gateway", "check-config", "--config", str(gateway_config(tmp_path, body)))
    assert result.returncode == 2
    assert "mqtt.port: Input should be less than or equal to 65535" in result.stderr
    assert "mqtt.bogus: Extra inputs are not permitted" in result.stderr
    assert "Traceback" not in result.stderr


def test_gateway_check_config_cross_checks_the_layout(tmp_path: Path) -> None:
    body = 'store = "other-store"\ngateway = "gw-nowhere"\n'
    result = nahfeld("gateway", "check-config", "--config", str(gateway_config(tmp_path, body)))
    assert result.returncode == 2
    assert "does not match the layout's 'demo-store'" in result.stderr
    assert "'gw-nowhere' watches no zone" in result.stderr
