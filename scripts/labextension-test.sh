#!/usr/bin/env bash
# Run the labextension's JS unit tests (jest in jsdom: labextension/src/**/*.test.ts) with the
# machine's node, from labextension/node_modules; `npm ci` first when they are missing or older
# than package-lock.json. Arguments go to jest (e.g. a test file, -t NAME). Without node 20+
# and npm it says so and skips (exit 0), as scripts/labextension.sh does: the labextension is
# optional.
set -euo pipefail
cd "$(dirname "$0")/../labextension"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node or npm is missing: the labextension's tests are skipped (install Node.js 20+ with npm)." >&2
    exit 0
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
    echo "node $(node --version) is too old for the labextension (20+): its tests are skipped." >&2
    exit 0
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "installing the labextension's node packages (npm ci)..." >&2
    npm ci --no-audit --no-fund --loglevel=error
fi
exec npm test --silent -- "$@"
