"""The shipped production broker config, run for real: TLS log-ins and the per-gateway ACL.

Mosquitto runs ``firmware-config/mosquitto/nahfeld.conf`` itself, with only its
file paths and ports swapped for temporary ones, and the ACL rendered by
``gateway.firmware.acl`` for two stores. Refusals are read from the broker's own
answers (MQTT 5 reason codes), and "nothing got through" is proven by a marker
published after the refused message on the same connection: messages from one
client arrive in order, so once the marker is in, the refused one would be too.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import SecretStr

from gateway.contract import (
    GATEWAY_UPLINK_CHANNELS,
    app_offers_topic,
    encode,
    gateway_topic,
    gateway_username,
    store_topic,
)
from gateway.firmware.acl import CLOUD_USER, render_acl
from gateway.mqtt_link import MqttLink
from gateway.outbox import Outbox
from gateway.settings import MqttSettings
from tests.support.messages import presence_event
from tests.support.mosquitto import Broker, free_port, wait_until
from tests.support.tls import CertificateAuthority

PRODUCTION_CONFIG = (
    Path(__file__).resolve().parents[2] / "firmware-config" / "mosquitto" / "nahfeld.conf"
)
STORE, GATEWAY, SIBLING = "demo-store", "gw-entrance", "gw-shoes"
OTHER_STORE, OTHER_GATEWAY = "other-store", "gw-1"
CLOUD_PASSWORD = "cloud-secret"
APP, OTHER_APP, APP_PASSWORD = "install-1", "install-2", "app-secret"
NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87
SUCCESS = 0
GRANTED_QOS_1 = 1


@dataclass
class Deployment:
    broker: Broker
    gateway_port: int  # mutual TLS
    password_port: int  # TLS + user name and password
    ca: CertificateAuthority
    tls_dir: Path
    passwd: Path

    def gateway_cert(self, store: str, gateway: str) -> tuple[Path, Path]:
        return self.ca.issue(f"{gateway}-{store}", gateway_username(store, gateway))


def _production_config(replacements: dict[str, str]) -> str:
    text = PRODUCTION_CONFIG.read_text()
    for old, new in replacements.items():
        assert old in text, f"nahfeld.conf no longer contains {old!r}: update this test"
        text = text.replace(old, new)
    return text


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    ca = CertificateAuthority(tls_dir)
    broker_cert, broker_key = ca.issue("broker", "localhost", server=True)
    acl = tmp_path / "nahfeld.acl"
    acl.write_text(render_acl([(STORE, GATEWAY), (STORE, SIBLING), (OTHER_STORE, OTHER_GATEWAY)]))
    passwd = tmp_path / "nahfeld.passwd"
    for n, (user, password) in enumerate(
        [(CLOUD_USER, CLOUD_PASSWORD), (APP, APP_PASSWORD), (OTHER_APP, APP_PASSWORD)]
    ):
        create = ["-c"] if n == 0 else []
        subprocess.run(["mosquitto_passwd", *create, "-b", str(passwd), user, password], check=True)
    gateway_port, password_port = free_port(), free_port()
    config = _production_config(
        {
            "listener 8883": f"listener {gateway_port} 127.0.0.1",
            "listener 8884": f"listener {password_port} 127.0.0.1",
            "/etc/mosquitto/nahfeld.passwd": str(passwd),
            "/etc/mosquitto/nahfeld.acl": str(acl),
            "/var/lib/mosquitto/": f"{tmp_path}/",
            "/etc/mosquitto/ca_certificates/nahfeld-ca.crt": str(ca.cert_file),
            "/etc/mosquitto/certs/broker.crt": str(broker_cert),
            "/etc/mosquitto/certs/broker.key": str(broker_key),
        }
    )
    broker = Broker(tmp_path, config=config, port=password_port)
    broker.start()
    try:
        yield Deployment(broker, gateway_port, password_port, ca, tls_dir, passwd)
    finally:
        broker.stop()


class Probe:
    """An MQTT 5 client that reports the broker's answers: CONNACK, PUBACK, SUBACK codes."""

    def __init__(
        self,
        port: int,
        ca_file: Path,
        client_id: str,
        cert: tuple[Path, Path] | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.port = port
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.tls_set(
            ca_certs=str(ca_file),
            certfile=str(cert[0]) if cert else None,
            keyfile=str(cert[1]) if cert else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        if login:
            self.client.username_pw_set(*login)
        self.lock = threading.Lock()
        self.connack: ReasonCode | None = None
        self.disconnected = threading.Event()
        self.pubacks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self.disconnected.set()
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(
        self, client: mqtt.Client, u: object, f: object, rc: ReasonCode, p: object
    ) -> None:
        self.connack = rc

    def _on_publish(
        self, client: mqtt.Client, u: object, mid: int, rc: ReasonCode, p: object
    ) -> None:
        with self.lock:
            self.pubacks[mid] = rc.value

    def _on_subscribe(
        self, client: mqtt.Client, u: object, mid: int, codes: list[ReasonCode], p: object
    ) -> None:
        with self.lock:
            self.subacks[mid] = [code.value for code in codes]

    def _on_message(self, client: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def connect(self) -> int:
        """The CONNACK reason code (0: accepted); raises if TLS refuses us first."""
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        wait_until(lambda: self.connack is not None or self.disconnected.is_set(), 10, "a CONNACK")
        return self.connack.value if self.connack is not None else -1

    def refused(self) -> bool:
        """Turned away: in the TLS handshake (TLS 1.2), or right after it (TLS 1.3 checks
        the client's certificate once the handshake is done), or by the CONNACK."""
        try:
            return self.connect() != SUCCESS
        except (ssl.SSLError, ConnectionError):
            return True

    def publish(self, topic: str, payload: bytes = b"{}", retain: bool = False) -> int:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        wait_until(lambda: info.mid in self.pubacks, 10, f"the PUBACK for {topic}")
        return self.pubacks[info.mid]

    def subscribe(self, topic: str) -> int:
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        wait_until(lambda: mid in self.subacks, 10, f"the SUBACK for {topic}")
        return self.subacks[mid][0]

    def topics(self) -> list[str]:
        with self.lock:
            return [topic for topic, _ in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def probes() -> Iterator[list[Probe]]:
    made: list[Probe] = []
    yield made
    for probe in made:
        probe.close()


def _gateway(d: Deployment, probes: list[Probe], store: str = STORE, gw: str = GATEWAY) -> Probe:
    probe = Probe(
        d.gateway_port, d.ca.cert_file, gateway_username(store, gw), d.gateway_cert(store, gw)
    )
    probes.append(probe)
    assert probe.connect() == SUCCESS
    return probe


def _password_client(d: Deployment, probes: list[Probe], user: str, password: str) -> Probe:
    probe = Probe(d.password_port, d.ca.cert_file, f"{user}-probe", login=(user, password))
    probes.append(probe)
    return probe


def _cloud(d: Deployment, probes: list[Probe]) -> Probe:
    cloud = _password_client(d, probes, CLOUD_USER, CLOUD_PASSWORD)
    assert cloud.connect() == SUCCESS
    assert cloud.subscribe("nahfeld/v1/#") == GRANTED_QOS_1
    return cloud


def test_a_gateway_publishes_on_its_own_channels_and_nowhere_else(
    deployment: Deployment, probes: list[Probe]
) -> None:
    cloud = _cloud(deployment, probes)
    gateway = _gateway(deployment, probes)
    own = [gateway_topic(STORE, GATEWAY, channel) for channel in GATEWAY_UPLINK_CHANNELS]
    foreign = [
        gateway_topic(STORE, SIBLING, "events"),  # posing as a sibling gateway
        gateway_topic(OTHER_STORE, OTHER_GATEWAY, "events"),  # another store
        gateway_topic(OTHER_STORE, GATEWAY, "events"),  # its own id under another store
        gateway_topic(STORE, GATEWAY, "resolved"),  # forging the cloud's answers
        store_topic(STORE, "ruleset"),
        app_offers_topic(APP),
        "nahfeld/v1/anything",
    ]
    for topic in foreign:
        assert gateway.publish(topic) == NOT_AUTHORIZED, topic
    for topic in own:
        assert gateway.publish(topic) == SUCCESS, topic
    wait_until(lambda: len(cloud.topics()) >= len(own), 10, "the gateway's messages at the cloud")
    assert cloud.topics() == own  # every refused message was sent first: none got through


def test_a_gateway_reads_its_store_and_its_answers_only(
    deployment: Deployment, probes: list[Probe]
) -> None:
    """Mosquitto grants any subscription but withholds each message the ACL does not allow."""
    cloud = _cloud(deployment, probes)
    for store in (STORE, OTHER_STORE):
        assert cloud.publish(store_topic(store, "ruleset"), store.encode(), retain=True) == SUCCESS
    gateway = _gateway(deployment, probes)
    foreign = [
        store_topic(OTHER_STORE, "ruleset"),
        gateway_topic(STORE, SIBLING, "resolved"),
        gateway_topic(OTHER_STORE, OTHER_GATEWAY, "resolved"),
        gateway_topic(STORE, SIBLING, "events"),  # other gateways' uplink is not for reading
        app_offers_topic(APP),
    ]
    for topic in [*foreign, "nahfeld/v1/#"]:
        assert gateway.subscribe(topic) in (GRANTED_QOS_1, NOT_AUTHORIZED)
    own_ruleset, own_answers = (
        store_topic(STORE, "ruleset"),
        gateway_topic(STORE, GATEWAY, "resolved"),
    )
    assert gateway.subscribe(own_ruleset) == GRANTED_QOS_1
    assert gateway.subscribe(own_answers) == GRANTED_QOS_1
    for topic in foreign:
        assert cloud.publish(topic, b"not for you") == SUCCESS
    assert cloud.publish(own_answers, b"marker") == SUCCESS  # sent after all of the above
    wait_until(lambda: own_answers in gateway.topics(), 10, "the marker on the gateway's answers")
    # the own ruleset arrives once per matching subscription ("nahfeld/v1/#" included)
    assert set(gateway.topics()) == {own_ruleset, own_answers}
    assert b"not for you" not in [payload for _, payload in gateway.messages]


def test_strangers_are_refused_at_the_door(deployment: Deployment, probes: list[Probe]) -> None:
    # a certificate from another CA: the TLS handshake fails
    rogue_ca = CertificateAuthority(deployment.tls_dir / "..", name="Rogue CA")
    rogue = Probe(
        deployment.gateway_port,
        deployment.ca.cert_file,
        "rogue",
        rogue_ca.issue("rogue", gateway_username(STORE, GATEWAY)),
    )
    probes.append(rogue)
    assert rogue.refused()
    # no client certificate on the gateway listener
    bare = Probe(deployment.gateway_port, deployment.ca.cert_file, "bare")
    probes.append(bare)
    assert bare.refused()
    # a wrong password, and no password at all, on the password listener
    for login in ((CLOUD_USER, "guess"), None):
        probe = Probe(deployment.password_port, deployment.ca.cert_file, "guesser", login=login)
        probes.append(probe)
        assert probe.connect() in (134, NOT_AUTHORIZED)  # bad user name or password


def test_an_app_reads_its_own_offers_only(deployment: Deployment, probes: list[Probe]) -> None:
    cloud = _cloud(deployment, probes)
    app = _password_client(deployment, probes, APP, APP_PASSWORD)
    assert app.connect() == SUCCESS
    assert app.publish(app_offers_topic(APP)) == NOT_AUTHORIZED  # offers come from the cloud
    for topic in (
        app_offers_topic(OTHER_APP),
        store_topic(STORE, "ruleset"),
        app_offers_topic(APP),
    ):
        assert app.subscribe(topic) in (GRANTED_QOS_1, NOT_AUTHORIZED)
    assert cloud.publish(app_offers_topic(OTHER_APP), b"someone else's offer") == SUCCESS
    assert cloud.publish(store_topic(STORE, "ruleset"), b"a store's ruleset") == SUCCESS
    assert cloud.publish(app_offers_topic(APP), b"my offer") == SUCCESS
    wait_until(app.topics, 10, "the app's own offer")
    assert app.messages == [(app_offers_topic(APP), b"my offer")]


@pytest.mark.parametrize("login", ["certificate", "password"])
def test_the_gateway_link_works_over_tls(
    deployment: Deployment, probes: list[Probe], tmp_path: Path, login: str
) -> None:
    """The daemon's own MqttLink, configured as a rendered gateway.toml would configure it:
    a client certificate on the gateway listener, or user name and password over TLS."""
    cloud = _cloud(deployment, probes)
    username = gateway_username(STORE, GATEWAY)
    if login == "certificate":
        cert_file, key_file = deployment.gateway_cert(STORE, GATEWAY)
        settings = MqttSettings(
            port=deployment.gateway_port,
            ca_file=deployment.ca.cert_file,
            cert_file=cert_file,
            key_file=key_file,
            reconnect_min_s=1,
            reconnect_max_s=2,
        )
    else:
        subprocess.run(
            ["mosquitto_passwd", "-b", str(deployment.passwd), username, "gw-secret"], check=True
        )
        deployment.broker.reload()
        settings = MqttSettings(
            port=deployment.password_port,
            ca_file=deployment.ca.cert_file,
            username=username,
            password=SecretStr("gw-secret"),
            reconnect_min_s=1,
            reconnect_max_s=2,
        )
    settings = settings.model_copy(update={"host": "127.0.0.1"})
    outbox = Outbox(tmp_path / "outbox.sqlite")
    events_topic = gateway_topic(STORE, GATEWAY, "events")
    message = presence_event(1, STORE, GATEWAY)
    outbox.put_many([(message.event_id, events_topic, encode(message), None)], now=0.0)
    link = MqttLink(
        settings, STORE, GATEWAY, outbox, [store_topic(STORE, "ruleset")], lambda t, m: None
    )
    link.start()
    try:
        wait_until(lambda: events_topic in cloud.topics(), 15, f"the event over TLS ({login})")
        assert gateway_topic(STORE, GATEWAY, "state") in cloud.topics()  # birth passed the ACL
        wait_until(lambda: len(outbox) == 0, 10, "the event's acknowledgement")
    finally:
        link.stop(timeout_s=2)
        outbox.close()
