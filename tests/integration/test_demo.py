"""`nahfeld demo` end to end on its embedded broker: offers reach the phones, and the
funnel the cloud reports is what the phones saw."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from demo.run import Demo, DemoOptions
from demo.view import DemoSummary
from tests.integration.conftest import BluezMock, Scenario, wait_for
from tests.integration.test_gateway_daemon import PHONE
from tests.integration.test_scanner_dbus import discovery_started, eddystone_eid

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = ROOT / "firmware-config" / "stores" / "demo-store" / "layout.toml"


@pytest.mark.timeout(240)
def test_the_demo_plays_a_store_day_delivers_offers_and_shows_them_live() -> None:
    """Two busy hours of the store's day at 600x through the real parts: every opted-in
    visit in the script is seen, the funnel the cloud reports is what the phones saw,
    and the live view shows store time, presence per zone, that funnel and the store
    beacons' telemetry."""
    output = io.StringIO()
    options = DemoOptions(
        layout=LAYOUT,
        opening_hour=11,
        closing_hour=13,
        speed=600,
        phones=3,
        anonymous_phones=20,
        stranger_phones=2,
    )
    console = Console(file=output, width=120, force_terminal=True, color_system=None)
    summary = Demo(options, console).run()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.getvalue())

    received = sum(len(titles) for titles in summary.offers.values())
    assert received >= 1, text
    assert summary.days == 1
    assert summary.visitors == 3 + 20 + 2
    assert summary.expected_visits, "the script had no opted-in phone stop in a zone"
    assert summary.missed_visits == [], text
    assert summary.presence["enter"] >= len(summary.expected_visits)
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
    assert "received:" in text and "Summary" in text

    # the live view's last frame
    frame = text[text.rindex("presence per zone") :]
    assert "store time" in text and "600x real time" in text
    for zone in ("entrance", "shoes", "checkout"):
        assert re.search(rf"│ {zone} +│ +0 │", frame), frame  # all gone at closing time
    for campaign, row in summary.funnel.items():
        cells = [row[k] for k in ("triggered", "sent", "delivered", "opened", "redeemed")]
        line = next(line for line in frame.splitlines() if f"│ {campaign} " in line)
        numbers = [int(n) for n in re.findall(r"│ +(\d+) ", line)]
        assert [numbers[0], *numbers[2:]] == cells, line
    assert "door-left ok 3,000 mV" in frame and "shoes-wall ok 2,750 mV" in frame


def nahfeld_demo(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "demo", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_demo_help_names_its_options() -> None:
    result = nahfeld_demo("--help")
    assert result.returncode == 0, result.stderr
    for option in ("--hours", "--speed", "--forever", "--broker", "--no-live", "--ble"):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("argument", "said"),
    [
        (["--hours", "20-8"], "give whole hours OPEN-CLOSE"),
        (["--speed", "0"], "give a number above 0"),
        (["--phones", "-2"], "give a whole number, 0 or more"),
    ],
)
def test_bad_demo_options_are_named_before_anything_starts(argument: list[str], said: str) -> None:
    result = nahfeld_demo(*argument)
    assert result.returncode == 2
    assert argument[0] in result.stderr and said in result.stderr


@pytest.mark.timeout(180)
def test_the_demo_on_the_radio_path_with_ble(
    bluez: BluezMock, run_bleak: Callable[[Scenario], None]
) -> None:
    """``--ble``: the store's first gateway scans with bleak on (dbusmock's) BlueZ; a
    device advertising the demo phone's EID gets its offer."""
    output = io.StringIO()
    options = DemoOptions(
        layout=LAYOUT, duration_s=25, phones=1, anonymous_phones=0, live=False, ble=True
    )
    demo = Demo(options, Console(file=output, width=120))
    summaries: list[DemoSummary] = []

    async def scenario() -> None:
        running = asyncio.create_task(asyncio.to_thread(lambda: summaries.append(demo.run())))
        await wait_for(
            lambda: bool(demo.apps) and "listening on" in output.getvalue(), "the demo", 60
        )
        app = demo.apps[0]
        async with bluez.control() as control:
            await discovery_started(control, "the demo's scanner")
            phone = await control.add_device(
                PHONE, rssi=-55, service_data=eddystone_eid(app.eid(time.time()))
            )
            for _ in range(300):
                if app.offers():
                    break
                await control.advertise(
                    phone, rssi=-55, service_data=eddystone_eid(app.eid(time.time()))
                )
                await asyncio.sleep(0.05)
        await running

    run_bleak(scenario)
    [summary] = summaries
    assert summary.offers["phone-1"] == ["Welcome! 10 % off today"], output.getvalue()
    assert summary.adverts > 0
    assert "Eddystone-EID identity key" in output.getvalue()
