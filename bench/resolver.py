"""The cloud's EID resolver at 100k and 1M opted-in installs: memory and resolve rate.

For each size: the resolver's table (a numpy hash index per rotation window:
current ±1 and one ahead) beside the dict that gateway.ble.eid.EidTable would
keep for the same EIDs, in the same run. Figures: memory held (the table's
arrays, which hold all its bulk; for the dict, sys.getsizeof of it and of
everything it holds), EIDs resolved per second in batches of 64 with half
unknown, as a store sends them, and the cost of a window turn.

At 100k every EID is computed with AES (``cryptography``). At 1M the AES is
replaced by a fast keyed hash so the run stays under a minute; memory and
lookups do not depend on how the 8 bytes were made (AES output is as uniform),
and the 1M window turn is the measured AES cost per EID times 1M.

    python -m bench.resolver [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from unittest import mock

import numpy as np

import cloud.resolver.table as table_module
from cloud.resolver import EidResolverTable
from gateway.ble.eid import EidMatch

K = 10
NOW = 1_790_000_000.0
BATCH = 64


def _fast_temporary_key(identity_key: bytes, counter: int) -> bytes:
    return hashlib.blake2b(
        identity_key + (counter >> 16).to_bytes(2, "big"), digest_size=16
    ).digest()


def _fast_eid(temporary: bytes, exponent: int, counter: int) -> bytes:
    return hashlib.blake2b(temporary + counter.to_bytes(4, "big"), digest_size=8).digest()


@contextmanager
def stand_in_aes() -> Iterator[None]:
    with (
        mock.patch.object(table_module, "derive_temporary_key", _fast_temporary_key),
        mock.patch.object(table_module, "eid_from_temporary_key", _fast_eid),
    ):
        yield


def deep_mib(plain: dict[str, EidMatch]) -> float:
    """The dict's memory: its table, and every key, value and value field it holds alone."""
    total = sys.getsizeof(plain)
    for key, match in plain.items():
        total += sys.getsizeof(key) + sys.getsizeof(match) + sys.getsizeof(match.token)
        total += sys.getsizeof(match.valid_until)
    return total / 2**20


def batches(table: EidResolverTable, count: int, rng: np.random.Generator) -> list[list[str]]:
    """Batches of EIDs heard now: half belong to installs, half to strangers."""
    group = table._groups[K]
    window = group.windows[int(NOW) >> K]
    known = window.eids[window.eids != 0]
    out = []
    for _ in range(count):
        mine = rng.choice(known, BATCH // 2)
        strangers = rng.integers(1, 2**63, BATCH // 2, dtype=np.uint64)
        out.append([f"{int(e):016x}" for e in np.concatenate([mine, strangers])])
    return out


def rate(resolve: Callable[[list[str]], int], work: list[list[str]], rounds: int = 3) -> float:
    """Median batches per second over ``rounds``; checks every known EID resolved."""
    speeds = []
    for _ in range(rounds):
        start = time.perf_counter()
        hits = sum(resolve(b) for b in work)
        speeds.append(len(work) / (time.perf_counter() - start))
        assert hits >= len(work) * BATCH // 2, "a known EID did not resolve"
    return statistics.median(speeds)


def run(installs: int, real_aes: bool, lookups: int) -> dict[str, float]:
    rng = np.random.default_rng(installs)
    keys = rng.integers(0, 256, size=(installs, 16), dtype=np.uint8)

    def build() -> EidResolverTable:
        table = EidResolverTable()
        table.add_many((i, keys[i].tobytes(), K) for i in range(installs))
        table.advance(NOW)
        return table

    start = time.perf_counter()
    if real_aes:
        table = build()
    else:
        with stand_in_aes():
            table = build()
    build_s = time.perf_counter() - start
    table_mib = table.nbytes / 2**20  # all of its bulk is in numpy arrays it can count
    current = int(NOW) >> K
    group = table._groups[K]

    def reference() -> dict[str, EidMatch]:
        """What gateway.ble.eid.EidTable keeps: hex EID → (token, valid until), a dict entry
        and objects per EID of the same three windows."""
        plain: dict[str, EidMatch] = {}
        for number in range(current - 1, current + 2):
            eids, until = group.windows[number].eids, float((number + 2) << K)
            for slot in range(installs):
                install = str(int(table._installs[slot]))
                plain[f"{int(eids[slot]):016x}"] = EidMatch(install, until)
        return plain

    plain = reference()
    dict_mib = deep_mib(plain)
    work = batches(table, lookups, rng)

    def resolve_plain(batch: list[str]) -> int:
        return len([match for e in batch if (match := plain.get(e)) is not None])

    table_rate = rate(lambda b: len(table.resolve(b, NOW)), work)
    dict_rate = rate(resolve_plain, work)
    turn_start = time.perf_counter()
    if real_aes:
        turned = table.advance(NOW + (1 << K))
    else:
        with stand_in_aes():
            turned = table.advance(NOW + (1 << K))
    turn_s = time.perf_counter() - turn_start
    assert turned == installs
    return {
        "build_s": build_s,
        "table_mib": table_mib,
        "dict_mib": dict_mib,
        "table_rate": table_rate,
        "dict_rate": dict_rate,
        "turn_s": turn_s,
        "eids_per_s": turned / turn_s,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 50k installs (smoke test)")
    args = parser.parse_args(argv)
    sizes = (
        [(10_000, True), (50_000, False)] if args.quick else [(100_000, True), (1_000_000, False)]
    )
    lookups = 50 if args.quick else 200
    print(f"EID resolver, K={K} ({1 << K} s windows), 4 windows held (now ±1, one ahead)")
    aes_rate = 0.0
    for installs, real in sizes:
        r = run(installs, real, lookups)
        if real:
            aes_rate = r["eids_per_s"]
        how = "AES" if real else "stand-in hash for AES"
        print(f"\n{installs:>9,} installs ({how})")
        print(f"  build (4 windows)    {r['build_s']:8.1f} s")
        print(
            f"  memory               {r['table_mib']:8.1f} MiB  "
            f"(dict as EidTable keeps it, 3 windows: {r['dict_mib']:.1f} MiB, "
            f"ratio {r['table_mib'] / r['dict_mib']:.2f})"
        )
        print(
            f"  resolve              {r['table_rate'] * BATCH:10,.0f} EIDs/s in batches of {BATCH}"
            f"  (dict lookups: {r['dict_rate'] * BATCH:,.0f}/s, "
            f"ratio {r['table_rate'] / r['dict_rate']:.2f})"
        )
        if real:
            print(f"  window turn          {r['turn_s']:8.2f} s  ({r['eids_per_s']:,.0f} EIDs/s)")
        else:
            print(
                f"  window turn          {installs / aes_rate:8.1f} s with AES "
                f"(at the {aes_rate:,.0f} EIDs/s measured above), every {1 << K} s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
