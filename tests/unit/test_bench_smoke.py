"""Each benchmark run as ``python -m bench.NAME --quick``, end to end (the ones that need
them start a real Mosquitto or PostgreSQL), printing every figure it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROMISED: dict[str, tuple[str, ...]] = {
    "ingest": ("reference (ingestion service alone", "2 workers / 1 worker:"),
    "gateway_pipeline": (
        "gateway pipeline, CPU % of one core per 1,000/s",
        "messages queued / delivered to Mosquitto",
        "ratio pipeline / core alone",
    ),
    "gateway_saturation": (
        "15000 adverts at 3000/s for 5 s",
        "core alone, CPU per advert (reference)",
        "gateway, CPU % of one core during the feed",
        "adverts/s sustained",
        "process RSS at start / end / peak of the feed",
        "messages queued / delivered to Mosquitto",
        "ratio gateway / core alone (CPU per advert):",
    ),
    "ruleset_fanout": (
        "one change for the whole fleet",
        "ratio to reference",
        "one store's change",
    ),
    "latency": ("reference: one MQTT hop", "warm (advert → offer", "cold (advert → offer"),
}


@pytest.mark.parametrize("name", sorted(PROMISED))
def test_the_benchmark_prints_its_figures(name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    missing = [line for line in PROMISED[name] if line not in result.stdout]
    assert not missing, result.stdout
