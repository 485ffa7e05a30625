"""Contract messages the tests send, made one way."""

from __future__ import annotations

from gateway.contract import PresenceEventMessage


def presence_event(
    n: int, store: str = "demo-store", gateway: str = "gw-1", zone: str = "entrance"
) -> PresenceEventMessage:
    """The ``n``-th enter event of token ``tok-1``, with a unique, sortable event id."""
    return PresenceEventMessage(
        event_id=f"evt-{n:08d}",
        store=store,
        gateway=gateway,
        zone=zone,
        token="tok-1",
        type="enter",
        ts=float(n),
    )
