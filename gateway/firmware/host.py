"""The gateway host's own files: the systemd unit and BlueZ's ``main.conf``.

Neither is a Nahfeld format, so neither has a pydantic model; these checks hold
the few facts the daemon relies on (systemd's notify/watchdog protocol, D-Bus to
BlueZ, passive scanning needing BlueZ's experimental interfaces) so a wrong edit
is caught by ``nahfeld firmware validate`` and not by a gateway that restarts in
a loop in a store.
"""

from __future__ import annotations

import configparser
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

#: (field, reason): the file is named by the caller
Finding = tuple[str, str]

#: the daemon sends WATCHDOG=1 every 5 s (gateway/daemon.py): allow two missed pings
MIN_WATCHDOG_S = 15.0

_SPAN_UNITS = {
    "us": 1e-6,
    "usec": 1e-6,
    "ms": 1e-3,
    "msec": 1e-3,
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}
_SPAN_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_timespan(text: str) -> float | None:
    """A systemd time span (``30``, ``30s``, ``1min 30s``) in seconds; None if not one."""
    text = text.strip()
    total, pos = 0.0, 0
    while pos < len(text):
        match = _SPAN_PART.match(text, pos)
        if match is None or match.group(2) not in _SPAN_UNITS:
            return None
        total += float(match.group(1)) * _SPAN_UNITS[match.group(2)]
        pos = match.end()
    return total if text else None


def _unit_sections(text: str) -> tuple[dict[str, dict[str, list[str]]], list[Finding]]:
    """systemd's unit syntax: keys may repeat (``Environment=``), lines may continue with ``\\``.

    configparser would keep only the last of repeated keys, so the few lines are read here.
    """
    sections: dict[str, dict[str, list[str]]] = {}
    findings: list[Finding] = []
    current: dict[str, list[str]] | None = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif "=" in line and current is not None:
            key, value = line.split("=", 1)
            current.setdefault(key.strip(), []).append(value.strip())
        else:
            findings.append((f"line {number}", f"not a [Section] or Key=Value line: {raw!r}"))
    return sections, findings


@dataclass
class GatewayUnit:
    """What the validator learnt from the unit, for checks against other files."""

    problems: list[Finding] = field(default_factory=list)
    #: NAHFELD_GATEWAY_* variables the unit sets: they win over gateway.toml
    environment: dict[str, str] = field(default_factory=dict)
    #: directories the service may write under ProtectSystem=strict; None when not strict
    writable: list[str] | None = None


def check_systemd_unit(text: str) -> GatewayUnit:
    """The unit must run ``nahfeld gateway run`` as a notify service with a watchdog."""
    sections, findings = _unit_sections(text)
    unit = GatewayUnit(problems=findings)
    problems = unit.problems
    if "Service" not in sections:
        problems.append(("Service", "missing [Service] section"))
        return unit
    service = {key: values[-1] for key, values in sections["Service"].items()}

    if service.get("Type") != "notify":
        problems.append(
            (
                "Service.Type",
                f"must be notify, not {service.get('Type', '(unset)')!r}: the daemon reports "
                "READY=1 once scanning and MQTT are up, and the watchdog needs notify",
            )
        )
    if service.get("NotifyAccess") == "none":
        problems.append(("Service.NotifyAccess", "none drops the daemon's READY=1 and WATCHDOG=1"))
    if "WatchdogSec" not in service:
        problems.append(
            (
                "Service.WatchdogSec",
                "missing: without a watchdog a hung scanner is never restarted "
                f"(the daemon pings every 5 s; use at least {MIN_WATCHDOG_S:g})",
            )
        )
    else:
        seconds = parse_timespan(service["WatchdogSec"])
        if seconds is None or seconds < MIN_WATCHDOG_S:
            problems.append(
                (
                    "Service.WatchdogSec",
                    f"{service['WatchdogSec']!r} must be a time span of at least "
                    f"{MIN_WATCHDOG_S:g} s: the daemon pings every 5 s",
                )
            )
    if service.get("Restart", "no") == "no":
        problems.append(
            ("Service.Restart", "set on-failure: the daemon exits on errors it cannot recover")
        )
    problems.extend(_check_exec_start(service.get("ExecStart")))

    families = service.get("RestrictAddressFamilies")
    if families is not None and not families.startswith("~"):
        allowed = set(families.split())
        if "AF_UNIX" not in allowed:
            problems.append(("Service.RestrictAddressFamilies", "needs AF_UNIX: D-Bus to BlueZ"))
        if not allowed & {"AF_INET", "AF_INET6"}:
            problems.append(
                ("Service.RestrictAddressFamilies", "needs AF_INET or AF_INET6: the broker")
            )

    for value in sections["Service"].get("Environment", []):
        try:
            assignments = shlex.split(value)
        except ValueError as exc:
            problems.append(("Service.Environment", f"cannot parse {value!r}: {exc}"))
            continue
        for assignment in assignments:
            name, _, setting = assignment.partition("=")
            if name.startswith("NAHFELD_GATEWAY_"):
                unit.environment[name] = setting

    if service.get("ProtectSystem") == "strict":
        unit.writable = [f"/var/lib/{d}" for d in service.get("StateDirectory", "").split()]
        unit.writable += service.get("ReadWritePaths", "").split()
    return unit


def _check_exec_start(command: str | None) -> list[Finding]:
    where = "Service.ExecStart"
    if command is None:
        return [(where, "missing: must run `nahfeld gateway run`")]
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return [(where, f"cannot parse {command!r}: {exc}")]
    if words:
        words[0] = words[0].lstrip("@-:+!")  # systemd's command prefixes
    if words and PurePosixPath(words[0]).name == "env":
        words = words[1:]
        while words and "=" in words[0]:
            words = words[1:]
    if (
        len(words) < 3
        or PurePosixPath(words[0]).name != "nahfeld"
        or words[1:3]
        != [
            "gateway",
            "run",
        ]
    ):
        return [(where, f"must run `nahfeld gateway run [--config FILE]`, not {command!r}")]
    rest = words[3:]
    if (
        not rest
        or (len(rest) == 2 and rest[0] == "--config")
        or (len(rest) == 1 and rest[0].startswith("--config="))
    ):
        return []
    return [(where, f"`nahfeld gateway run` takes only --config FILE, not {' '.join(rest)!r}")]


# ---------------------------------------------------------------------------- BlueZ main.conf


@dataclass
class BluezConf:
    problems: list[Finding] = field(default_factory=list)
    #: [General] Experimental: None when unset (BlueZ's default: off)
    experimental: bool | None = None


_Check = Callable[[str], str | None]  # the reason a value is wrong, or None


def _one_of(*choices: str) -> _Check:
    def check(value: str) -> str | None:
        return None if value in choices else f"{value!r} is not one of {', '.join(choices)}"

    return check


def _boolean(value: str) -> str | None:
    # GKeyFile's booleans; note it has no trailing comments: "true  # why" is not a boolean
    return None if value in {"true", "false", "1", "0"} else f"{value!r} is not true or false"


def _integer(low: int, high: int, unit: str = "") -> _Check:
    def check(value: str) -> str | None:
        if not re.fullmatch(r"\d+", value):
            return f"{value!r} is not a decimal integer (GKeyFile reads no hex, no comments)"
        if not low <= int(value) <= high:
            return f"{value} is outside {low}..{high}{unit}"
        return None

    return check


# LE scan interval and window: 0x0004..0x4000 in units of 0.625 ms (2.5 ms .. 10.24 s)
_SCAN = _integer(4, 0x4000, " (units of 0.625 ms)")

#: the keys this fleet sets, per section; anything else is refused rather than silently ignored
#: by bluetoothd (a misspelt key in main.conf only shows up as a warning in its log)
BLUEZ_KEYS: dict[str, dict[str, _Check]] = {
    "General": {
        "ControllerMode": _one_of("le", "dual"),
        "Experimental": _boolean,
    },
    "LE": {
        "ScanIntervalDiscovery": _SCAN,
        "ScanWindowDiscovery": _SCAN,
        "ScanIntervalAdvMonitor": _SCAN,
        "ScanWindowAdvMonitor": _SCAN,
        "EnableAdvMonInterleaveScan": _one_of("0", "1"),
    },
    "Policy": {
        "AutoEnable": _boolean,
    },
    "AdvMon": {
        "RSSISamplingPeriod": _integer(0, 255),
    },
}

_SCAN_PAIRS = (
    ("ScanIntervalDiscovery", "ScanWindowDiscovery"),
    ("ScanIntervalAdvMonitor", "ScanWindowAdvMonitor"),
)


def check_bluez_main_conf(text: str) -> BluezConf:
    """Known sections and keys only, each value in its domain, scan windows within intervals."""
    conf = BluezConf()
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are CamelCase
    try:
        parser.read_string(text)
    except configparser.DuplicateOptionError as exc:
        conf.problems.append((f"{exc.section}.{exc.option}", f"repeated (line {exc.lineno})"))
        return conf
    except configparser.DuplicateSectionError as exc:
        conf.problems.append((exc.section, f"section repeated (line {exc.lineno})"))
        return conf
    except configparser.Error as exc:
        conf.problems.append(("(syntax)", str(exc).replace("\n", " ")))
        return conf

    for section in parser.sections():
        known = BLUEZ_KEYS.get(section)
        if known is None:
            conf.problems.append(
                (section, f"unknown section; known: {', '.join(sorted(BLUEZ_KEYS))}")
            )
            continue
        for key, value in parser.items(section):
            check = known.get(key)
            if check is None:
                conf.problems.append(
                    (
                        f"{section}.{key}",
                        f"unknown key; known in [{section}]: {', '.join(sorted(known))} "
                        "(add others to gateway/firmware/host.py once checked)",
                    )
                )
                continue
            reason = check(value)
            if reason is not None:
                conf.problems.append((f"{section}.{key}", reason))
    if parser.has_section("LE"):
        le = parser["LE"]
        for interval_key, window_key in _SCAN_PAIRS:
            interval, window = le.get(interval_key, ""), le.get(window_key, "")
            if interval.isdigit() and window.isdigit() and int(window) > int(interval):
                conf.problems.append(
                    (f"LE.{window_key}", f"{window} is longer than {interval_key} ({interval})")
                )
    experimental = parser.get("General", "Experimental", fallback=None)
    if experimental in {"true", "1"}:
        conf.experimental = True
    elif experimental in {"false", "0"}:
        conf.experimental = False
    return conf
