"""The cloud's EID resolver: the hash index, the window table, per-store tokens."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.resolver import EidIndex, EidResolverTable, install_of_token, store_token
from cloud.resolver.index import NOT_FOUND
from cloud.resolver.service import InstallProfile, ResolverService
from gateway.ble.eid import eid_at
from gateway.contract import ResolveRequest, encode

K = 10
SIZE = 1 << K
NOW = 1_790_000_000.0  # mid-window: 1_790_000_000 >> 10 = 1_748_046, window starts 1_789_999_104


def key(n: int) -> bytes:
    return bytes((n + i) % 256 for i in range(16))


@given(
    st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=300),
    st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=50),
)
def test_index_agrees_with_a_dict(stored: list[int], absent: list[int]) -> None:
    expected: dict[int, int] = {}
    for slot, eid in enumerate(stored):
        expected.setdefault(eid, slot)  # the first of a repeated EID wins
    index = EidIndex.build(
        np.array(stored, dtype=np.uint64), np.arange(len(stored), dtype=np.int64)
    )
    assert len(index) == len(expected)
    queries = stored + absent
    found = index.lookup_many(np.array(queries, dtype=np.uint64))
    assert [int(f) for f in found] == [expected.get(q, NOT_FOUND) for q in queries]


def test_index_grows_one_insert_at_a_time() -> None:
    index = EidIndex()
    rng = np.random.default_rng(7)
    eids = rng.integers(1, 2**63, size=5000, dtype=np.uint64)
    for slot in range(len(eids)):
        index.upsert_many(eids[slot : slot + 1], np.array([slot], dtype=np.int64))
    assert len(index) == 5000
    assert index.lookup_many(eids).tolist() == list(range(5000))
    assert index.nbytes <= 5000 * 16 * 2 * 2  # at most half full after growing: 16 B a cell
    index.upsert_many(eids[:10], np.arange(100, 110, dtype=np.int64))  # present: new slots
    index.upsert_many(np.zeros(1, dtype=np.uint64), np.array([7], dtype=np.int64))
    assert len(index) == 5001
    assert index.lookup_many(eids[:10]).tolist() == list(range(100, 110))
    assert index.get(0) == 7
    assert index.get(12345) == NOT_FOUND


def table_with(*installs: tuple[int, bytes, int]) -> EidResolverTable:
    table = EidResolverTable()
    table.add_many(installs)
    table.advance(NOW)
    return table


def test_resolves_the_current_window_and_one_either_side() -> None:
    table = table_with((1, key(1), K), (2, key(2), K))
    for offset in (-SIZE, 0, SIZE):
        [hit] = table.resolve([eid_at(key(2), K, NOW + offset).hex()], NOW)
        assert hit.install == 2
    assert table.resolve([eid_at(key(2), K, NOW + 2 * SIZE).hex()], NOW) == []
    assert table.resolve([eid_at(key(2), K, NOW - 2 * SIZE).hex()], NOW) == []


def test_a_resolution_carries_the_next_windows_eid_and_validity() -> None:
    table = table_with((1, key(1), K))
    [hit] = table.resolve([eid_at(key(1), K, NOW).hex()], NOW)
    window_end = (int(NOW) // SIZE + 1) * SIZE
    assert hit.next_eid == eid_at(key(1), K, NOW + SIZE).hex()
    assert hit.valid_until == window_end + SIZE  # one window of grace for drifting clocks
    assert hit.next_valid_until == hit.valid_until + SIZE


def test_unknown_and_malformed_eids_resolve_to_nothing() -> None:
    table = table_with((1, key(1), K))
    assert table.resolve(["00112233445566ff", "not-hex-at-all!!", "abc", ""], NOW) == []


def test_advancing_drops_passed_windows_and_computes_only_the_new_one() -> None:
    table = table_with((1, key(1), K), (2, key(2), K))
    old = eid_at(key(1), K, NOW - SIZE).hex()
    assert table.advance(NOW) == 0  # nothing turned
    assert table.advance(NOW + SIZE) == 2  # one new window ahead, for both installs
    assert table.resolve([old], NOW + SIZE) == []
    [hit] = table.resolve([eid_at(key(1), K, NOW + 2 * SIZE).hex()], NOW + SIZE)
    assert hit.install == 1


def test_opt_out_stops_resolution_at_once_and_opt_in_starts_it() -> None:
    table = table_with((1, key(1), K), (2, key(2), K))
    eid = eid_at(key(1), K, NOW).hex()
    assert table.remove(1)
    assert 1 not in table
    assert table.resolve([eid], NOW) == []
    assert not table.remove(1)
    table.add_many([(3, key(3), K)])  # mid-window: its EIDs go into the computed windows
    [hit] = table.resolve([eid_at(key(3), K, NOW).hex()], NOW)
    assert (hit.install, len(table)) == (3, 2)
    table.advance(NOW + 3 * SIZE)  # compaction after windows turned keeps the others working
    [hit] = table.resolve([eid_at(key(2), K, NOW + 3 * SIZE).hex()], NOW + 3 * SIZE)
    assert hit.install == 2


def test_a_new_key_replaces_the_old_one() -> None:
    table = table_with((1, key(1), K))
    table.add_many([(1, key(9), K)])
    assert table.resolve([eid_at(key(1), K, NOW).hex()], NOW) == []
    [hit] = table.resolve([eid_at(key(9), K, NOW).hex()], NOW)
    assert hit.install == 1


def test_installs_with_different_exponents_turn_their_own_windows() -> None:
    table = table_with((1, key(1), 8), (2, key(2), 12))
    eids = [eid_at(key(1), 8, NOW).hex(), eid_at(key(2), 12, NOW).hex()]
    assert sorted(hit.install for hit in table.resolve(eids, NOW)) == [1, 2]


def test_bad_identity_keys_are_refused() -> None:
    table = EidResolverTable()
    with pytest.raises(ValueError, match="16 bytes"):
        table.add_many([(1, b"short", K)])
    with pytest.raises(ValueError, match="exponent"):
        table.add_many([(1, key(1), 16)])


def test_store_tokens_are_stable_per_store_and_unlinkable_across_stores() -> None:
    secret = b"s" * 32
    token = store_token(secret, "berlin-1", "install-42")
    assert token == store_token(secret, "berlin-1", "install-42")
    assert token != store_token(secret, "hamburg-1", "install-42")
    assert token != store_token(b"t" * 32, "berlin-1", "install-42")
    assert "install" not in token and len(token) <= 128  # the contract's token limit
    with pytest.raises(ValueError, match="16 bytes"):
        store_token(b"short", "berlin-1", "install-42")


def test_only_the_cloud_turns_a_token_back_into_its_install_and_only_for_its_store() -> None:
    secret = b"s" * 32
    token = store_token(secret, "berlin-1", "install-42")
    assert install_of_token(secret, "berlin-1", token) == "install-42"
    assert install_of_token(secret, "hamburg-1", token) is None  # replayed in another store
    assert install_of_token(b"t" * 32, "berlin-1", token) is None
    tampered = ("A" if token[0] != "A" else "B") + token[1:]
    assert install_of_token(secret, "berlin-1", tampered) is None
    for junk in ("", "!!!", "a", "=" * 8, "x" * 200):
        assert install_of_token(secret, "berlin-1", junk) is None
    longest = store_token(secret, "berlin-1", "i" * 64)  # the longest install id there is
    assert len(longest) <= 128


class Directory:
    def __init__(self) -> None:
        self.known = {1: InstallProfile("install-a", ("vip",)), 2: InstallProfile("install-b")}
        self.revoked: list[str] = []

    def profiles(self, installs: Collection[int]) -> Mapping[int, InstallProfile]:
        return {i: self.known[i] for i in installs if i in self.known}

    def recently_revoked(self) -> Iterable[str]:
        return self.revoked


def request(*eids: str) -> ResolveRequest:
    return ResolveRequest(
        request_id="req-00000001", store="berlin-1", gateway="gw-1", ts=NOW, eids=list(eids)
    )


def test_the_service_answers_with_store_tokens_never_install_ids() -> None:
    directory = Directory()
    service = ResolverService(table_with((1, key(1), K), (2, key(2), K)), b"k" * 32, directory)
    mine, stranger = eid_at(key(1), K, NOW).hex(), "0123456789abcdef"
    response = service.answer(request(mine, stranger), NOW)
    [resolved] = response.resolved
    assert resolved.eid == mine
    assert resolved.token == store_token(b"k" * 32, "berlin-1", "install-a")
    assert resolved.segments == ["vip"]
    assert resolved.next_eid == eid_at(key(1), K, NOW + SIZE).hex()
    wire = encode(response)
    assert b"install-a" not in wire and stranger.encode() not in wire
    assert (service.stats.eids, service.stats.resolved) == (2, 1)


def test_the_service_relays_revocations_and_skips_installs_without_a_record() -> None:
    directory = Directory()
    service = ResolverService(table_with((1, key(1), K), (3, key(3), K)), b"k" * 32, directory)
    directory.revoked.append("install-b")
    response = service.answer(request(eid_at(key(3), K, NOW).hex()), NOW)
    assert response.resolved == []  # in the table, but the directory has no record: erased
    assert response.revoked_tokens == [store_token(b"k" * 32, "berlin-1", "install-b")]
