#!/usr/bin/env bash
# Refresh constraints.txt on purpose: install the newest releases that pyproject.toml's ranges
# allow into a throwaway venv and record their exact versions. Run `make test` after it and
# commit constraints.txt with the result.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
"$tmp/venv/bin/python" -m pip install --quiet -e ".[test]"
{
    echo "# Exact versions CI and scripts/setup.sh install; refreshed by scripts/constraints.sh."
    echo "pip==$("$tmp/venv/bin/python" -m pip --version | cut -d' ' -f2)"
    "$tmp/venv/bin/python" -m pip freeze --exclude-editable | grep -v '^-e '
} >constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) pins"
