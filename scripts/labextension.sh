#!/usr/bin/env bash
# Build the labextension jupyter-agentspace from labextension/ (TypeScript, @jupyter/builder)
# into extension/agentspace/labextension/ and make it visible to JupyterLab in the virtualenv
# VENV, as `jupyter labextension develop` does: $VENV/share/jupyter/labextensions/
# jupyter-agentspace is a symlink to the build output (a wheel ships a copy of it instead).
# Needs node (20+) and npm; without them it says so and skips (the server works without it,
# with no live notebook link). Skips the build when nothing changed since the last one.
set -euo pipefail
VENV="${1:-.venv}"
cd "$(dirname "$0")/.."
OUT="$PWD/extension/agentspace/labextension"
STAMP="$VENV/.labextension-stamp"
SOURCES=(labextension/src labextension/style labextension/package.json
         labextension/package-lock.json labextension/tsconfig.json scripts/labextension.sh)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node or npm is missing: the labextension jupyter-agentspace is not built (the agent" >&2
    echo "cannot see or edit open notebooks live). Install Node.js 20+ with npm and run make setup." >&2
    exit 0
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
    echo "node $(node --version) is too old for the labextension's build (rspack needs 20+): skipped." >&2
    exit 0
fi
if [ -f "$STAMP" ] && [ -f "$OUT/package.json" ] && [ -z "$(find "${SOURCES[@]}" -newer "$STAMP" -print -quit)" ]; then
    echo "the labextension is up to date"
else
    (
        cd labextension
        if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
            echo "installing the labextension's node packages (npm ci)..." >&2
            npm ci --no-audit --no-fund --loglevel=error
        fi
        echo "building the labextension jupyter-agentspace..." >&2
        npm run --silent clean
        npm run --silent build
    )
fi
target="$VENV/share/jupyter/labextensions/jupyter-agentspace"
mkdir -p "$(dirname "$target")"
if [ -e "$target" ] && [ ! -L "$target" ]; then
    rm -rf "$target"  # a copy from an earlier (non-editable) install
fi
ln -sfn "$OUT" "$target"
touch "$STAMP"
