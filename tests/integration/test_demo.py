"""`nahfeld demo` end to end on its embedded broker: offers reach the phones, and the
funnel the cloud reports is what the phones saw."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from demo.run import Demo, DemoOptions

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = ROOT / "firmware-config" / "stores" / "demo-store" / "layout.toml"


@pytest.mark.timeout(240)  # a minute of store visit played in real time, plus set-up
def test_the_demo_delivers_offers_and_the_funnel_counts_them() -> None:
    output = io.StringIO()
    options = DemoOptions(layout=LAYOUT, duration_s=60, phones=3, anonymous_phones=4, live=False)
    summary = Demo(options, Console(file=output, width=120)).run()

    received = sum(len(titles) for titles in summary.offers.values())
    assert received >= 1, output.getvalue()
    assert summary.adverts > 300
    assert summary.presence["enter"] >= 1
    totals = {
        step: sum(int(str(row[step])) for row in summary.funnel.values())
        for step in ("sent", "delivered", "opened", "redeemed")
    }
    # every offer sent reached a phone, was confirmed and opened; half were redeemed
    assert totals == {
        "sent": received,
        "delivered": received,
        "opened": received,
        "redeemed": summary.redeemed,
    }
    assert "received:" in output.getvalue() and "Summary" in output.getvalue()


def test_demo_help_names_its_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    for option in ("--duration", "--forever", "--broker", "--no-live"):
        assert option in result.stdout
