"""Eddystone-EID computation against independent vectors, and the resolver table."""

from __future__ import annotations

import pytest

from gateway.ble.eid import (
    EidIdentity,
    EidTable,
    beacon_counter,
    compute_eid,
    eid_at,
    temporary_key,
)

# Vectors published with two independent EID implementations (an ECDH
# registration test and a scanner's unit test).
KEY = bytes.fromhex("7c91330e61dfea4606b5b3ecb4457d76")


def test_eid_vector_counter_zero() -> None:
    assert compute_eid(KEY, 0, 0).hex() == "436bfe57d5a09505"


def test_second_aes_step_vector() -> None:
    """Step two alone, from a published temporary key: K=12 at 1518080946."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    temp_key = bytes.fromhex("b7c2d909d27d22df8343271162480210")
    counter = 1518080946
    block = bytes(11) + bytes((12,)) + ((counter >> 12) << 12).to_bytes(4, "big")
    encryptor = Cipher(algorithms.AES(temp_key), modes.ECB()).encryptor()
    assert (encryptor.update(block) + encryptor.finalize())[:8].hex() == "7dd8169dae94258c"


def test_eid_is_stable_within_a_window_and_rotates_after() -> None:
    k = 10
    start = 1_700_000_000 >> k << k
    first = compute_eid(KEY, k, start)
    assert compute_eid(KEY, k, start + (1 << k) - 1) == first
    assert compute_eid(KEY, k, start + (1 << k)) != first
    assert len(first) == 8


def test_temporary_key_depends_only_on_high_16_bits() -> None:
    assert temporary_key(KEY, 0x12340000) == temporary_key(KEY, 0x12340000)
    assert temporary_key(KEY, 0x12340000) != temporary_key(KEY, 0x12350000)


@pytest.mark.parametrize(
    ("key", "k", "counter", "message"),
    [
        (b"short", 0, 0, "identity key must be 16 bytes"),
        (KEY, 16, 0, "rotation exponent"),
        (KEY, -1, 0, "rotation exponent"),
        (KEY, 0, 1 << 32, "32-bit"),
    ],
)
def test_bad_parameters_are_refused_clearly(key: bytes, k: int, counter: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_eid(key, k, counter)


def test_table_resolves_current_and_adjacent_windows_only() -> None:
    k = 8
    identity = EidIdentity("tok-a", KEY, k)
    table = EidTable([identity, EidIdentity("tok-b", bytes(16), k)])
    now = 1_700_000_000.0
    current = eid_at(KEY, k, now).hex()
    previous = eid_at(KEY, k, now - (1 << k)).hex()
    nxt = eid_at(KEY, k, now + (1 << k)).hex()
    far = eid_at(KEY, k, now + 5 * (1 << k)).hex()
    match = table.lookup(current, now)
    assert match is not None
    assert match.token == "tok-a"
    assert match.valid_until > now
    assert table.lookup(previous, now) is not None  # clock drift
    assert table.lookup(nxt, now) is not None
    assert table.lookup(far, now) is None
    assert table.lookup("00" * 8, now) is None
    assert len(table) == 6  # 2 identities x 3 windows


def test_table_follows_time() -> None:
    k = 4
    table = EidTable([EidIdentity("tok-a", KEY, k)])
    later = 1_700_000_000.0 + 100 * (1 << k)
    assert table.lookup(eid_at(KEY, k, later).hex(), 1_700_000_000.0) is None
    assert table.lookup(eid_at(KEY, k, later).hex(), later) is not None
    assert len(table) == 3


def test_counter_is_unix_seconds_mod_2_32() -> None:
    assert beacon_counter(1_700_000_000.9) == 1_700_000_000
    assert beacon_counter(float(1 << 32) + 5) == 5
