"""The resolver worker on a real Mosquitto: a gateway's EIDs in, per-store tokens out."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator, Mapping

import pytest

from cloud.bus import BusSettings
from cloud.resolver import EidResolverTable, store_token
from cloud.resolver.service import InstallProfile, ResolverService
from cloud.resolver.worker import ResolverWorker
from gateway.ble.eid import eid_at
from gateway.contract import ResolveRequest, ResolveResponse, encode, gateway_topic, parse_message
from tests.support.mosquitto import Broker, Listener, wait_until

STORE, GATEWAY = "berlin-1", "gw-1"
KEY, K, SECRET = bytes(range(16)), 10, b"s" * 32
RESOLVED = gateway_topic(STORE, GATEWAY, "resolved")


class Directory:
    def profiles(self, installs: Collection[int]) -> Mapping[int, InstallProfile]:
        return {7: InstallProfile("install-7", ("vip",))} if 7 in installs else {}

    def recently_revoked(self) -> Iterable[str]:
        return []


@pytest.fixture
def worker(broker: Broker) -> Iterator[ResolverWorker]:
    table = EidResolverTable()
    table.add_many([(7, KEY, K)])
    instance = ResolverWorker(
        ResolverService(table, SECRET, Directory()),
        BusSettings(port=broker.port, client_id="resolver-1"),
    )
    instance.start()
    yield instance
    instance.stop()


def request(store: str, *eids: str, n: int = 1) -> bytes:
    return encode(
        ResolveRequest(
            request_id=f"req-{n:08d}", store=store, gateway=GATEWAY, ts=time.time(), eids=list(eids)
        )
    )


def responses(gateway: Listener) -> list[ResolveResponse]:
    parsed = [parse_message(RESOLVED, payload) for payload in gateway.on(RESOLVED)]
    return [r for r in parsed if isinstance(r, ResolveResponse)]


def test_a_gateway_gets_tokens_for_the_eids_it_heard(
    broker: Broker, worker: ResolverWorker
) -> None:
    gateway = Listener(broker.port, [RESOLVED], "gw-1-probe")
    try:
        mine = eid_at(KEY, K, time.time()).hex()
        gateway.client.publish(
            gateway_topic(STORE, GATEWAY, "resolve"), request(STORE, mine, "0011223344556677"), 1
        )
        wait_until(lambda: responses(gateway), 10, "the resolve response")
        [response] = responses(gateway)
        [resolved] = response.resolved
        assert resolved.eid == mine
        assert resolved.token == store_token(SECRET, STORE, "install-7")
        assert resolved.segments == ["vip"]
        assert resolved.next_eid == eid_at(KEY, K, time.time() + (1 << K)).hex()
    finally:
        gateway.close()


def test_a_request_claiming_another_store_is_refused(
    broker: Broker, worker: ResolverWorker
) -> None:
    gateway = Listener(broker.port, [RESOLVED, gateway_topic("hamburg-1", GATEWAY, "resolved")])
    try:
        mine = eid_at(KEY, K, time.time()).hex()
        topic = gateway_topic(STORE, GATEWAY, "resolve")
        gateway.client.publish(topic, request("hamburg-1", mine), 1)
        wait_until(lambda: worker.refused["sender_mismatch"] == 1, 10, "the refusal")
        gateway.client.publish(topic, request(STORE, mine, n=2), 1)
        wait_until(lambda: responses(gateway), 10, "the answer to the honest request")
        assert [r.request_id for r in responses(gateway)] == ["req-00000002"]
        assert gateway.on(gateway_topic("hamburg-1", GATEWAY, "resolved")) == []
    finally:
        gateway.close()
