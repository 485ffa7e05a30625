"""bench/gateway_saturation.py --quick: the gateway at 3,000 adverts/s against a real Mosquitto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_saturation_benchmark_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.gateway_saturation", "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    if result.stdout.startswith("skipped:"):
        return  # no mosquitto on this machine: the script says so and stops
    assert "15000 adverts at 3000/s for 5 s" in result.stdout
    assert "core alone, CPU per advert (reference)" in result.stdout
    assert "gateway, CPU % of one core during the feed" in result.stdout
    assert "adverts/s sustained" in result.stdout
    assert "process RSS at start / end / peak of the feed" in result.stdout
    assert "messages queued / delivered to Mosquitto" in result.stdout
    assert "ratio gateway / core alone (CPU per advert):" in result.stdout
