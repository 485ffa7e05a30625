"""Taking a cloud worker away for good: what its session held is handled, and its share of
new events goes to the workers that stay, on a real Mosquitto (MQTT 5 shared
subscriptions)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.contract import gateway_topic
from tests.support.mosquitto import Broker, Listener, wait_until

from .conftest import Api
from .test_cloud_faults import EVENTS, PHONES, funnel, phones_with_tokens
from .test_cloud_worker import GATEWAY, STORE_ID, decision, start_worker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gateway(broker: Broker) -> Iterator[Listener]:
    listener = Listener(broker.port, [gateway_topic(STORE_ID, GATEWAY, "resolved")], "gw-1")
    yield listener
    listener.close()


@pytest.mark.timeout(120)
def test_a_retired_worker_hands_over_its_share_and_leaves_nothing_queued(
    api: Api, store: dict[str, Any], database_url: str, broker: Broker, gateway: Listener
) -> None:
    # "w" resolved the phones' tokens and stopped: its session stays in the shared
    # subscription, so the broker queues a share of the next events for it
    tokens = phones_with_tokens(api, gateway, database_url, broker)
    staying = start_worker(database_url, broker, "b")
    try:
        for n in range(10):
            gateway.client.publish(EVENTS, decision(tokens[PHONES[n]], n), 1)
        wait_until(lambda: funnel(api)["triggered"] >= 1, 30, "the staying worker's share")
        retiring = start_worker(database_url, broker, "w")
        assert retiring.retire(quiet_s=1.0, timeout_s=30)
        wait_until(lambda: funnel(api)["sent"] == 10, 30, "the retired worker's queue handled")
        # from now on every event goes to the worker that stays: none waits for "w"
        for n in range(10, 20):
            gateway.client.publish(EVENTS, decision(tokens[PHONES[n % 10]], n), 1)
        wait_until(lambda: funnel(api)["sent"] == 20, 30, "all twenty sent by the other")
        assert funnel(api)["triggered"] == 20
    finally:
        staying.stop()


def test_retire_needs_mqtt_5_and_says_so() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "cloud", "worker", "--name", "x", "--retire"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={"NAHFELD_CLOUD_MQTT_PROTOCOL": "3.1.1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2, result.stderr
    assert "--retire: needs MQTT 5" in result.stderr
