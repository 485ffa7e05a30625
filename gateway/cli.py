"""The ``nahfeld`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_NOTHING = 1  # ran fine, found nothing usable (decode without a frame)
EXIT_USAGE = 2  # bad arguments or unreadable input
EXIT_INVALID = 1  # ran fine, the files checked have problems (firmware validate)
DEFAULT_FIRMWARE_DIR = Path("firmware-config")


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"nahfeld: error: {message}", file=sys.stderr)
    return code


def cmd_decode(args: argparse.Namespace) -> int:
    from .ble.decode import decode_ad, decode_fields
    from .ble.frames import frame_to_dict

    if args.fields:
        try:
            fields = json.loads(args.fields)
            manufacturer = {
                int(k, 0): bytes.fromhex(v) for k, v in fields.get("manufacturer_data", {}).items()
            }
            service = {
                str(k).lower(): bytes.fromhex(v) for k, v in fields.get("service_data", {}).items()
            }
        except (ValueError, AttributeError, TypeError) as exc:
            return _fail(
                f"--fields must be JSON like "
                '{"manufacturer_data": {"76": "0215..."}, '
                f'"service_data": {{"0000feaa-...": "30..."}}}}: {exc}'
            )
        decoded = decode_fields(manufacturer, service)
    else:
        if args.hex is None:
            return _fail("give advertising data as HEX, or bleak fields with --fields")
        text = args.hex.replace(" ", "").replace(":", "")
        text = text[2:] if text.lower().startswith("0x") else text
        try:
            data = bytes.fromhex(text)
        except ValueError:
            return _fail(f"not hex: {args.hex[:60]!r} (expected e.g. 0201061aff4c000215...)")
        decoded = decode_ad(data)
    output: dict[str, object] = {"frames": [frame_to_dict(f) for f in decoded.frames]}
    if decoded.problem is not None:
        output["malformed"] = {"reason": decoded.problem.reason, "detail": decoded.problem.detail}
    print(json.dumps(output, indent=None if args.compact else 2))
    if decoded.frames:
        return EXIT_OK
    if decoded.problem is not None:
        print(f"nahfeld: malformed advertising data: {decoded.problem.detail}", file=sys.stderr)
    else:
        print("nahfeld: no beacon frame in this advertising data", file=sys.stderr)
    return EXIT_NOTHING


def cmd_eid(args: argparse.Namespace) -> int:
    from .ble.eid import beacon_counter, compute_eid

    try:
        key = bytes.fromhex(args.identity_key)
    except ValueError:
        return _fail("--identity-key must be 32 hex digits (a 128-bit key)")
    try:
        print(compute_eid(key, args.exponent, beacon_counter(args.time)).hex())
    except ValueError as exc:
        return _fail(str(exc))
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from .layout import LayoutError, load_layout
    from .replay import RecordError, load_identities, replay

    try:
        layout = load_layout(args.layout)
        identities = load_identities(args.identities) if args.identities else []
    except (LayoutError, RecordError) as exc:
        return _fail(str(exc))
    try:
        source = sys.stdin if str(args.input) == "-" else args.input.open(encoding="utf-8")
    except OSError as exc:
        return _fail(f"{args.input}: cannot read capture: {exc.strerror or exc}")
    with source:
        summary, core = replay(
            layout, source, sys.stdout, sys.stderr, identities, flush=not args.no_flush
        )
    if not args.quiet:
        stats = core.stats.as_dict()
        print(
            f"replayed {summary.records} records ({summary.bad_lines} bad lines skipped): "
            f"{summary.events} events {stats['events']}; "
            f"dropped: {stats['not_beacon']} not beacons, {stats['unrecognised']} unrecognised, "
            f"malformed {stats['malformed']}; "
            f"store beacons heard {stats['beacon_sightings']} times",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from .layout import LayoutError, load_layout
    from .sim.store import StoreSimulation, demo_identities

    try:
        layout = load_layout(args.layout)
    except LayoutError as exc:
        return _fail(str(exc))
    identities = demo_identities(args.app_phones, seed=args.seed)
    sim = StoreSimulation(
        layout,
        identities,
        start=args.start,
        duration_s=args.duration,
        anonymous_phones=args.anonymous_phones,
        stranger_eid_phones=args.stranger_phones,
        seed=args.seed,
    )
    with args.output.open("w", encoding="utf-8") as out:
        for record in sim.records():
            out.write(json.dumps(record.to_dict(), separators=(",", ":")) + "\n")
    if args.identities_output:
        doc = {
            "identities": [
                {"token": i.token, "identity_key": i.identity_key.hex(), "exponent": i.exponent}
                for i in identities
            ]
        }
        args.identities_output.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return EXIT_OK


def cmd_gateway_check_config(args: argparse.Namespace) -> int:
    import os

    from pydantic import ValidationError

    from .layout import LayoutError, format_validation_error, load_layout
    from .settings import CONFIG_ENV, DEFAULT_CONFIG, GatewaySettings

    if args.config is not None:
        os.environ[CONFIG_ENV] = str(args.config)
    source = os.environ.get(CONFIG_ENV, str(DEFAULT_CONFIG))
    if not Path(source).is_file():
        print(
            f"nahfeld: note: {source} does not exist; using the environment only", file=sys.stderr
        )
    try:
        settings = GatewaySettings()  # type: ignore[call-arg]  # fields come from the sources
    except ValidationError as exc:
        return _fail(format_validation_error(f"gateway settings ({source} and environment)", exc))
    try:
        layout = load_layout(settings.layout)
    except LayoutError as exc:
        return _fail(str(exc))
    problems = []
    if layout.store != settings.store:
        problems.append(f"store {settings.store!r} does not match the layout's {layout.store!r}")
    watched = {zone.gateway for zone in layout.zones}
    if settings.gateway not in watched:
        problems.append(
            f"gateway {settings.gateway!r} watches no zone of the layout "
            f"(zones are watched by: {', '.join(sorted(watched))})"
        )
    if problems:
        return _fail("\n".join(problems))
    zones = [zone.id for zone in layout.zones if zone.gateway == settings.gateway]
    print(
        f"config OK: store {settings.store}, gateway {settings.gateway} watching "
        f"{', '.join(zones)}; broker {settings.mqtt.host}:{settings.mqtt.port}"
        f"{' (TLS)' if settings.mqtt.tls else ''}; data in {settings.data_dir}"
    )
    return EXIT_OK


def cmd_gateway_run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import os

    from pydantic import ValidationError

    from .daemon import run_gateway, systemd_notifier
    from .layout import LayoutError, format_validation_error
    from .settings import CONFIG_ENV, GatewaySettings

    if args.config is not None:
        os.environ[CONFIG_ENV] = str(args.config)
    try:
        settings = GatewaySettings()  # type: ignore[call-arg]  # fields come from the sources
    except ValidationError as exc:
        return _fail(format_validation_error("gateway settings", exc))
    # journald stamps time and unit itself; a terminal wants the time
    stamp = "" if "JOURNAL_STREAM" in os.environ else "%(asctime)s "
    logging.basicConfig(
        level=settings.log_level.upper(), format=f"{stamp}%(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(run_gateway(settings, _version(), systemd_notifier()))
    except LayoutError as exc:
        return _fail(str(exc))
    return EXIT_OK


def cmd_gateway_scan(args: argparse.Namespace) -> int:
    import asyncio

    from bleak.exc import BleakError

    from .ble.frames import frame_to_dict
    from .scanner import Advert, scan_once

    def show(advert: Advert) -> None:
        frames = [frame_to_dict(frame) for frame in advert.decoded.frames]
        if args.beacons_only and not frames:
            return
        if args.json:
            doc: dict[str, object] = {
                "ts": round(advert.unix, 3),
                "address": advert.address,
                "rssi": advert.rssi,
                "frames": frames,
            }
            if advert.decoded.problem is not None:
                doc["malformed"] = advert.decoded.problem.reason
            print(json.dumps(doc), flush=True)
        else:
            kinds = ", ".join(str(f["type"]) for f in frames) or "-"
            print(f"{advert.address}  {advert.rssi:>4} dBm  {kinds}", flush=True)

    try:
        stats = asyncio.run(
            scan_once(args.duration, show, adapter=args.adapter, passive=args.passive)
        )
    except (BleakError, OSError) as exc:
        return _fail(
            f"cannot scan on {args.adapter}: {exc} "
            "(is bluetoothd running and the adapter present and powered? try: bluetoothctl list)"
        )
    print(f"{stats.adverts} adverts in {args.duration:g} s on {args.adapter}", file=sys.stderr)
    return EXIT_OK if stats.adverts else EXIT_NOTHING


def cmd_firmware_validate(args: argparse.Namespace) -> int:
    from .firmware.bundle import load_bundle

    bundle = load_bundle(args.dir)
    for problem in bundle.problems:
        print(problem)
    print(bundle.summary())
    return EXIT_OK if bundle.ok else EXIT_INVALID


def cmd_firmware_render(args: argparse.Namespace) -> int:
    from .firmware.bundle import GatewayLookupError, find_gateway, load_bundle
    from .firmware.render import render_gateway_toml

    bundle = load_bundle(args.dir)
    if not bundle.ok:  # never hand a gateway a config rendered from broken files
        for problem in bundle.problems:
            print(problem, file=sys.stderr)
        print(
            f"nahfeld: {bundle.summary()}; fix these first (nahfeld firmware validate {args.dir})",
            file=sys.stderr,
        )
        return EXIT_INVALID
    try:
        store, gateway = find_gateway(bundle, args.gateway, args.store)
    except GatewayLookupError as exc:
        return _fail(str(exc))
    if not _write_output(args.out, render_gateway_toml(bundle, store, gateway)):
        return EXIT_USAGE
    if str(args.out) != "-":
        print(f"wrote {args.out} (gateway {gateway.id} of store {store.store})", file=sys.stderr)
    return EXIT_OK


def cmd_firmware_acl(args: argparse.Namespace) -> int:
    from .firmware.bundle import BROKER_ACL, bundle_acl, load_bundle

    bundle = load_bundle(args.dir)
    # the ACL file itself may be what is out of date: judge everything else
    problems = [p for p in bundle.problems if p.file != bundle.label(BROKER_ACL)]
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return _fail(f"fix these first (nahfeld firmware validate {args.dir})", EXIT_INVALID)
    if not _write_output(args.out, bundle_acl(bundle)):
        return EXIT_USAGE
    if str(args.out) != "-":
        print(f"wrote {args.out}; reload mosquitto (SIGHUP) to apply it", file=sys.stderr)
    return EXIT_OK


def cmd_firmware_schemas(args: argparse.Namespace) -> int:
    from .firmware.schemas import write_schemas

    try:
        written = write_schemas(args.out)
    except OSError as exc:
        return _fail(f"{args.out}: cannot write schemas: {exc.strerror or exc}")
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nahfeld")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _add_firmware_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_FIRMWARE_DIR,
        metavar="DIR",
        help="the firmware-config directory (default: ./firmware-config)",
    )


def _add_output_file(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("-"),
        metavar="FILE",
        help=f"where to write {what}; - for stdout (default)",
    )


def _write_output(out: Path, text: str) -> bool:
    """Write ``text`` to ``out`` (stdout for ``-``); False, with the error said, if it failed."""
    if str(out) == "-":
        sys.stdout.write(text)
        return True
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"{out}: cannot write: {exc.strerror or exc}")
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nahfeld",
        description="Nahfeld: beacon proximity marketing for physical stores.",
    )
    parser.add_argument("--version", action="version", version=f"nahfeld {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    decode = sub.add_parser(
        "decode",
        help="decode advertising data into beacon frames (JSON)",
        description="Decode BLE advertising data (AD structures in hex, as in the advertising "
        "PDU payload) into iBeacon, AltBeacon and Eddystone frames. Exit 1 when no frame is found.",
    )
    decode.add_argument("hex", nargs="?", metavar="HEX", help="e.g. 0201061aff4c000215...")
    decode.add_argument(
        "--fields",
        metavar="JSON",
        help="decode bleak AdvertisementData fields instead: "
        '{"manufacturer_data": {"0x004c": "0215..."}, "service_data": {UUID: HEX}}',
    )
    decode.add_argument("--compact", action="store_true", help="one-line JSON")
    decode.set_defaults(func=cmd_decode)

    eid = sub.add_parser(
        "eid",
        help="compute an Eddystone-EID",
        description="Compute the 8-byte Eddystone-EID an identity key advertises at a time "
        "(the beacon time counter is Unix seconds).",
    )
    eid.add_argument(
        "--identity-key", required=True, metavar="HEX", help="128-bit identity key, 32 hex digits"
    )
    eid.add_argument(
        "--exponent",
        "-k",
        type=int,
        required=True,
        metavar="K",
        help="rotation exponent 0-15 (new EID every 2^K s)",
    )
    eid.add_argument(
        "--time",
        type=int,
        required=True,
        metavar="SECONDS",
        help="beacon time counter (Unix seconds)",
    )
    eid.set_defaults(func=cmd_eid)

    rep = sub.add_parser(
        "replay",
        help="replay an advert capture through the core, print presence events (JSONL)",
        description="Read advert records (JSONL: ts, gateway, rssi, and ad or device) and write "
        "enter/dwell/exit events as JSONL to stdout. Bad lines are reported on stderr and skipped.",
        epilog="example: nahfeld replay --layout firmware-config/stores/demo-store/layout.toml "
        "--input firmware-config/stores/demo-store/capture.jsonl "
        "--identities firmware-config/stores/demo-store/identities.json",
    )
    rep.add_argument("--layout", type=Path, required=True, metavar="FILE", help="store layout TOML")
    rep.add_argument(
        "--input", type=Path, required=True, metavar="FILE", help="records JSONL, or - for stdin"
    )
    rep.add_argument(
        "--identities",
        type=Path,
        metavar="FILE",
        help="JSON of known opted-in identities {token, identity_key, exponent} to resolve EIDs "
        "offline (otherwise EID phones stay unresolved and are dropped)",
    )
    rep.add_argument(
        "--no-flush", action="store_true", help="do not close open presences at end of input"
    )
    rep.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr")
    rep.set_defaults(func=cmd_replay)

    sim = sub.add_parser(
        "simulate",
        help="write a simulated store capture (JSONL) for replay and demos",
        description="Simulate phones walking through the layout's zones and write what the "
        "gateways hear as a replayable capture.",
    )
    sim.add_argument("--layout", type=Path, required=True)
    sim.add_argument("--output", type=Path, required=True)
    sim.add_argument(
        "--identities-output", type=Path, help="also write the opted-in identities used"
    )
    sim.add_argument("--app-phones", type=int, default=5)
    sim.add_argument("--anonymous-phones", type=int, default=10)
    sim.add_argument(
        "--stranger-phones", type=int, default=2, help="EID phones the store does not know"
    )
    sim.add_argument("--duration", type=float, default=900.0, help="seconds")
    sim.add_argument(
        "--start", type=float, default=1_767_261_600.0, help="Unix time of the first second"
    )
    sim.add_argument("--seed", type=int, default=7)
    sim.set_defaults(func=cmd_simulate)

    gateway = sub.add_parser(
        "gateway",
        help="the store gateway daemon's commands",
        description="Commands for the store gateway.",
    )
    gateway_sub = gateway.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")
    check = gateway_sub.add_parser(
        "check-config",
        help="validate the gateway's settings and its store layout",
        description="Load the settings as the daemon would (environment NAHFELD_GATEWAY_..., "
        ".env, then the TOML file) and the store layout they name; list every wrong field "
        "and why. Exit 0 when everything is usable.",
    )
    check.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="gateway TOML (default: $NAHFELD_GATEWAY_CONFIG or /etc/nahfeld/gateway.toml)",
    )
    check.set_defaults(func=cmd_gateway_check_config)
    run = gateway_sub.add_parser(
        "run",
        help="run the gateway daemon (what the systemd unit starts)",
        description="Scan, track presence, decide offers and sync with the cloud over MQTT, "
        "until SIGTERM. Settings as for check-config.",
    )
    run.add_argument("--config", type=Path, metavar="FILE", help="gateway TOML")
    run.set_defaults(func=cmd_gateway_run)
    scan = gateway_sub.add_parser(
        "scan",
        help="print the adverts the radio hears (the installer's first check)",
        description="Scan with bleak on BlueZ and print each advert: address, RSSI and "
        "decoded beacon frames. Nothing is sent anywhere.",
    )
    scan.add_argument("--duration", type=float, default=10.0, metavar="S", help="seconds (10)")
    scan.add_argument("--adapter", default="hci0", help="BlueZ adapter (hci0)")
    scan.add_argument("--passive", action="store_true", help="passive scanning (BlueZ >= 5.56)")
    scan.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    scan.add_argument("--beacons-only", action="store_true", help="skip adverts without a frame")
    scan.set_defaults(func=cmd_gateway_scan)

    firmware = sub.add_parser(
        "firmware",
        help="validate and render the firmware-config directory",
        description="Commands for firmware-config/: the store layouts, beacon firmware "
        "profiles, deployment settings, systemd unit and BlueZ settings of a fleet.",
    )
    firmware_sub = firmware.add_subparsers(
        dest="firmware_command", required=True, metavar="COMMAND"
    )
    validate = firmware_sub.add_parser(
        "validate",
        help="check every file of a firmware-config directory, and the files against each other",
        description="Load deployment.toml, beacons/*.toml, stores/*/layout.toml, "
        "systemd/nahfeld-gateway.service and bluez/main.conf; print every problem as "
        "FILE: FIELD: REASON, then a summary. Exit 1 when there is any problem.",
        epilog="example: nahfeld firmware validate firmware-config",
    )
    validate.add_argument(
        "dir",
        nargs="?",
        type=Path,
        default=DEFAULT_FIRMWARE_DIR,
        metavar="DIR",
        help="the firmware-config directory (default: ./firmware-config)",
    )
    validate.set_defaults(func=cmd_firmware_validate)
    render = firmware_sub.add_parser(
        "render",
        help="write one gateway's gateway.toml",
        description="Render the gateway.toml that `nahfeld gateway run` reads, from "
        "deployment.toml and the gateway's entry in its store layout. Refuses (exit 1) when "
        "the directory does not validate; exit 2 for an unknown or ambiguous gateway.",
        epilog="example: nahfeld firmware render --gateway gw-entrance --out gateway.toml "
        "(then install it as /etc/nahfeld/gateway.toml on that gateway)",
    )
    render.add_argument("--gateway", required=True, metavar="ID", help="the gateway's id")
    render.add_argument(
        "--store", metavar="ID", help="the store, when several stores have a gateway of that id"
    )
    _add_firmware_dir(render)
    _add_output_file(render, "gateway.toml")
    render.set_defaults(func=cmd_firmware_render)
    acl = firmware_sub.add_parser(
        "acl",
        help="write the broker's ACL for every declared gateway",
        description="Render Mosquitto's acl_file: each gateway of each store layout may publish "
        "and read exactly its own topics, the cloud everything under nahfeld/v1, an app only "
        "its own offers. Exit 1 when the directory has other problems.",
        epilog="example: nahfeld firmware acl --out firmware-config/mosquitto/nahfeld.acl "
        "(install as /etc/mosquitto/nahfeld.acl, then reload mosquitto)",
    )
    _add_firmware_dir(acl)
    _add_output_file(acl, "the ACL")
    acl.set_defaults(func=cmd_firmware_acl)
    schemas = firmware_sub.add_parser(
        "schemas",
        help="regenerate the JSON Schemas of the firmware-config files",
        description="Write JSON Schemas of the store layout, beacon profile, deployment and "
        "gateway settings files, generated from the validating models, for editors "
        "(a `#:schema` comment at the top of a TOML file).",
        epilog="example: nahfeld firmware schemas --out firmware-config/schemas",
    )
    schemas.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_FIRMWARE_DIR / "schemas",
        metavar="DIR",
        help="output directory (default: ./firmware-config/schemas)",
    )
    schemas.set_defaults(func=cmd_firmware_schemas)
    from cloud.cli import add_cloud_commands
    from demo.cli import add_demo_commands

    add_cloud_commands(sub)
    add_demo_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:  # e.g. `nahfeld replay ... | head`: the reader is done
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
