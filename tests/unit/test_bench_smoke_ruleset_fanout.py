"""bench/ruleset_fanout.py --quick runs end to end on a real Mosquitto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruleset_fanout_benchmark_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.ruleset_fanout", "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "one change for the whole fleet" in result.stdout
    assert "ratio to reference" in result.stdout
    assert "one store's change" in result.stdout
