"""bench/calibrate_presence.py --quick runs as a user runs it and prints every section.

Why: the shipped path-loss and timing defaults cite this script; a benchmark
nobody runs rots silently, so the smoke test keeps it runnable without paying
for the full run. It needs the Herald recordings beside the repository and
skips without them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "calibrate_presence.py"
DATA = ROOT.parent / "shared" / "data" / "rssi-distance-herald"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_quick_calibration_prints_every_section() -> None:
    if not DATA.is_dir():
        pytest.skip(f"Herald data not found at {DATA}")
    result = run("--quick")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in (
        "## 1. Path-loss fit",
        "## 2. Median |distance error| per true-distance bucket",
        "## 3. Within 1 m / within 2 m",
        "## 4. Toggles while the phone stands still",
        "## 5. TrackerParams sweep",
        "### best in sweep vs current defaults",
        "## Defaults these measurements support",
    ):
        assert heading in out, f"missing {heading!r}:\n{out}"
    for row in ("naive: raw sample distance <= radius", "nahfeld tracker zone state"):
        assert row in out, out
    assert "command: python bench/calibrate_presence.py --quick" in out


def test_missing_data_is_a_clean_skip(tmp_path: Path) -> None:
    result = run("--quick", "--data", str(tmp_path / "absent"))
    assert result.returncode == 0, result.stderr
    assert "skipped: data not found" in result.stdout
