"""``nahfeld replay``: a capture of advert records through the core, events out as JSONL.

Record format (one JSON object a line)::

    {"ts": 1700000000.25, "gateway": "gw-entrance", "rssi": -63, "ad": "0201061aff4c00..."}
    {"ts": 1700000001.0, "gateway": "gw-entrance", "rssi": -70, "device": "phone-7"}

``ad`` is raw advertising data in hex; ``device`` names an already identified
device (calibration and evaluation data). ``address`` may be present and is
ignored: it never reaches the output.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .ble.eid import EidIdentity, EidTable
from .core import GatewayCore
from .layout import StoreLayout, format_validation_error
from .recognise import EidCache

RSSI_MIN = -127
RSSI_MAX = 20


class RecordError(ValueError):
    """A capture line that cannot be replayed; the message says why."""


@dataclass(frozen=True, slots=True)
class AdvertRecord:
    ts: float
    gateway: str
    rssi: float
    ad: bytes | None
    device: str | None


def _field(raw: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = raw.get(name)
    if isinstance(value, bool) or not isinstance(value, kind):
        wanted = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        got = "missing" if name not in raw else f"{type(value).__name__} {value!r}"[:60]
        raise RecordError(f"field {name!r} must be {wanted}, got {got}")
    return value


def parse_record(line: str) -> AdvertRecord:
    """Parse and check one capture line."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordError(f"not JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(raw, dict):
        raise RecordError(f"expected a JSON object, got {type(raw).__name__}")
    ts = float(_field(raw, "ts", (int, float)))
    if not math.isfinite(ts) or ts < 0:
        raise RecordError(f"field 'ts' must be a finite, non-negative number of seconds, got {ts}")
    gateway = _field(raw, "gateway", str)
    if not gateway:
        raise RecordError("field 'gateway' must not be empty")
    rssi = float(_field(raw, "rssi", (int, float)))
    if not RSSI_MIN <= rssi <= RSSI_MAX:
        raise RecordError(f"field 'rssi' must be {RSSI_MIN}..{RSSI_MAX} dBm, got {rssi}")
    has_ad, has_device = "ad" in raw, "device" in raw
    if has_ad == has_device:
        raise RecordError("a record needs exactly one of 'ad' (hex advertising data) or 'device'")
    if has_ad:
        text = _field(raw, "ad", str)
        try:
            ad = bytes.fromhex(text)
        except ValueError as exc:
            raise RecordError(f"field 'ad' is not hex: {text[:40]!r}") from exc
        return AdvertRecord(ts, gateway, rssi, ad, None)
    device = _field(raw, "device", str)
    if not device:
        raise RecordError("field 'device' must not be empty")
    return AdvertRecord(ts, gateway, rssi, None, device)


class IdentitiesFile(BaseModel):
    """Known opted-in identities, for replaying a capture without the cloud resolver."""

    model_config = ConfigDict(extra="forbid")

    class Entry(BaseModel):
        model_config = ConfigDict(extra="forbid")
        token: str = Field(min_length=1)
        identity_key: str = Field(pattern=r"^[0-9a-fA-F]{32}$")
        exponent: int = Field(ge=0, le=15)

    identities: list[Entry]

    def to_identities(self) -> list[EidIdentity]:
        return [
            EidIdentity(e.token, bytes.fromhex(e.identity_key), e.exponent) for e in self.identities
        ]


def load_identities(path: Path) -> list[EidIdentity]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecordError(f"{path}: cannot read identities: {exc.strerror or exc}") from exc
    try:
        return IdentitiesFile.model_validate_json(text).to_identities()
    except ValidationError as exc:
        raise RecordError(format_validation_error(str(path), exc)) from exc


@dataclass(slots=True)
class ReplaySummary:
    records: int = 0
    bad_lines: int = 0
    events: int = 0


def replay(
    layout: StoreLayout,
    lines: Iterable[str],
    out: TextIO,
    errors: TextIO,
    identities: Iterable[EidIdentity] = (),
    flush: bool = True,
) -> tuple[ReplaySummary, GatewayCore]:
    """Feed every good line to a fresh core; report bad lines on ``errors`` and go on."""
    core = GatewayCore(layout, EidCache(local=EidTable(identities)))
    summary = ReplaySummary()

    def emit(events: Iterator[Any] | list[Any]) -> None:
        for event in events:
            out.write(json.dumps(event.to_dict(), separators=(",", ":")) + "\n")
            summary.events += 1

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = parse_record(line)
        except RecordError as exc:
            summary.bad_lines += 1
            errors.write(f"line {number}: skipped: {exc}\n")
            continue
        summary.records += 1
        if record.ad is not None:
            emit(core.on_advert(record.ts, record.gateway, record.rssi, record.ad))
        else:
            assert record.device is not None
            emit(core.on_device(record.ts, record.gateway, record.rssi, record.device))
    if flush:
        emit(core.flush())
    return summary, core
