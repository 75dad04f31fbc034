#!/usr/bin/env bash
# `make test`: every step runs and reports, even after one fails, so one failure does not
# hide the others; the exit status is 1 if any step failed. A summary (each step's status
# and wall time) is printed at the end and kept in test-artifacts/summary.txt.
# Usage: scripts/test.sh [STEP ...]   (default: every step, in order)
set -uo pipefail
cd "$(dirname "$0")/.."
MAKE="${MAKE:-make}"
STEPS=("$@")
[ ${#STEPS[@]} -gt 0 ] || STEPS=(lint typecheck unit js server notebooks-check browser)
summary="${TEST_SUMMARY:-test-artifacts/summary.txt}"
mkdir -p "$(dirname "$summary")"
: >"$summary"
failed=0
start_all=$(date +%s)
for step in "${STEPS[@]}"; do
    echo "=== make $step"
    start=$(date +%s)
    if "$MAKE" --no-print-directory "$step"; then status=passed; else status=FAILED; failed=1; fi
    line="$(printf '%-16s %-7s %4ss' "$step" "$status" "$(($(date +%s) - start))")"
    echo "=== $line"
    echo "$line" >>"$summary"
done
echo "=== summary (wall time $(($(date +%s) - start_all)) s)"
cat "$summary"
exit "$failed"
