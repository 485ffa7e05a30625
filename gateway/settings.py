"""The gateway daemon's settings: one pydantic-settings class.

Sources, strongest first: keyword arguments, environment variables
(``NAHFELD_GATEWAY_…``, nested with ``__``: ``NAHFELD_GATEWAY_MQTT__HOST``),
a ``.env`` file, then the TOML file (``/etc/nahfeld/gateway.toml`` unless
``NAHFELD_GATEWAY_CONFIG`` names another).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .fields import Identifier
from .mqtt_session import MqttProtocol

DEFAULT_CONFIG = Path("/etc/nahfeld/gateway.toml")
CONFIG_ENV = "NAHFELD_GATEWAY_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttSettings(_Section):
    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    reconnect_min_s: Annotated[float, Field(gt=0)] = 1.0
    reconnect_max_s: Annotated[float, Field(gt=0)] = 60.0
    max_inflight: Annotated[int, Field(ge=1, le=1000)] = 20  # Mosquitto's receive maximum
    #: MQTT 5 in production; "3.1.1" for brokers that speak nothing newer
    protocol: MqttProtocol = "5"

    @model_validator(mode="after")
    def _tls_pairs(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (TLS client certificate)")
        if self.cert_file is not None and self.ca_file is None:
            raise ValueError("a client certificate needs ca_file to verify the broker")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        return self

    @property
    def tls(self) -> bool:
        return self.ca_file is not None


class ScannerSettings(_Section):
    adapter: str = "hci0"
    # passive scanning needs BlueZ >= 5.56 run with --experimental; active is the safe default
    passive: bool = False
    silence_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30.0


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NAHFELD_GATEWAY_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
    )

    store: Identifier
    gateway: Identifier
    layout: Path = Field(description="store layout TOML")
    data_dir: Path = Path("/var/lib/nahfeld")
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    scanner: ScannerSettings = Field(default_factory=ScannerSettings)
    heartbeat_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    flush_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    outbox_max_rows: Annotated[int, Field(ge=100)] = 100_000
    ruleset_stale_s: Annotated[float, Field(gt=0)] = 24 * 3600.0
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9464
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )
