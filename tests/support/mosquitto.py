"""A real Mosquitto broker for tests: own config, free port, own persistence directory."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], object],
    timeout_s: float = 10.0,
    what: str = "it",
    detail: Callable[[], object] | None = None,
) -> None:
    """Poll ``condition()`` until true; on timeout fail naming ``what`` and ``detail()``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    state = f" ({detail()})" if detail is not None else ""
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}{state}")


class Broker:
    """Start, stop and restart one mosquitto on 127.0.0.1; persistence survives restarts."""

    def __init__(
        self, workdir: Path, extra_config: str = "", config: str | None = None, port: int = 0
    ) -> None:
        """A broker with the test config plus ``extra_config``, or exactly ``config``
        (which must listen on ``port`` on 127.0.0.1)."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise FileNotFoundError("mosquitto is not installed (scripts/test.sh installs it)")
        self.binary = binary
        self.port = port or free_port()
        self.workdir = workdir
        self.config = workdir / "mosquitto.conf"
        if config is None:
            config = (
                f"listener {self.port} 127.0.0.1\n"
                "allow_anonymous true\n"
                "persistence true\n"
                f"persistence_location {workdir}/\n"
                "autosave_interval 1\n"
                f"{extra_config}"
            )
        if os.geteuid() == 0:
            # started as root, mosquitto drops to the "mosquitto" user, who cannot enter
            # pytest's private temporary directories: stay the invoking user instead
            config = f"user root\n{config}"
        self.config.write_text(config)
        self.log = workdir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(self._accepting, 10.0, f"mosquitto on port {self.port}")

    def _accepting(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def reload(self) -> None:
        """SIGHUP: mosquitto re-reads its password and ACL files."""
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: mosquitto saves its persistence db
            self.process.wait(timeout=10)
        self.process = None


class Listener:
    """A plain paho subscriber with a persistent session, recording what arrives."""

    def __init__(self, port: int, topics: list[str], client_id: str = "listener") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        self.client.on_message = self._on_message
        self.topics = topics
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        # only what is published after the SUBACK reaches us: wait for it
        assert self.subscribed.wait(10), "listener never got its SUBACK"

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
