#!/usr/bin/env bash
# Runs the ava suite and ends with one plain summary line ("tests: N passed, N failed, N skipped").
set -uo pipefail
out=$(mktemp)
trap 'rm -f "$out"' EXIT
npx ava "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
# Count ava's per-test marks (its own totals omit the passed count when something failed).
passed=$(grep -cE '^[[:space:]]+✔' "$out"); failed=$(grep -cE '^[[:space:]]+✘' "$out"); skipped=$(grep -cE '^[[:space:]]+- \[skip\]' "$out")
echo "tests: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
if [ "$status" -eq 0 ] && [ "${passed:-0}" -eq 0 ]; then
  echo "run-tests: no test ran" >&2
  exit 1
fi
exit "$status"
