#!/usr/bin/env bash
# The main job, zero set-up: `nahfeld demo` — an embedded MQTT broker, the cloud on
# SQLite with a seeded retailer, the demo store's three gateways on a simulated
# store visit, and reference app clients printing each offer as it arrives.
# Extra arguments go to `nahfeld demo` (see `nahfeld demo --help`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh all
nahfeld demo "$@"
