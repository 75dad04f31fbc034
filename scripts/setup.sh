#!/usr/bin/env bash
# Create the virtualenv and install agentspace (editable) with its test tools.
# Needs: python3 (3.10+) with venv, and access to PyPI. No apt packages yet.
set -euo pipefail
VENV="${1:-.venv}"
cd "$(dirname "$0")/.."
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "agentspace needs Python 3.10 or newer (found $(python3 --version))." >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || {
        echo "python3 -m venv failed: install the venv module (Debian: apt-get install python3-venv)." >&2
        exit 1
    }
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[test]"
