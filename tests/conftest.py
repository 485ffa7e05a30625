"""Shared fixtures: the repository root and the demo store."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.layout import StoreLayout, load_layout

ROOT = Path(__file__).resolve().parents[1]
DEMO_STORE = ROOT / "firmware-config" / "stores" / "demo-store"


@pytest.fixture(scope="session")
def demo_layout() -> StoreLayout:
    return load_layout(DEMO_STORE / "layout.toml")
