"""bench/resolver.py --quick builds both sizes, checks every known EID resolves, prints."""

from __future__ import annotations

import pytest

from bench.resolver import main


def test_resolver_benchmark_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "10,000 installs (AES)" in out
    assert "50,000 installs (stand-in hash for AES)" in out
    assert out.count("ratio") == 4  # memory and resolve rate beside the dict, for each size
