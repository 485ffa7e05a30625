"""Render one gateway's ``gateway.toml`` from the firmware-config directory.

The gateway's settings are the join of three sources an installer should not
have to combine by hand: the deployment (broker, TLS files, paths), the store
layout's gateway entry (adapter, scanning mode) and the contract's naming rule
for the gateway's MQTT user. The output is what ``GatewaySettings`` reads.

TOML is written by hand (the standard library only reads it): a handful of
scalar types, each written in the one form ``tomllib`` reads back unchanged.
"""

from __future__ import annotations

import math

from ..contract import gateway_username
from ..layout import GatewaySpec, StoreLayout
from .bundle import DEPLOYMENT, Bundle

TomlScalar = str | int | float | bool

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value: TomlScalar) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value}")
        return repr(value)  # always has '.' or 'e', which TOML needs to read a float
    return toml_string(value)


def _table(lines: list[str], values: dict[str, TomlScalar]) -> None:
    lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())


def render_gateway_toml(bundle: Bundle, store: StoreLayout, gateway: GatewaySpec) -> str:
    """The ``gateway.toml`` for ``gateway`` of ``store``; the bundle must hold a deployment."""
    deployment = bundle.deployment
    if deployment is None:
        raise ValueError(f"{bundle.label(DEPLOYMENT)}: no valid deployment")
    broker, paths = deployment.broker, deployment.gateway
    lines = [
        f"# gateway.toml for gateway {gateway.id} of store {store.store}.",
        "# Rendered by `nahfeld firmware render`: edit firmware-config/ and render again.",
        "# Install as the file the systemd unit names (/etc/nahfeld/gateway.toml), the store's",
        f"# layout.toml as {paths.layout}, then run `nahfeld gateway check-config`.",
    ]
    if gateway.description:
        lines.append(f"# {gateway.id}: {' '.join(gateway.description.split())}")
    _table(
        lines,
        {
            "store": store.store,
            "gateway": gateway.id,
            "layout": paths.layout,
            "data_dir": paths.data_dir,
            "metrics_port": paths.metrics_port,
        },
    )
    lines += ["", "[mqtt]"]
    _table(
        lines,
        {
            "host": broker.host,
            "port": broker.port,
            # also the CN of the gateway's client certificate, which the broker's ACL checks
            "username": gateway_username(store.store, gateway.id),
            "ca_file": broker.ca_file,
            "cert_file": broker.cert_file,
            "key_file": broker.key_file,
        },
    )
    lines += ["", "[scanner]"]
    _table(
        lines,
        {
            "adapter": gateway.adapter,
            "passive": gateway.passive,
            "silence_timeout_s": gateway.silence_timeout_s,
        },
    )
    return "\n".join(lines) + "\n"
