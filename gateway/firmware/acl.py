"""The broker's access control list, rendered from the stores' declared gateways.

Mosquitto's ``pattern`` lines substitute one identity (``%u`` or ``%c``) as a
whole, but a gateway is bound by two: its store and its own id. So each gateway
gets explicit ``user`` entries naming exactly its topics, and patterns cover the
one-identity case, an app reading its own offers. Anything not granted here is
refused by the broker: a gateway cannot publish or read for another store, nor
pose as a sibling gateway of its own store.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..contract import (
    GATEWAY_DOWNLINK_CHANNELS,
    GATEWAY_UPLINK_CHANNELS,
    ROOT,
    STORE_DOWNLINK_CHANNELS,
    gateway_topic,
    gateway_username,
    store_topic,
)

#: the cloud service's MQTT user name (password or certificate CN)
CLOUD_USER = "nahfeld-cloud"


def render_acl(gateways: Iterable[tuple[str, str]], cloud_user: str = CLOUD_USER) -> str:
    """Mosquitto ``acl_file`` text for the ``(store, gateway)`` pairs, in a stable order."""
    lines = [
        "# Nahfeld broker ACL, rendered by `nahfeld firmware acl` from the store layouts.",
        "# Do not edit: re-render after adding a gateway, then reload mosquitto (SIGHUP).",
        "",
        "# An app (user name = its install id) reads only its own offers.",
        f"pattern read {ROOT}/apps/%u/offers",
        "",
        "# The cloud service: everything under the versioned root.",
        f"user {cloud_user}",
        f"topic readwrite {ROOT}/#",
    ]
    for store, gateway in sorted(set(gateways)):
        lines += ["", f"user {gateway_username(store, gateway)}"]
        lines += [
            f"topic write {gateway_topic(store, gateway, c)}" for c in GATEWAY_UPLINK_CHANNELS
        ]
        lines += [
            f"topic read {gateway_topic(store, gateway, c)}" for c in GATEWAY_DOWNLINK_CHANNELS
        ]
        lines += [f"topic read {store_topic(store, c)}" for c in STORE_DOWNLINK_CHANNELS]
    return "\n".join(lines) + "\n"
