"""Store layouts for tests and benchmarks."""

from __future__ import annotations


def door_layout(store: str = "demo-store", gateway: str = "gw-1") -> str:
    """The smallest store: one gateway watching one zone, ``entrance`` (2 m), entered on
    the first sample, as layout TOML."""
    return f"""
store = "{store}"
timezone = "Europe/Berlin"
[defaults]
measured_power_dbm = -59
path_loss_exponent = 2.0
min_samples = 1
enter_after_s = 0
[[gateways]]
id = "{gateway}"
[[zones]]
id = "entrance"
gateway = "{gateway}"
radius_m = 2.0
"""
