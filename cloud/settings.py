"""The cloud service's settings: one pydantic-settings class.

Sources, strongest first: keyword arguments, environment variables
(``NAHFELD_CLOUD_…``), then a ``.env`` file. The defaults run a zero-set-up
service on an embedded SQLite file; production points ``database_url`` at
PostgreSQL (``postgresql://…`` is served by psycopg 3).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    # the broker the rulesets will be published to (not used by this slice yet)
    mqtt_host: str = "localhost"
    mqtt_port: Annotated[int, Field(ge=1, le=65535)] = 1883
    mqtt_username: str | None = "nahfeld-cloud"
    mqtt_password: SecretStr | None = None
