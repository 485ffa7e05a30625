"""bench/ingest.py --quick runs end to end on a real PostgreSQL and Mosquitto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ingest_benchmark_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.ingest", "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "reference (ingestion service alone" in result.stdout
    assert "2 workers / 1 worker:" in result.stdout
