#!/usr/bin/env bash
# Runs the ava suite on one Node.js line and ends with one plain summary line
# ("tests: N passed, N failed, N skipped").
#
#   scripts/run-tests.sh [--node LINE] [--fast] [FILE...]
#
#   --node LINE   run on that pinned runtime (22, 24, 26 or ship; scripts/with-node.sh), fetched
#                 when missing; without it, on the `node` first on PATH when that is a supported
#                 line (22, 24, 26), else on the shipped line
#   --fast        only the files test/suites.txt marks fast (no agent processes, loop devices or
#                 containers); without it and without FILEs, every test file
#   FILE...       test files, as test/X.test.ts or dist/test/X.test.js (build first: npm run build)
#
# Before ava it checks that both native modules (better-sqlite3 and build/Release/sd_notify.node)
# load on this runtime, and says which Node runs.
set -uo pipefail
cd "$(dirname "$0")/.."

line="" fast=0 files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --node) line=${2:?--node needs a line}; shift 2 ;;
    --node=*) line=${1#--node=}; shift ;;
    --fast) fast=1; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) files+=("$1"); shift ;;
  esac
done

if [ -z "$line" ]; then
  major=$(node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/')
  supported=$(bash scripts/node-runtime.sh --lines)   # not piped into grep -q: pipefail and SIGPIPE
  grep -qx "${major:-none}" <<<"$supported" || line=ship
fi
if [ -n "$line" ]; then
  want="v$(bash scripts/node-runtime.sh --version "$line")" || exit 1
  if [ "$(node --version 2>/dev/null)" != "$want" ]; then
    args=()
    [ "$fast" = 1 ] && args+=(--fast)
    exec bash scripts/with-node.sh "$line" bash "$0" "${args[@]}" "${files[@]}"
  fi
fi

what="whole suite"
if [ "$fast" = 1 ]; then
  what="fast suite"
  while read -r name kind _; do
    [ "$kind" = fast ] && files+=("dist/test/${name%.ts}.js")
  done < <(grep -vE '^[[:space:]]*(#|$)' test/suites.txt)
elif [ ${#files[@]} -gt 0 ]; then
  what="${#files[@]} file(s)"
fi
for i in "${!files[@]}"; do
  f=${files[$i]}
  case "$f" in test/*.ts) f="dist/${f%.ts}.js" ;; esac
  files[$i]=$f
done

echo "run-tests: Node $(node --version) ($(command -v node)), $what"
if ! node -e '
  const Database = require("better-sqlite3");
  new Database(":memory:").prepare("select 1").get();
  if (typeof require("./build/Release/sd_notify.node").send !== "function") throw new Error("sd_notify: no send()");
' 2>&1; then
  echo "run-tests: the native modules do not load on Node $(node --version) (npm ci builds them)" >&2
  echo "tests: 0 passed, 1 failed, 0 skipped"
  exit 1
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
npx ava "${files[@]}" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
# Count ava's per-test marks (its own totals omit the passed count when something failed).
passed=$(grep -cE '^[[:space:]]+✔' "$out"); failed=$(grep -cE '^[[:space:]]+✘' "$out"); skipped=$(grep -cE '^[[:space:]]+- \[skip\]' "$out")
echo "tests: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
if [ "$status" -eq 0 ] && [ "${passed:-0}" -eq 0 ]; then
  echo "run-tests: no test ran" >&2
  exit 1
fi
exit "$status"
