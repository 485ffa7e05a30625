"""The end-to-end tests use both worlds' fixtures: the radio (dbusmock's BlueZ) and the
cloud (a real PostgreSQL, migrated and emptied per test)."""

from tests.cloud.conftest import (  # noqa: F401  (fixtures)
    backend,
    database_url,
    engine,
    postgres,
    postgres_database,
    sqlite_template,
)
from tests.integration.conftest import bluez, run_bleak, system_bus  # noqa: F401  (fixtures)
