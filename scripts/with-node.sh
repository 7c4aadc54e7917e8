#!/usr/bin/env bash
# Runs a command on one of the pinned Node.js runtimes (scripts/node-runtimes.txt), fetched
# first when missing (scripts/node-runtime.sh):
#
#   scripts/with-node.sh LINE COMMAND [ARGS...]      LINE: 22, 24, 26 or "ship"
#
# That runtime's bin/ goes first on PATH (so `node`, and npm and npx, which start with
# `#!/usr/bin/env node`, run on it), and npm_config_nodedir points node-gyp at its headers, so
# a native module built inside (npm ci, npm rebuild, node-gyp) targets it and never downloads
# headers. STEMEDB_AGENT_NODE is set to the runtime's version for whoever wants to say which
# Node ran. Set STEMEDB_AGENT_NODE_QUIET=1 to drop the one line on stderr naming it.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }
LINE=$1
shift
HERE=$(dirname "$0")
DIR=$(bash "$HERE/node-runtime.sh" "$LINE")
export PATH="$DIR/bin:$PATH"
export npm_config_nodedir="$DIR"
STEMEDB_AGENT_NODE=$("$DIR/bin/node" --version)
export STEMEDB_AGENT_NODE
[ "${STEMEDB_AGENT_NODE_QUIET:-0}" = 1 ] || printf 'with-node: Node %s (%s)\n' "$STEMEDB_AGENT_NODE" "$DIR/bin/node" >&2
exec "$@"
