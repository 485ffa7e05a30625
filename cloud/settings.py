"""The cloud service's settings: one pydantic-settings class.

Sources, strongest first: keyword arguments, environment variables
(``NAHFELD_CLOUD_…``), then a ``.env`` file. The defaults run a zero-set-up
service on an embedded SQLite file; production points ``database_url`` at
PostgreSQL (``postgresql://…`` is served by psycopg 3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.mqtt_session import MqttProtocol

from .bus import SHARE_GROUP, BusSettings


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NAHFELD_CLOUD_",
        env_file=".env",
        extra="ignore",
    )

    database_url: str = "sqlite:///./nahfeld-cloud.db"
    #: seconds a request waits for a database connection before answering 503
    database_connect_timeout_s: Annotated[int, Field(ge=1, le=60)] = 5
    database_echo: bool = False

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    log_level: str = "INFO"

    #: a stock upload larger than this is refused whole (an ERP sends one store at a time)
    stock_max_rows: Annotated[int, Field(ge=1)] = 200_000

    #: the key of the per-store tokens (at least 16 bytes); unset, one is made on first
    #: use and kept in the database, so every worker shares it
    token_secret: Annotated[SecretStr, Field(min_length=16)] | None = None
    #: the Eddystone-EID rotation exponent K handed to new installs (EIDs turn every 2**K s)
    eid_rotation_exponent: Annotated[int, Field(ge=0, le=15)] = 10
    #: how long an opt-out or erasure is relayed to gateways as a revoked token
    revocation_relay_s: Annotated[float, Field(gt=0)] = 3600.0
    #: offers of one campaign one person may be sent per local day, across all stores
    cap_per_person_per_day: Annotated[int | None, Field(ge=1)] = 3
    #: offers of one campaign one person may ever be sent (None: no lifetime cap)
    cap_per_person_lifetime: Annotated[int | None, Field(ge=1)] = None
    #: a webhook push provider that has not answered by then counts as failed
    webhook_timeout_s: Annotated[float, Field(gt=0, le=30)] = 5.0

    # the broker: rulesets and offers out, gateway traffic in
    #: `nahfeld cloud serve` publishes each changed store's ruleset and stock, retained
    publish_rulesets: bool = True
    #: every store's ruleset is published again this often even without a change, so a
    #: gateway can tell a quiet cloud from an unreachable one (its ruleset_stale_s: 24 h)
    ruleset_refresh_s: Annotated[float, Field(gt=0)] = 6 * 3600.0
    mqtt_client_id: str = "nahfeld-cloud"
    mqtt_host: str = "localhost"
    mqtt_port: Annotated[int, Field(ge=1, le=65535)] = 1883
    mqtt_username: str | None = "nahfeld-cloud"
    mqtt_password: SecretStr | None = None
    #: a CA to verify the broker's TLS certificate with; unset: plain MQTT
    mqtt_ca_file: Path | None = None
    #: how long the broker keeps a stopped worker's session: what it had not acknowledged
    #: waits that long for it to come back under the same name (and so does its share of
    #: new events: take a worker away for good with `nahfeld cloud worker --retire`)
    mqtt_session_expiry_s: Annotated[int, Field(ge=0)] = 3600
    #: MQTT 5 in production; "3.1.1" for brokers that speak nothing newer (then workers
    #: cannot share a subscription: run one)
    mqtt_protocol: MqttProtocol = "5"

    def bus(self, client_id: str) -> BusSettings:
        """One MQTT session's settings; each worker's client id must stay the same across
        restarts, so the broker keeps its unacknowledged messages for it."""
        return BusSettings(
            host=self.mqtt_host,
            port=self.mqtt_port,
            username=self.mqtt_username,
            password=self.mqtt_password.get_secret_value() if self.mqtt_password else None,
            ca_file=self.mqtt_ca_file,
            client_id=client_id,
            session_expiry_s=self.mqtt_session_expiry_s,
            protocol=self.mqtt_protocol,
            share_group=SHARE_GROUP if self.mqtt_protocol == "5" else None,
        )

    def secret_bytes(self) -> bytes | None:
        return self.token_secret.get_secret_value().encode() if self.token_secret else None
