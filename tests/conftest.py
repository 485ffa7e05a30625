"""Shared fixtures: the repository root, the demo store, a real Mosquitto."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.layout import StoreLayout, load_layout
from tests.support.mosquitto import Broker

ROOT = Path(__file__).resolve().parents[1]
DEMO_STORE = ROOT / "firmware-config" / "stores" / "demo-store"


@pytest.fixture(scope="session")
def demo_layout() -> StoreLayout:
    return load_layout(DEMO_STORE / "layout.toml")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto on a free port, stopped after the test."""
    instance = Broker(tmp_path)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
