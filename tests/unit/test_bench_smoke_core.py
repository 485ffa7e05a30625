"""bench/core.py --quick runs as a user runs it and prints every figure it promises.

Why: a benchmark nobody runs rots silently; this keeps it runnable (and its
cross-checks against beacontools passing) without paying for the full run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIGURE = r"\s+\d+\.\d{3}\s"


def test_quick_benchmark_prints_the_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "core.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for row in (
        "nahfeld core, warm",
        "nahfeld core, cold",
        "nahfeld decode only, warm",
        "nahfeld decode only, every payload a miss",
        "beacontools parse_packet",
    ):
        assert re.search(re.escape(row) + r".*?" + FIGURE, out), f"no figure for {row!r}:\n{out}"
    assert re.search(r"ratio core \(warm\) / beacontools decode:\s+\d+\.\d+", out), out
    assert re.search(r"ratio core \(cold\) / beacontools decode:\s+\d+\.\d+", out), out
    # TheengsDecoder is optional: either its figure and ratio, or the note saying why not
    assert ("TheengsDecoder decodeBLE" in out and "ratio core (warm) / TheengsDecoder" in out) or (
        "TheengsDecoder not measured" in out
    ), out
    assert re.search(r"^\s+beacontools\s+.*IBeaconAdvertisement \d+", out, re.MULTILINE), out
    assert re.search(r"^presence events from the whole stream: \d+", out, re.MULTILINE), out
    assert "python 3." in out and "nproc" in out, out
