"""bench/gateway_pipeline.py --quick runs end to end against a real Mosquitto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pipeline_benchmark_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.gateway_pipeline", "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "gateway pipeline, CPU % of one core per 1,000/s" in result.stdout
    assert "ratio pipeline / core alone" in result.stdout
