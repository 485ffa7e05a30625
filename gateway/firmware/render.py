"""Render one gateway's ``gateway.toml`` from the firmware-config directory.

The gateway's settings are the join of three sources an installer should not
have to combine by hand: the deployment (broker, TLS files, paths), the store
layout's gateway entry (adapter, scanning mode) and the contract's naming rule
for the gateway's MQTT user. The output is what ``GatewaySettings`` reads.

Written with ``tomli-w``, the writing half of the standard library's ``tomllib``.
"""

from __future__ import annotations

import tomli_w

from ..contract import gateway_username
from ..layout import GatewaySpec, StoreLayout
from .bundle import DEPLOYMENT, Bundle


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
    settings = {
        "store": store.store,
        "gateway": gateway.id,
        "layout": paths.layout,
        "data_dir": paths.data_dir,
        "metrics_port": paths.metrics_port,
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            # also the CN of the gateway's client certificate, which the broker's ACL checks
            "username": gateway_username(store.store, gateway.id),
            "ca_file": broker.ca_file,
            "cert_file": broker.cert_file,
            "key_file": broker.key_file,
        },
        "scanner": {
            "adapter": gateway.adapter,
            "passive": gateway.passive,
            "silence_timeout_s": gateway.silence_timeout_s,
        },
    }
    return "\n".join(lines) + "\n" + tomli_w.dumps(settings)
