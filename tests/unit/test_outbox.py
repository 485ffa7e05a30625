"""The outbox: durable, idempotent, bounded, expiring; survives kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.outbox import Outbox


def test_put_pending_ack(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    assert box.put("k1", "t/1", b"one", now=1.0)
    assert box.put("k2", "t/2", b"two", now=2.0)
    items = box.pending(now=3.0)
    assert [(i.key, i.topic, i.payload) for i in items] == [
        ("k1", "t/1", b"one"),
        ("k2", "t/2", b"two"),
    ]
    assert box.ack([items[0].id]) == 1
    assert [i.key for i in box.pending(now=3.0)] == ["k2"]
    assert box.stats.acked == 1


def test_same_key_is_queued_once(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    assert box.put("k1", "t", b"a", now=1.0)
    assert not box.put("k1", "t", b"a", now=2.0)
    assert len(box) == 1
    assert box.stats.duplicates == 1


def test_survives_reopen(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put_many([(f"k{n}", "t", b"x", None) for n in range(50)], now=1.0)
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert len(again) == 50
    assert again.pending(now=2.0, limit=1)[0].key == "k0"


def test_bounded_drops_oldest_and_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_rows=10)
    box.put_many([(f"k{n}", "t", b"x", None) for n in range(25)], now=1.0)
    assert len(box) == 10
    assert box.stats.dropped_overflow == 15
    assert [i.key for i in box.pending(now=1.0)] == [f"k{n}" for n in range(15, 25)]


def test_expired_messages_are_dropped_not_sent(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put("offer", "t", b"o", now=1.0, expires_at=10.0)
    box.put("event", "t", b"e", now=1.0)
    assert [i.key for i in box.pending(now=5.0)] == ["offer", "event"]
    assert [i.key for i in box.pending(now=10.0)] == ["event"]
    assert box.stats.dropped_expired == 1


def test_pending_pages_after_an_id(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put_many([(f"k{n}", "t", b"x", None) for n in range(5)], now=1.0)
    first = box.pending(now=1.0, limit=2)
    rest = box.pending(now=1.0, after_id=first[-1].id)
    assert [i.key for i in first + rest] == [f"k{n}" for n in range(5)]


WRITER = """
import sys, time
from gateway.outbox import Outbox
box = Outbox(sys.argv[1])
n = 0
while True:
    box.put(f"k{n}", "t", b"payload", now=time.time())
    n += 1
    if n == 500:
        print("ready", flush=True)
"""


def test_kill_minus_9_mid_stream_keeps_every_committed_message(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"  # 500 committed, and still writing
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    box = Outbox(db)
    count = len(box)
    assert count >= 500
    keys = [item.key for item in box.pending(now=time.time(), limit=count)]
    assert keys == [f"k{n}" for n in range(count)]  # no gap, no corruption
