"""firmware-config: the shipped files validate, broken ones are named, render round-trips."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.cli import main
from gateway.firmware.bundle import (
    Bundle,
    GatewayLookupError,
    bundle_acl,
    find_gateway,
    load_bundle,
)
from gateway.firmware.host import check_bluez_main_conf, check_systemd_unit, parse_timespan
from gateway.firmware.profiles import BeaconProfile
from gateway.firmware.render import render_gateway_toml
from gateway.firmware.schemas import SCHEMAS, schema_documents, stale_schemas, write_schemas
from gateway.settings import CONFIG_ENV, GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "firmware-config"
LAYOUT = Path("stores/demo-store/layout.toml")
DOOR = Path("beacons/door-ibeacon-tlm.toml")
SHELF = Path("beacons/shelf-ibeacon-tlm.toml")
CEILING = Path("beacons/ceiling-eddystone-uid-tlm.toml")
DEPLOYMENT = Path("deployment.toml")
UNIT = Path("systemd/nahfeld-gateway.service")
BLUEZ = Path("bluez/main.conf")


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped firmware-config to break (without the big capture)."""
    target = tmp_path / "fc"
    shutil.copytree(SHIPPED, target, ignore=shutil.ignore_patterns("*.jsonl"))
    return target


def edit(directory: Path, relative: Path, old: str, new: str) -> None:
    path = directory / relative
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {relative}: the test's edit is stale"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def found(bundle: Bundle) -> list[tuple[str, str]]:
    return [(p.file, p.field) for p in bundle.problems]


# ------------------------------------------------------------------------- the shipped files


def test_shipped_firmware_config_validates_clean() -> None:
    bundle = load_bundle(SHIPPED)
    assert [str(p) for p in bundle.problems] == []
    assert bundle.summary() == f"{SHIPPED}: 1 store, 3 gateways, 3 beacon profiles: OK"
    layout = bundle.stores["demo-store"]
    assert [g.id for g in layout.gateways] == ["gw-entrance", "gw-shoes", "gw-checkout"]
    assert {b.profile for b in layout.beacons} == {"door-ibeacon-tlm", "shelf-ibeacon-tlm"}
    assert bundle.deployment is not None
    assert bundle.deployment.broker.port == 8883


def test_shipped_toml_files_point_editors_at_existing_schemas() -> None:
    files = [SHIPPED / DEPLOYMENT, SHIPPED / LAYOUT, *sorted((SHIPPED / "beacons").glob("*.toml"))]
    for path in files:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("#:schema "), f"{path}: no #:schema comment on the first line"
        schema = (path.parent / first.removeprefix("#:schema ").strip()).resolve()
        assert schema.is_file(), f"{path}: {schema} does not exist"


# ------------------------------------------------------------------------- broken files

BREAKAGES: list[tuple[str, Path, str, str, str, str]] = [
    # (case, file, old, new, field, reason)
    (
        "bad TOML",
        DOOR,
        "interval_ms = 100",
        "interval_ms = ",
        "line 13, column 15",
        "not valid TOML",
    ),
    (
        "unknown field",
        DEPLOYMENT,
        "port = 8883",
        'port = 8883\ncolour = "red"',
        "broker.colour",
        "Extra inputs are not permitted",
    ),
    (
        "zone naming an undeclared gateway",
        LAYOUT,
        'gateway = "gw-shoes"',
        'gateway = "gw-shoez"',
        "zones",
        "zone 'shoes' names unknown gateway 'gw-shoez'",
    ),
    (
        "missing profile",
        LAYOUT,
        'profile = "shelf-ibeacon-tlm"',
        'profile = "shelf-v2"',
        "beacons.1.profile",
        "beacon 'shoes-wall' names unknown profile 'shelf-v2'",
    ),
    (
        "profile lacking the beacon's frame",
        SHELF,
        'type = "ibeacon"',
        'type = "altbeacon"',
        "beacons.1.profile",
        "profile 'shelf-ibeacon-tlm' broadcasts no ibeacon frame",
    ),
    (
        "eid_rotation_exponent on a non-EID frame",
        CEILING,
        "interval_ms = 200",
        "interval_ms = 200\neid_rotation_exponent = 10",
        "frames.0",
        "eid_rotation_exponent only applies to eddystone_eid frames, not eddystone_uid",
    ),
    (
        "advertising interval below the BLE minimum",
        DOOR,
        "interval_ms = 100",
        "interval_ms = 10",
        "frames.0.interval_ms",
        "greater than or equal to 20",
    ),
    (
        "bad main.conf key",
        BLUEZ,
        "ScanWindowDiscovery = 96",
        "ScanWindowDiscovry = 96",
        "LE.ScanWindowDiscovry",
        "unknown key",
    ),
    (
        "main.conf value with a trailing comment",
        BLUEZ,
        "ControllerMode = le",
        "ControllerMode = le  # LE only",
        "General.ControllerMode",
        "is not one of le, dual",
    ),
    (
        "main.conf scan window longer than the interval",
        BLUEZ,
        "ScanWindowAdvMonitor = 96",
        "ScanWindowAdvMonitor = 200",
        "LE.ScanWindowAdvMonitor",
        "longer than ScanIntervalAdvMonitor",
    ),
    (
        "systemd unit without WatchdogSec",
        UNIT,
        "WatchdogSec=30\n",
        "",
        "Service.WatchdogSec",
        "missing",
    ),
    (
        "systemd unit not of Type=notify",
        UNIT,
        "Type=notify",
        "Type=simple",
        "Service.Type",
        "must be notify",
    ),
    (
        "systemd unit running something else",
        UNIT,
        "nahfeld gateway run --config",
        "nahfeld gateway scan --config",
        "Service.ExecStart",
        "must run `nahfeld gateway run",
    ),
    (
        "gateway watching no zone",
        LAYOUT,
        "[[zones]]",
        '[[gateways]]\nid = "gw-spare"\n\n[[zones]]',
        "gateways.3.id",
        "gateway 'gw-spare' watches no zone",
    ),
    (
        "duplicate gateway id",
        LAYOUT,
        'id = "gw-shoes"',
        'id = "gw-entrance"',
        "gateways",
        "duplicate gateway id(s): gw-entrance",
    ),
]


@pytest.mark.parametrize(
    ("relative", "old", "new", "field", "reason"),
    [case[1:] for case in BREAKAGES],
    ids=[case[0] for case in BREAKAGES],
)
def test_each_broken_file_is_reported_with_file_field_and_reason(
    config_dir: Path, relative: Path, old: str, new: str, field: str, reason: str
) -> None:
    edit(config_dir, relative, old, new)
    bundle = load_bundle(config_dir)
    assert not bundle.ok
    # the file that is wrong, not a file downstream of it (the one problem, exactly)
    culprit = LAYOUT if field.startswith("beacons.") else relative
    assert found(bundle) == [(str(config_dir / culprit), field)], [str(p) for p in bundle.problems]
    (problem,) = bundle.problems
    assert reason in problem.reason
    assert str(problem) == f"{config_dir / culprit}: {field}: {problem.reason}"


def test_all_problems_in_a_directory_are_reported_at_once(config_dir: Path) -> None:
    edit(config_dir, DOOR, "interval_ms = 100", "interval_ms = ")
    edit(config_dir, DEPLOYMENT, "port = 8883", "port = 88830")
    edit(config_dir, LAYOUT, 'profile = "shelf-ibeacon-tlm"', 'profile = "nope"')
    edit(config_dir, UNIT, "WatchdogSec=30\n", "")
    edit(config_dir, BLUEZ, "AutoEnable = true", "AutoEnable = yes")
    (config_dir / "beacons" / "extra.toml").write_text('id = "extra"\n', encoding="utf-8")
    bundle = load_bundle(config_dir)
    assert set(found(bundle)) >= {
        (str(config_dir / DOOR), "line 13, column 15"),
        (str(config_dir / DEPLOYMENT), "broker.port"),
        (str(config_dir / LAYOUT), "beacons.1.profile"),
        (str(config_dir / UNIT), "Service.WatchdogSec"),
        (str(config_dir / BLUEZ), "Policy.AutoEnable"),
        (str(config_dir / "beacons" / "extra.toml"), "vendor"),
        (str(config_dir / "beacons" / "extra.toml"), "frames"),
    }
    # the door profile is broken, so the beacon naming it is not reported a second time
    assert (str(config_dir / LAYOUT), "beacons.0.profile") not in found(bundle)
    assert bundle.summary().endswith(f": {len(bundle.problems)} problems")


def test_missing_files_and_directory_are_problems(tmp_path: Path) -> None:
    bundle = load_bundle(tmp_path)
    assert set(found(bundle)) == {
        (str(tmp_path / DEPLOYMENT), "(file)"),
        (str(tmp_path / "stores"), "(directory)"),
        (str(tmp_path / UNIT), "(file)"),
        (str(tmp_path / BLUEZ), "(file)"),
        (str(tmp_path / "mosquitto" / "nahfeld.acl"), "(file)"),
    }
    assert found(load_bundle(tmp_path / "nope")) == [(str(tmp_path / "nope"), "(directory)")]


def test_store_ids_must_be_unique_across_stores(config_dir: Path) -> None:
    shutil.copytree(config_dir / "stores" / "demo-store", config_dir / "stores" / "other")
    bundle = load_bundle(config_dir)
    assert found(bundle) == [(str(config_dir / "stores/other/layout.toml"), "store")]
    assert "already used by" in bundle.problems[0].reason


def test_passive_gateway_needs_bluez_experimental(config_dir: Path) -> None:
    edit(config_dir, LAYOUT, 'id = "gw-shoes"', 'id = "gw-shoes"\npassive = true')
    assert load_bundle(config_dir).ok  # the shipped main.conf enables it
    edit(config_dir, BLUEZ, "Experimental = true", "Experimental = false")
    bundle = load_bundle(config_dir)
    assert found(bundle) == [(str(config_dir / BLUEZ), "General.Experimental")]
    assert "demo-store/gw-shoes scan passively" in bundle.problems[0].reason


def test_unit_environment_and_sandbox_must_agree_with_the_deployment(config_dir: Path) -> None:
    edit(config_dir, DEPLOYMENT, 'data_dir = "/var/lib/nahfeld"', 'data_dir = "/srv/nahfeld"')
    bundle = load_bundle(config_dir)
    assert set(found(bundle)) == {
        (str(config_dir / UNIT), "Service.Environment"),  # the unit's env would override it
        (str(config_dir / DEPLOYMENT), "gateway.data_dir"),  # and it is read-only there
    }
    reasons = " ".join(p.reason for p in bundle.problems)
    assert "NAHFELD_GATEWAY_DATA_DIR=/var/lib/nahfeld overrides" in reasons
    assert "read-only for the service" in reasons


# ------------------------------------------------------------------------- models and host files


def test_profile_frames_are_unique_and_intervals_within_ble_limits() -> None:
    frame = {"type": "ibeacon", "interval_ms": 20, "tx_power_dbm": 0}
    base = {"id": "p", "vendor": "v", "model": "m", "measured_power_1m_dbm": -59}
    assert BeaconProfile.model_validate({**base, "frames": [frame]}).frame_types() == {"ibeacon"}
    BeaconProfile.model_validate({**base, "frames": [{**frame, "interval_ms": 10240}]})
    with pytest.raises(ValidationError, match="repeated: ibeacon"):
        BeaconProfile.model_validate({**base, "frames": [frame, frame]})
    for bad in ({"interval_ms": 10241}, {"tx_power_dbm": 21}, {"tx_power_dbm": -41}):
        with pytest.raises(ValidationError):
            BeaconProfile.model_validate({**base, "frames": [{**frame, **bad}]})
    eid = {"type": "eddystone_eid", "interval_ms": 100, "tx_power_dbm": 0}
    BeaconProfile.model_validate({**base, "frames": [{**eid, "eid_rotation_exponent": 10}]})
    with pytest.raises(ValidationError, match="less than or equal to 15"):
        BeaconProfile.model_validate({**base, "frames": [{**eid, "eid_rotation_exponent": 16}]})
    with pytest.raises(ValidationError, match="at least 1 item"):
        BeaconProfile.model_validate({**base, "frames": []})


def test_shipped_systemd_unit_checks_clean_and_timespans_parse() -> None:
    unit = check_systemd_unit((SHIPPED / UNIT).read_text(encoding="utf-8"))
    assert unit.problems == []
    assert unit.environment == {"NAHFELD_GATEWAY_DATA_DIR": "/var/lib/nahfeld"}
    assert unit.writable == ["/var/lib/nahfeld"]
    assert [parse_timespan(s) for s in ("30", "30s", "1min 30s", "2m", "500ms", "x", "")] == [
        30.0,
        30.0,
        90.0,
        120.0,
        0.5,
        None,
        None,
    ]
    short = check_systemd_unit(
        "[Service]\nType=notify\nWatchdogSec=5\nRestart=always\n"
        "ExecStart=/usr/local/bin/nahfeld gateway run --verbose\n"
    )
    assert [f for f, _ in short.problems] == ["Service.WatchdogSec", "Service.ExecStart"]


def test_bluez_conf_refuses_unknown_sections_and_duplicates() -> None:
    assert check_bluez_main_conf((SHIPPED / BLUEZ).read_text(encoding="utf-8")).experimental
    unknown = check_bluez_main_conf("[Generall]\nControllerMode = le\n")
    assert [f for f, _ in unknown.problems] == ["Generall"]
    repeated = check_bluez_main_conf("[General]\nExperimental = true\nExperimental = false\n")
    assert repeated.problems == [("General.Experimental", "repeated (line 3)")]
    hex_value = check_bluez_main_conf("[LE]\nScanIntervalDiscovery = 0x60\n")
    assert "not a decimal integer" in hex_value.problems[0][1]


# ------------------------------------------------------------------------- render


def _settings_from(path: Path, monkeypatch: pytest.MonkeyPatch) -> GatewaySettings:
    """Load settings exactly as the daemon would, from this file and nothing else."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("NAHFELD_GATEWAY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv(CONFIG_ENV, str(path))
    monkeypatch.chdir(path.parent)  # no stray .env
    return GatewaySettings()  # type: ignore[call-arg]  # fields come from the file


@pytest.mark.parametrize("gateway_id", ["gw-entrance", "gw-shoes", "gw-checkout"])
def test_rendered_gateway_toml_round_trips_through_settings(
    gateway_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = load_bundle(SHIPPED)
    store, gateway = find_gateway(bundle, gateway_id)
    path = tmp_path / "gateway.toml"
    path.write_text(render_gateway_toml(bundle, store, gateway), encoding="utf-8")
    settings = _settings_from(path, monkeypatch)
    assert bundle.deployment is not None
    broker, paths = bundle.deployment.broker, bundle.deployment.gateway
    assert (settings.store, settings.gateway) == ("demo-store", gateway_id)
    assert settings.layout == Path(paths.layout)
    assert settings.data_dir == Path(paths.data_dir)
    assert settings.metrics_port == paths.metrics_port
    assert (settings.mqtt.host, settings.mqtt.port) == (broker.host, broker.port)
    assert settings.mqtt.username == f"{gateway_id}@demo-store"
    assert settings.mqtt.ca_file == Path(broker.ca_file)
    assert settings.mqtt.cert_file == Path(broker.cert_file)
    assert settings.mqtt.key_file == Path(broker.key_file)
    assert settings.mqtt.tls
    assert settings.scanner.adapter == gateway.adapter
    assert settings.scanner.passive == gateway.passive
    assert settings.scanner.silence_timeout_s == gateway.silence_timeout_s
    if gateway_id == "gw-checkout":  # the one gateway with non-default scanner settings
        assert (settings.scanner.adapter, settings.scanner.silence_timeout_s) == ("hci1", 60.0)


def test_render_escapes_strings(
    config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = '/etc/nahfeld/"odd" \\ dir/layout.toml'
    edit(
        config_dir, DEPLOYMENT, 'layout = "/etc/nahfeld/layout.toml"', f"layout = '{odd}'"
    )  # literal
    # in TOML: a quote, a backslash and a newline in the description, which goes into a comment
    edit(config_dir, LAYOUT, "Pi 4 above the door frame", 'Pi 4 \\"door\\" \\\\ \\n x')
    bundle = load_bundle(config_dir)
    assert bundle.ok, [str(p) for p in bundle.problems]
    path = tmp_path / "gateway.toml"
    text = render_gateway_toml(bundle, *find_gateway(bundle, "gw-entrance"))
    assert '# gw-entrance: Pi 4 "door" \\ x, built-in radio\n' in text  # one comment line
    path.write_text(text, encoding="utf-8")
    assert _settings_from(path, monkeypatch).layout == Path(odd)


def test_ambiguous_gateway_needs_a_store(config_dir: Path) -> None:
    second = config_dir / "stores" / "second"
    shutil.copytree(config_dir / "stores" / "demo-store", second)
    edit(config_dir, Path("stores/second/layout.toml"), 'store = "demo-store"', 'store = "two"')
    acl = bundle_acl(load_bundle(config_dir))  # the broker must know the new store's gateways
    (config_dir / "mosquitto" / "nahfeld.acl").write_text(acl, encoding="utf-8")
    bundle = load_bundle(config_dir)
    assert bundle.ok, [str(p) for p in bundle.problems]
    with pytest.raises(GatewayLookupError, match=r"several stores .*give --store"):
        find_gateway(bundle, "gw-entrance")
    store, gateway = find_gateway(bundle, "gw-entrance", "two")
    assert (store.store, gateway.id) == ("two", "gw-entrance")
    assert 'username = "gw-entrance@two"' in render_gateway_toml(bundle, store, gateway)
    with pytest.raises(GatewayLookupError, match="no gateway 'gw-x'"):
        find_gateway(bundle, "gw-x")
    with pytest.raises(GatewayLookupError, match="no store 'three'"):
        find_gateway(bundle, "gw-entrance", "three")


# ------------------------------------------------------------------------- schemas


def test_committed_schemas_are_up_to_date() -> None:
    stale = stale_schemas(SHIPPED / "schemas")
    assert stale == [], f"out of date: {stale}; run `nahfeld firmware schemas`"


def test_schemas_name_themselves_and_follow_the_models(tmp_path: Path) -> None:
    documents = schema_documents()
    assert set(documents) == {f"{stem}.schema.json" for stem in SCHEMAS}
    layout = documents["store-layout.schema.json"]
    assert '"$id": "urn:nahfeld:firmware-config:store-layout"' in layout
    assert '"title": "Nahfeld store layout' in layout
    assert '"GatewaySpec"' in layout and layout.endswith("}\n")
    assert '"eid_rotation_exponent"' in documents["beacon-profile.schema.json"]
    write_schemas(tmp_path)
    assert stale_schemas(tmp_path) == []
    (tmp_path / "deployment.schema.json").write_text("{}\n")
    (tmp_path / "beacon-profile.schema.json").unlink()
    assert stale_schemas(tmp_path) == ["beacon-profile.schema.json", "deployment.schema.json"]


# ------------------------------------------------------------------------- CLI


def test_cli_validate_ok_and_broken(
    config_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["firmware", "validate", str(config_dir)]) == 0
    assert capsys.readouterr().out == f"{config_dir}: 1 store, 3 gateways, 3 beacon profiles: OK\n"
    monkeypatch.chdir(config_dir.parent)  # the default directory is ./firmware-config
    config_dir.rename(config_dir.parent / "firmware-config")
    assert main(["firmware", "validate"]) == 0
    assert capsys.readouterr().out.startswith("firmware-config: 1 store")
    edit(Path("firmware-config"), UNIT, "WatchdogSec=30\n", "")
    edit(Path("firmware-config"), LAYOUT, 'profile = "shelf-ibeacon-tlm"', 'profile = "gone"')
    assert main(["firmware", "validate"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        "firmware-config/stores/demo-store/layout.toml: beacons.1.profile: beacon 'shoes-wall' "
    )
    assert lines[1].startswith("firmware-config/systemd/nahfeld-gateway.service: Service.Watchdog")
    assert lines[2] == "firmware-config: 1 store, 3 gateways, 3 beacon profiles: 2 problems"


def test_cli_render(config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["firmware", "render", "--gateway", "gw-shoes", "--dir", str(config_dir)]) == 0
    out = capsys.readouterr().out
    assert tomllib.loads(out)["mqtt"]["username"] == "gw-shoes@demo-store"
    target = tmp_path / "gateway.toml"
    argv = ["firmware", "render", "--gateway", "gw-shoes", "--dir", str(config_dir)]
    assert main([*argv, "--store", "demo-store", "--out", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == out
    assert "wrote" in capsys.readouterr().err

    assert main(["firmware", "render", "--gateway", "gw-x", "--dir", str(config_dir)]) == 2
    assert "no gateway 'gw-x' (gateways: demo-store/gw-checkout" in capsys.readouterr().err

    edit(config_dir, UNIT, "Type=notify", "Type=simple")
    assert main(argv) == 1  # never render from a directory that does not validate
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Service.Type: must be notify" in captured.err


def test_cli_schemas_writes_current_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["firmware", "schemas", "--out", str(tmp_path / "schemas")]) == 0
    assert stale_schemas(tmp_path / "schemas") == []
    assert capsys.readouterr().err.count("wrote ") == len(SCHEMAS)


def test_cli_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("validate", "render", "schemas"):
        with pytest.raises(SystemExit):
            main(["firmware", command, "--help"])
        assert "example: nahfeld firmware " + command in capsys.readouterr().out


def test_broker_acl_is_rendered_from_the_declared_gateways(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["firmware", "acl", "--dir", str(SHIPPED)]) == 0
    acl = capsys.readouterr().out
    assert acl == (SHIPPED / "mosquitto" / "nahfeld.acl").read_text(encoding="utf-8")
    assert "user gw-checkout@demo-store\n" in acl
    assert "topic write nahfeld/v1/stores/demo-store/gateways/gw-checkout/events\n" in acl
    # a gateway added to a layout but not to the broker's ACL: validate says so
    with (config_dir / LAYOUT).open("a", encoding="utf-8") as layout:
        layout.write('\n[[gateways]]\nid = "gw-new"\n\n[[zones]]\nid = "new"\ngateway = "gw-new"\n')
        layout.write("radius_m = 1.0\n")
    bundle = load_bundle(config_dir)
    assert found(bundle) == [(str(config_dir / "mosquitto/nahfeld.acl"), "(whole file)")]
    assert "nahfeld firmware acl" in bundle.problems[0].reason
    out = config_dir / "mosquitto" / "nahfeld.acl"
    assert main(["firmware", "acl", "--dir", str(config_dir), "--out", str(out)]) == 0
    assert "user gw-new@demo-store\n" in out.read_text(encoding="utf-8")
    assert load_bundle(config_dir).ok
