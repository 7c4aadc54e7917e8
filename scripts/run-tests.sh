#!/usr/bin/env bash
# Runs the ava suite and ends with one plain summary line ("tests: N passed, N failed, N skipped").
set -uo pipefail
out=$(mktemp)
trap 'rm -f "$out"' EXIT
npx ava "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
count() { grep -Eo "^[[:space:]]*[0-9]+ (tests?|known failures?) $1" "$out" | grep -Eo '[0-9]+' | head -1; }
passed=$(count passed); failed=$(count failed); skipped=$(count skipped)
echo "tests: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
if [ "$status" -eq 0 ] && [ "${passed:-0}" -eq 0 ]; then
  echo "run-tests: no test ran" >&2
  exit 1
fi
exit "$status"
