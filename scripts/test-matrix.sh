#!/usr/bin/env bash
# `npm test`: everything CI checks, on every supported Node.js line (scripts/node-runtimes.txt).
#
#   1. the Debian packages the tests use (scripts/test-deps.sh), the three pinned runtimes
#      (scripts/node-runtime.sh: through npm, cached, verified)
#   2. lint, typecheck and build on the shipped line
#   3. the whole suite on the shipped line, then the fast suite (test/suites.txt) on each other
#      line, each run saying which Node ran it
#   4. a table of the runs and one closing line: "tests: N passed, N failed, N skipped" (all runs)
#
# Exits non-zero when any step or any run failed; every run happens regardless.
# STEMEDB_AGENT_TEST_LINES="26" limits step 3 to the lines named (the shipped one stays whole).
set -uo pipefail
cd "$(dirname "$0")/.."

ship=$(awk '!/^#/ && $4 == "ship" { print $1 }' scripts/node-runtimes.txt)
ship_version="v$(bash scripts/node-runtime.sh --version ship)"
if [ "$(node --version 2>/dev/null)" != "$ship_version" ]; then
  bash scripts/test-deps.sh || exit 1
  for l in $(bash scripts/node-runtime.sh --lines); do
    bash scripts/node-runtime.sh "$l" >/dev/null || { echo "test-matrix: cannot fetch Node line $l" >&2; exit 1; }
  done
  exec bash scripts/with-node.sh ship bash "$0" "$@"
fi

echo "test-matrix: lint, typecheck, build on Node $(node --version)"
npm run lint || exit 1
npm run typecheck || exit 1
npm run build || exit 1

lines=${STEMEDB_AGENT_TEST_LINES:-$(bash scripts/node-runtime.sh --lines)}
summary=() failures=()
total_p=0 total_f=0 total_s=0 status=0
run() { # LINE KIND
  local line=$1 kind=$2 log args=()
  log=$(mktemp)
  [ "$kind" = fast ] && args+=(--fast)
  echo "test-matrix: Node line $line, $kind suite"
  STEMEDB_AGENT_NODE_QUIET=1 bash scripts/run-tests.sh --node "$line" "${args[@]}" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local node counts p f s
  node=$(grep -m1 -oE '^run-tests: Node v[0-9.]+' "$log" | sed 's/^run-tests: Node //')
  counts=$(grep -E '^tests: [0-9]+ passed' "$log" | tail -1)
  p=$(sed -E 's/^tests: ([0-9]+) passed.*/\1/' <<<"$counts")
  f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$counts")
  s=$(sed -E 's/.* ([0-9]+) skipped.*/\1/' <<<"$counts")
  total_p=$((total_p + ${p:-0})) total_f=$((total_f + ${f:-0})) total_s=$((total_s + ${s:-0}))
  [ "$rc" -eq 0 ] || status=1
  if [ "$node" != "v$(bash scripts/node-runtime.sh --version "$line")" ]; then
    echo "test-matrix: the $kind suite for line $line ran on ${node:-an unknown Node}" >&2
    status=1 rc="wrong Node"
  fi
  # CI keeps only the end of the output: a failed run's ✘ lines with their t.log text, and ava's
  # detail block (from its first rule on), are printed again last, bounded, so the reason shows.
  if [ "$rc" != 0 ]; then
    failures+=("--- Node line $line, $kind suite: what failed ---")
    failures+=("$(awk '/^  ✘/ { p = 1; print; next } p && /^    / { print; next } { p = 0 }' "$log" | head -120)")
    failures+=("$(sed -n '/^[[:space:]]*─$/,$p' "$log" | grep -vE '^[[:space:]]*(─)?$' |
      grep -vE '^[[:space:]]+at .*(node_modules/|node:internal|async Promise)' | head -80)")
  fi
  summary+=("$(printf 'test-matrix: Node %-9s %-12s %s (exit %s)' "${node:-$line?}" "$kind suite" \
    "${counts#tests: }" "$rc")")
  rm -f "$log"
}

run "$ship" whole
for l in $lines; do
  [ "$l" = "$ship" ] || run "$l" fast
done

echo
[ ${#failures[@]} -eq 0 ] || printf '%s\n' "${failures[@]}"
printf '%s\n' "${summary[@]}"
echo "tests: $total_p passed, $total_f failed, $total_s skipped"
exit "$status"
