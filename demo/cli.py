"""``nahfeld demo`` and ``nahfeld app-sim``. Imports are deferred to the command's run, so
the gateway's own commands never load the demo's dependencies."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED = 0, 1


def opening_hours(text: str) -> tuple[int, int]:
    """``8-20`` → (8, 20): whole hours, opening before closing, within the day."""
    opening, sep, closing = text.partition("-")
    try:
        hours = int(opening), int(closing)
    except ValueError:
        hours = (-1, -1)
    if not sep or not 0 <= hours[0] < hours[1] <= 24:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give whole hours OPEN-CLOSE, e.g. 8-20 (0 <= OPEN < CLOSE <= 24)"
        )
    return hours


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number, 0 or more")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number above 0")
    return value


def cmd_demo(args: argparse.Namespace) -> int:
    import logging

    from .run import Demo, DemoOptions

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.layout.exists():
        print(
            f"nahfeld demo: no store layout at {args.layout} (run from the repository, "
            "or give --layout)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    options = DemoOptions(
        layout=args.layout,
        opening_hour=args.hours[0],
        closing_hour=args.hours[1],
        speed=args.speed,
        duration_s=args.duration,
        phones=args.phones,
        anonymous_phones=args.anonymous,
        stranger_phones=args.other_app,
        forever=args.forever,
        live=not args.no_live,
        broker=args.broker,
        ble=args.ble,
    )
    summary = Demo(options).run()
    received = sum(len(titles) for titles in summary.offers.values())
    return EXIT_OK if received > 0 else EXIT_FAILED


def cmd_app_sim(args: argparse.Namespace) -> int:
    import httpx

    from .app_client import AppApiError, AppClient

    host, _, port = args.broker.rpartition(":")
    app = AppClient(args.api, args.tenant, args.install)
    try:
        identity = app.opt_in()
        print(
            f"opted in as {identity.install_id}: EID rotates every "
            f"2^{identity.rotation_exponent} s, offers on {identity.offers_topic}"
        )

        def show(offer: object) -> None:
            print(f"offer: {offer}", flush=True)

        app.listen(host or "127.0.0.1", int(port), protocol=args.protocol, on_offer=show)
        deadline = time.monotonic() + args.duration
        while time.monotonic() < deadline:
            print(f"advertising EID {app.eid(time.time()).hex()}", flush=True)
            time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
    except (AppApiError, httpx.HTTPError, ConnectionError, OSError) as exc:
        print(f"nahfeld app-sim: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        app.close()
    return EXIT_OK


def add_demo_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="the whole loop on simulated radio: broker, cloud, gateways, phones",
        description="Run an embedded MQTT broker (or use --broker), the cloud on SQLite with a "
        "seeded retailer, the store's gateways fed a scripted store day (opted-in phones, "
        "phones of another app, anonymous phones, store beacons with telemetry) played "
        "faster than real time, and reference app clients that print each offer as it "
        "arrives. Ends with a summary (exit 1 if no phone received an offer).",
    )
    demo.add_argument(
        "--hours",
        type=opening_hours,
        default=(8, 20),
        metavar="OPEN-CLOSE",
        help="the store's opening hours, the day played (default 8-20)",
    )
    demo.add_argument(
        "--speed",
        type=positive_float,
        default=300.0,
        metavar="X",
        help="store seconds per real second (default 300: a 12-hour day in 2.4 minutes)",
    )
    demo.add_argument(
        "--phones",
        type=count,
        default=6,
        metavar="N",
        help="opted-in app users, each visiting once a day (default 6)",
    )
    demo.add_argument(
        "--anonymous",
        type=count,
        default=240,
        metavar="N",
        help="visitors a day without the app (default 240)",
    )
    demo.add_argument(
        "--other-app",
        type=count,
        default=4,
        metavar="N",
        help="visitors a day whose phone advertises another app's EIDs (default 4)",
    )
    demo.add_argument("--forever", action="store_true", help="play day after day until Ctrl-C")
    demo.add_argument("--no-live", action="store_true", help="no live view, only the log lines")
    demo.add_argument(
        "--broker",
        metavar="HOST:PORT",
        help="use this MQTT 5 broker (Mosquitto) instead of the embedded one",
    )
    demo.add_argument(
        "--ble",
        action="store_true",
        help="the store's first gateway listens to this machine's Bluetooth adapter (BlueZ) "
        "instead of the simulation; each opted-in phone's EID identity is printed, to set up "
        "a real beacon or phone as that phone; real time",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=150.0,
        metavar="S",
        help="with --ble: seconds to listen to the radio (default 150)",
    )
    demo.add_argument(
        "--layout",
        type=Path,
        default=Path("firmware-config/stores/demo-store/layout.toml"),
        help="the store layout (default: the demo store in firmware-config)",
    )
    demo.set_defaults(func=cmd_demo)

    sim = sub.add_parser(
        "app-sim",
        help="the reference app client: opt in, advertise EIDs, receive offers",
        description="Do what the phone app does, except the radio: opt in through the app API, "
        "print the EID the phone would advertise, subscribe to the offers topic and print "
        "each offer (confirming its delivery).",
    )
    sim.add_argument(
        "--api", required=True, help="the cloud's base URL, e.g. http://127.0.0.1:8000"
    )
    sim.add_argument("--tenant", required=True, help="the retailer's tenant id")
    sim.add_argument("--install", required=True, help="this app install's id")
    sim.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT")
    sim.add_argument("--protocol", choices=("5", "3.1.1"), default="5", help="MQTT version")
    sim.add_argument(
        "--duration", type=float, default=600.0, metavar="S", help="how long to listen"
    )
    sim.set_defaults(func=cmd_app_sim)
