"""The shipped systemd unit starts the daemon the way the daemon expects to be run."""

from __future__ import annotations

import shlex
from pathlib import Path

from gateway.cli import build_parser
from gateway.firmware.host import check_systemd_unit

UNIT = (
    Path(__file__).resolve().parents[2] / "firmware-config" / "systemd" / "nahfeld-gateway.service"
)


def test_unit_is_notify_with_watchdog_and_runs_the_daemon() -> None:
    text = UNIT.read_text(encoding="utf-8")
    # Type=notify, WatchdogSec >= 15 s, Restart, ExecStart, RestrictAddressFamilies with AF_UNIX:
    # the same checks `nahfeld firmware validate` runs
    unit = check_systemd_unit(text)
    assert unit.problems == []
    assert unit.writable == ["/var/lib/nahfeld"]  # StateDirectory=nahfeld under ProtectSystem
    (exec_start,) = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    command = shlex.split(exec_start.removeprefix("ExecStart="))
    assert command[:4] == ["/usr/bin/env", "nahfeld", "gateway", "run"]
    args = build_parser().parse_args(command[2:])  # the CLI accepts exactly these arguments
    assert str(args.config) == "/etc/nahfeld/gateway.toml"


def test_the_check_catches_what_would_break_the_daemon() -> None:
    text = UNIT.read_text(encoding="utf-8")
    for old, new, field in [
        ("Type=notify", "Type=simple", "Service.Type"),
        ("WatchdogSec=30", "WatchdogSec=10", "Service.WatchdogSec"),
        ("AF_UNIX ", "", "Service.RestrictAddressFamilies"),
        ("gateway run", "gateway scan", "Service.ExecStart"),
        ("Restart=on-failure", "Restart=no", "Service.Restart"),
    ]:
        assert old in text
        problems = check_systemd_unit(text.replace(old, new)).problems
        assert [f for f, _ in problems] == [field], (old, problems)
