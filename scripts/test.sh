#!/usr/bin/env bash
# The whole test suite from a fresh Debian machine: installs what it needs, then
# lint (ruff), types (mypy) and pytest. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh all
echo "== ruff"; ruff check .; ruff format --check .
echo "== mypy"; mypy
echo "== pytest"; pytest "$@"
