#!/usr/bin/env bash
# Set-up shared by scripts/demo.sh and scripts/test.sh: Debian packages (when
# root and missing), a virtualenv in .venv, and the project installed in it.
# Usage: source scripts/bootstrap.sh EXTRAS   (e.g. "all" or "gateway")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="${1:-all}"
# Debian packages: the test suite's real broker, database and D-Bus (dbus-python
# builds against libdbus/glib), and Python's venv module.
APT_PACKAGES=(python3-venv dbus libdbus-1-dev libglib2.0-dev pkg-config mosquitto postgresql)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]]; then
        echo "bootstrap: installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "bootstrap: missing Debian packages: ${missing[*]}" >&2
        echo "bootstrap: run as root or: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "bootstrap: Python 3.11+ required, $("$PYTHON" --version 2>&1) found" >&2
    exit 1
fi
VENV="$ROOT/.venv"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "bootstrap: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.installed-$EXTRAS"
if [[ ! -f "$STAMP" || "$ROOT/pyproject.toml" -nt "$STAMP" ]]; then
    echo "bootstrap: installing nahfeld[$EXTRAS] into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[$EXTRAS]"
    touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
