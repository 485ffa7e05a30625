"""Opening a persistent MQTT session the same way in the gateway and the cloud.

MQTT 5 is the default (Mosquitto in production: session expiry, PUBACK reason
codes, shared subscriptions). MQTT 3.1.1 is there for brokers that speak
nothing newer, such as the pure-Python broker embedded in ``nahfeld demo``:
the session is then kept by ``clean_session=False`` and the broker's own
expiry, and reason codes are not available.
"""

from __future__ import annotations

from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

MqttProtocol = Literal["5", "3.1.1"]


def new_client(
    client_id: str, protocol: MqttProtocol, *, persistent: bool, manual_ack: bool = False
) -> mqtt.Client:
    if protocol == "5":
        return mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=manual_ack,
        )
    return mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv311,
        clean_session=not persistent,
        manual_ack=manual_ack,
    )


def connect_in_background(
    client: mqtt.Client,
    protocol: MqttProtocol,
    host: str,
    port: int,
    *,
    keepalive_s: int,
    session_expiry_s: int,
) -> None:
    """Connect and keep reconnecting on paho's thread (``loop_start`` is the caller's).
    With MQTT 5 the previous session is always resumed, so what it still held is
    delivered; ``session_expiry_s`` says how long the broker keeps it after this
    connection ends (0: not at all)."""
    if protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = session_expiry_s
        client.connect_async(host, port, keepalive=keepalive_s, clean_start=False, properties=props)
    else:
        client.connect_async(host, port, keepalive=keepalive_s)


def end_session(client: mqtt.Client) -> None:
    """Disconnect and have the broker drop the session now (MQTT 5: a session expiry of 0
    on DISCONNECT), whatever expiry it was opened with."""
    props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    client.disconnect(properties=props)
