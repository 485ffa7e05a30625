"""Store layouts: the minimal form is accepted, wrong files are refused with field and reason."""

from __future__ import annotations

import pytest

from gateway.layout import LayoutError, StoreLayout, parse_layout

MINIMAL = """
store = "demo-store"
timezone = "Europe/Berlin"
[defaults]
measured_power_dbm = -59     # RSSI at 1 m
path_loss_exponent = 2.0
[[gateways]]
id = "gw-entrance"
[[zones]]
id = "entrance"
gateway = "gw-entrance"
radius_m = 2.0
"""


def test_minimal_layout_from_the_issue() -> None:
    layout = parse_layout(MINIMAL)
    (zone,) = layout.zone_specs()
    assert zone.enter_radius_m == 2.0
    assert zone.exit_radius_m == 3.0  # default 1 m exit margin
    assert zone.measured_power_dbm == -59
    assert layout.tracker_params().dwell_thresholds_s == (30.0, 120.0, 300.0)


def test_demo_layout_loads(demo_layout: StoreLayout) -> None:
    assert demo_layout.store == "demo-store"
    assert len(demo_layout.beacons) == 2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('timezone = "Europe/Berlin"', 'timezone = "Mars/Olympus"'),
            "timezone: Value error, unknown IANA timezone",
        ),
        (("radius_m = 2.0", "radius_m = -1"), "zones.0.radius_m: Input should be greater than 0"),
        (
            ("radius_m = 2.0", "radius_m = 2.0\nexit_radius_m = 1.0"),
            "must not be smaller than radius_m",
        ),
        (
            ("radius_m = 2.0", 'radius_m = "far"'),
            "zones.0.radius_m: Input should be a valid number",
        ),
        (
            ("path_loss_exponent = 2.0", "path_loss_exponent = 2.0\nbogus = 1"),
            "defaults.bogus: Extra inputs are not permitted",
        ),
        (('store = "demo-store"', ""), "store: Field required"),
        (('id = "entrance"', 'id = "bad id!"'), "zones.0.id: String should match pattern"),
        (("[[zones]]", "[[zones]]\nid='x'\ngateway='gw-entrance'\nradius_m=1\n[[zones]]"), None),
    ],
)
def test_invalid_layouts_name_the_field(change: tuple[str, str], expected: str | None) -> None:
    text = MINIMAL.replace(*change)
    if expected is None:
        assert len(parse_layout(text).zones) == 2
        return
    with pytest.raises(LayoutError) as info:
        parse_layout(text, "shop.toml")
    assert "shop.toml" in str(info.value)
    assert expected in str(info.value)


def test_duplicate_zone_ids_refused() -> None:
    text = MINIMAL + '[[zones]]\nid = "entrance"\ngateway = "gw-entrance"\nradius_m = 1.0\n'
    with pytest.raises(LayoutError, match="duplicate zone id"):
        parse_layout(text)


def test_not_toml_refused() -> None:
    with pytest.raises(LayoutError, match="not valid TOML"):
        parse_layout("store = ", "x.toml")


def test_gateways_are_declared_once_and_zones_name_them() -> None:
    (gateway,) = parse_layout(MINIMAL).gateways
    assert (gateway.id, gateway.adapter, gateway.passive) == ("gw-entrance", "hci0", False)
    with pytest.raises(LayoutError, match="gateways: Field required"):
        parse_layout(MINIMAL.replace('[[gateways]]\nid = "gw-entrance"\n', ""))
    with pytest.raises(LayoutError, match=r"duplicate gateway id\(s\): gw-entrance"):
        parse_layout(MINIMAL.replace("[[zones]]", '[[gateways]]\nid = "gw-entrance"\n[[zones]]'))
    with pytest.raises(LayoutError) as info:
        parse_layout(MINIMAL.replace('gateway = "gw-entrance"', 'gateway = "gw-door"'), "s.toml")
    assert "zones: Value error, zone 'entrance' names unknown gateway 'gw-door'" in str(info.value)
    assert "(declared gateways: gw-entrance)" in str(info.value)
    with pytest.raises(LayoutError, match="adapter: String should match pattern"):
        parse_layout(MINIMAL.replace('id = "gw-entrance"', 'id = "gw-entrance"\nadapter = "usb0"'))
