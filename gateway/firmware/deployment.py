"""The fleet's deployment settings: ``firmware-config/deployment.toml``.

What every gateway of the fleet shares and the store layout does not say: the
production broker and where the TLS files and the layout live on the gateway.
``nahfeld firmware render`` combines it with one gateway of one store layout.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: a path on the gateway box (not on the machine that renders): absolute, POSIX
GatewayPath = Annotated[
    str,
    Field(pattern=r"^/[^\x00-\x1f]*$", description="absolute path on the gateway"),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerDeployment(_Strict):
    """The production MQTT broker; gateways log in with a TLS client certificate."""

    host: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]-]+$")]
    port: Annotated[int, Field(ge=1, le=65535)] = 8883  # MQTT over TLS
    ca_file: GatewayPath = "/etc/nahfeld/tls/ca.crt"
    cert_file: GatewayPath = "/etc/nahfeld/tls/gateway.crt"
    key_file: GatewayPath = "/etc/nahfeld/tls/gateway.key"


class GatewayDeployment(_Strict):
    """Where things are on each gateway box."""

    layout: GatewayPath = "/etc/nahfeld/layout.toml"
    # the systemd unit's StateDirectory=nahfeld: the only writable place under ProtectSystem
    data_dir: GatewayPath = "/var/lib/nahfeld"
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9464


class Deployment(_Strict):
    """Fleet-wide settings rendered into every gateway's ``gateway.toml``."""

    broker: BrokerDeployment
    gateway: GatewayDeployment = Field(default_factory=GatewayDeployment)
