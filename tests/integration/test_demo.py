"""`nahfeld demo` end to end on its embedded broker: offers reach the phones, and the
funnel the cloud reports is what the phones saw."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from demo.run import Demo, DemoOptions, DemoSummary
from tests.integration.conftest import BluezMock, Scenario, wait_for, wait_for_async
from tests.integration.test_gateway_daemon import PHONE
from tests.integration.test_scanner_dbus import discovery_starts, eddystone_eid

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

            async def started() -> bool:
                return await discovery_starts(control) >= 1

            await wait_for_async(started, "the demo's scanner", 20)
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
