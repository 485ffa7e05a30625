"""An MQTT broker inside the demo's process: amqtt, pure Python, on its own thread.

amqtt speaks MQTT 3.1.1 only, so everything the demo connects to it runs with
``protocol="3.1.1"`` (one cloud worker, no shared subscription). Its sessions and
retained messages live in memory: the demo needs nothing to survive it. With a
Mosquitto configured (``--broker HOST:PORT``) none of this runs.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

from amqtt.broker import Broker

log = logging.getLogger(__name__)
ANONYMOUS = "amqtt.plugins.authentication.AnonymousAuthPlugin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """Listens on 127.0.0.1 only (anonymous clients are accepted: nothing leaves the host)."""

    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="broker", daemon=True)
        self._broker: Broker | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }

        async def start() -> Broker:
            broker = Broker(config)
            await broker.start()
            return broker

        self._broker = asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout_s)
        log.info("embedded MQTT broker (amqtt, MQTT 3.1.1) on %s:%d", self.host, self.port)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout_s)
            self._broker = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
