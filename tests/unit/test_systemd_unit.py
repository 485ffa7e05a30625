"""The shipped systemd unit starts the daemon the way the daemon expects to be run."""

from __future__ import annotations

import configparser
from pathlib import Path

from gateway.cli import build_parser

UNIT = (
    Path(__file__).resolve().parents[2] / "firmware-config" / "systemd" / "nahfeld-gateway.service"
)


def test_unit_is_notify_with_watchdog_and_runs_the_daemon() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNIT)
    service = unit["Service"]
    assert service["Type"] == "notify"
    # the daemon pets the watchdog every 5 s: the timeout must leave room for misses
    assert int(service["WatchdogSec"]) >= 15
    command = service["ExecStart"].split()
    assert command[:4] == ["/usr/bin/env", "nahfeld", "gateway", "run"]
    args = build_parser().parse_args(command[2:])  # the CLI accepts exactly these arguments
    assert str(args.config) == "/etc/nahfeld/gateway.toml"
    assert "AF_UNIX" in service["RestrictAddressFamilies"]  # D-Bus to BlueZ
    assert service["StateDirectory"] == "nahfeld"
