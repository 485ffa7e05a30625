"""JSON Schemas of the firmware-config files, generated from the pydantic models.

Editors (taplo / "Even Better TOML" in VS Code, via a ``#:schema`` comment)
then flag a wrong field while it is typed, by the same rules ``nahfeld firmware
validate`` applies. The files are generated, committed, and a unit test fails
when a model changed and they were not regenerated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..layout import StoreLayout
from ..settings import GatewaySettings
from .deployment import Deployment
from .profiles import BeaconProfile

#: file stem -> (model, title)
SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "store-layout": (StoreLayout, "Nahfeld store layout (stores/<store>/layout.toml)"),
    "beacon-profile": (BeaconProfile, "Nahfeld beacon firmware profile (beacons/<id>.toml)"),
    "deployment": (Deployment, "Nahfeld fleet deployment settings (deployment.toml)"),
    "gateway-settings": (
        GatewaySettings,
        "Nahfeld gateway settings (/etc/nahfeld/gateway.toml, rendered)",
    ),
}
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_file_name(stem: str) -> str:
    return f"{stem}.schema.json"


def schema_documents() -> dict[str, str]:
    """File name -> the schema's text: stable (sorted keys), with a trailing newline."""
    documents = {}
    for stem, (model, title) in SCHEMAS.items():
        schema: dict[str, Any] = model.model_json_schema()
        schema["$schema"] = JSON_SCHEMA_DIALECT
        schema["$id"] = f"urn:nahfeld:firmware-config:{stem}"
        schema["title"] = title
        text = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False)
        documents[schema_file_name(stem)] = text + "\n"
    return documents


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema into ``directory``; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_documents().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(directory: Path) -> list[str]:
    """The schema files in ``directory`` that are missing or differ from the models."""
    stale = []
    for name, text in schema_documents().items():
        path = directory / name
        try:
            current = path.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            stale.append(name)
    return stale
