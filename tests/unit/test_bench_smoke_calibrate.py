"""bench/calibrate_presence.py keeps running (quick mode) and prints its tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run(script: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_calibration_benchmark_prints_its_tables() -> None:
    data = Path(__file__).resolve().parents[3] / "shared" / "data" / "rssi-distance-herald"
    out = run("calibrate_presence.py")
    if not data.is_dir():
        assert "skipped: data not found" in out
        return
    for heading in ("Path-loss fit", "Median distance error", "Zone state vs truth", "Sweep"):
        assert heading in out
    assert "naive raw-RSSI threshold" in out
