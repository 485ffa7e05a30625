#!/usr/bin/env bash
# The main job, zero set-up: a simulated store capture replayed through the
# gateway core; presence events stream out as JSONL.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh all
STORE=firmware-config/stores/demo-store
nahfeld replay --layout "$STORE/layout.toml" --input "$STORE/capture.jsonl" \
    --identities "$STORE/identities.json" "$@"
