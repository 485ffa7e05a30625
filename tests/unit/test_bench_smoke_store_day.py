"""bench/store_day.py --quick replays two simulated hours of the demo store through the core."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_store_day_benchmark_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.store_day", "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "2 simulated hour(s) from 2026-03-02 11:00" in out
    # one RSS sample per simulated hour
    assert re.search(r"^\s+12\s+\d+ .* \d+\.\d$", out, re.MULTILINE), out
    assert re.search(r"^\s+13\s+\d+ .* \d+\.\d$", out, re.MULTILINE), out
    assert "RSS growth hour 12 → hour 13:" in out
    assert re.search(r"^events: \d+ \(dwell \d+, enter \d+, exit \d+\)", out, re.MULTILINE), out
    assert "adverts/s through the core" in out
    match = re.search(r"every expected event produced: \w+: (\d+) / (\d+) opted-in visits", out)
    assert match is not None, out
    assert int(match.group(2)) > 0  # the busy hours do have opted-in visits to check
