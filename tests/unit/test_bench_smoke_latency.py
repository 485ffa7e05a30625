"""bench/latency.py --quick runs end to end on a real Mosquitto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_latency_benchmark_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.latency", "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    for line in ("reference: one MQTT hop", "warm (advert → offer", "cold (advert → offer"):
        assert line in result.stdout
