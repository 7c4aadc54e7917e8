#!/usr/bin/env bash
# Installs stemedb-agent from this checkout as a systemd service. Run as root:
#
#   sudo scripts/install.sh          (or: sudo npm run install-service)
#
# Idempotent: running it again upgrades in place (the service is restarted if it was running) and
# never touches an existing /etc/stemedb/agent.toml.
#
#   /usr/lib/stemedb-agent/           dist (agent, collectors, remediators) + production node_modules
#                                     + build/Release/sd_notify.node (the sd_notify addon)
#                                     + node/bin/node (the shipped Node.js line, scripts/node-runtimes.txt)
#   /usr/bin/stemedb-agent, agentctl  two-line wrappers running them on that node
#   /usr/lib/systemd/system/stemedb-agent.service
#   /usr/lib/sysusers.d/stemedb-agent.conf, /usr/lib/tmpfiles.d/stemedb-agent.conf
#   /etc/stemedb/agent.toml           documented defaults, only if missing
#
# The Node.js it installs and runs on is the pinned shipped line (scripts/node-runtime.sh ship:
# fetched through npm once, then cached), whatever `node` the host has.
# Builds first when dist/ is missing or older than the sources. Production dependencies come from
# this checkout's node_modules pruned with `npm prune --omit=dev` (offline; keeps the compiled
# better-sqlite3), or, without node_modules, from `npm ci --omit=dev` (needs the registry).
# Environment: STEMEDB_AGENT_NO_START=1 installs without enabling/starting the service.
set -euo pipefail

# shellcheck source=scripts/install-paths.sh
. "$(dirname "$0")/install-paths.sh"

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
REPO=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$REPO"

command -v npm >/dev/null || die "npm not found (any Node.js with npm: it fetches the runtime the agent runs on)"
RUNTIME=$(bash scripts/node-runtime.sh ship) || die "cannot fetch the shipped Node.js runtime"
export PATH="$RUNTIME/bin:$PATH" npm_config_nodedir="$RUNTIME"
NODE="$RUNTIME/bin/node"
say "Node.js $("$NODE" --version) ($RUNTIME)"

# 1. build if needed
needs_build() {
  [ -f dist/agent/main.js ] && [ -f dist/agentctl.cjs ] || return 0
  [ -n "$(find core agent collectors judge remediators -name '*.ts' -newer dist/agent/main.js -print -quit)" ]
}
if needs_build; then
  [ -w "$REPO" ] || die "dist/ is missing or stale and $REPO is read-only: run 'npm ci && npm run build' first"
  say "building"
  [ -x node_modules/.bin/tsc ] || npm ci --no-audit --no-fund
  npm run build
fi
# The sd_notify addon (native/sd_notify.c): npm ci builds it; without it the service never
# reports READY=1 (Type=notify, NotifyAccess=main: only the agent's own PID may).
ADDON=build/Release/sd_notify.node
if [ ! -f "$ADDON" ] || [ native/sd_notify.c -nt "$ADDON" ]; then
  [ -w "$REPO" ] || die "$ADDON is missing or stale and $REPO is read-only: run 'npm ci' first"
  say "building the sd_notify addon"
  npm run build:native >/dev/null || die "cannot build $ADDON (needs g++/make and Node headers)"
fi

# 2. stage the tree next to the target, check it runs, then swap it in
STAGE="$LIBDIR.new.$$"
cleanup() { rm -rf "$STAGE"; }
trap cleanup EXIT
rm -rf "$STAGE"
install -d -m 0755 "$STAGE/dist"
cp -a dist/core dist/agent dist/collectors dist/judge dist/remediators dist/agentctl.cjs "$STAGE/dist/"
find "$STAGE/dist" -name '*.map' -delete
install -D -m 0755 "$ADDON" "$STAGE/$ADDON"
cp -a package.json package-lock.json README.md "$STAGE/"
install -d -m 0755 "$STAGE/systemd"
cp -a systemd/. "$STAGE/systemd/"
install -D -m 0755 "$NODE" "$STAGE/node/bin/node"
install -m 0644 "$RUNTIME/LICENSE" "$STAGE/node/LICENSE"
if [ -d node_modules ]; then
  say "copying production dependencies from node_modules"
  cp -a node_modules "$STAGE/"
  (cd "$STAGE" && npm prune --omit=dev --offline --no-audit --no-fund --ignore-scripts >/dev/null)
else
  say "fetching production dependencies (npm ci --omit=dev)"
  (cd "$STAGE" && npm ci --omit=dev --no-audit --no-fund >/dev/null)
fi
chmod 0755 "$STAGE/dist/agent/main.js" "$STAGE/dist/agentctl.cjs"
chown -R root:root "$STAGE"
chmod -R u+rwX,go+rX,go-w "$STAGE"
SNODE="$STAGE/node/bin/node"
"$SNODE" "$STAGE/dist/agent/main.js" --version >/dev/null || die "the staged agent does not run"
"$SNODE" "$STAGE/dist/agent/main.js" --print-config --config /dev/null >/dev/null || die "the staged agent cannot load its configuration"
"$SNODE" -e 'process.exit(typeof require(process.argv[1]).send === "function" ? 0 : 1)' "$STAGE/$ADDON" \
  || die "the staged sd_notify addon does not load"
(cd "$STAGE" && "$SNODE" -e 'new (require("better-sqlite3"))(":memory:").prepare("select 1").get()') \
  || die "the staged better-sqlite3 does not load on $("$SNODE" --version)"

if [ -d "$LIBDIR" ]; then
  rm -rf "$LIBDIR.old"
  mv "$LIBDIR" "$LIBDIR.old"
fi
mv "$STAGE" "$LIBDIR"
rm -rf "$LIBDIR.old"
trap - EXIT
say "installed $LIBDIR ($("$LIBDIR/node/bin/node" "$LIBDIR/dist/agent/main.js" --version), Node $("$LIBDIR/node/bin/node" --version))"

# 3. commands, unit, sysusers/tmpfiles snippets
# exec keeps the PID: under systemd the agent is the unit's main PID (NotifyAccess=main).
wrapper() { # NAME SCRIPT [PRELUDE]
  rm -f "$BINDIR/$1"
  printf '#!/bin/sh\n# %s: installed by stemedb-agent scripts/install.sh\n%bexec %s %s "$@"\n' \
    "$1" "${3:-}" "$LIBDIR/node/bin/node" "$2" >"$BINDIR/$1.new"
  chmod 0755 "$BINDIR/$1.new"
  mv -f "$BINDIR/$1.new" "$BINDIR/$1"
}
wrapper stemedb-agent "$LIBDIR/dist/agent/main.js"
# One bundled file: starts ~30 ms sooner than the ESM module graph. NODE_EXTRA_CA_CERTS would make
# Node parse the whole CA bundle at each start (~35 ms); agentctl makes no TLS connection.
wrapper agentctl "$LIBDIR/dist/agentctl.cjs" 'unset NODE_EXTRA_CA_CERTS\n'

install -D -m 0644 systemd/stemedb-agent.service "$UNITDIR/$UNIT"
install -D -m 0644 systemd/stemedb-agent.sysusers.conf "$SYSUSERSDIR/stemedb-agent.conf"
install -D -m 0644 systemd/stemedb-agent.tmpfiles.conf "$TMPFILESDIR/stemedb-agent.conf"
say "installed $BINDIR/stemedb-agent, $BINDIR/agentctl, $UNITDIR/$UNIT"

# 4. default configuration, never overwriting
install -d -m 0755 "$CONFDIR"
if [ -e "$CONFDIR/agent.toml" ]; then
  say "kept existing $CONFDIR/agent.toml (documented defaults: $LIBDIR/systemd/agent.toml)"
  "$BINDIR/stemedb-agent" --config "$CONFDIR/agent.toml" --print-config >/dev/null \
    || say "WARNING: $CONFDIR/agent.toml has problems (above); the service will refuse to start"
else
  install -m 0644 systemd/agent.toml "$CONFDIR/agent.toml"
  say "wrote $CONFDIR/agent.toml (documented defaults, all commented out)"
fi

# 5. systemd
if [ -d /run/systemd/system ]; then
  systemd-sysusers "$SYSUSERSDIR/stemedb-agent.conf"
  systemd-tmpfiles --create "$TMPFILESDIR/stemedb-agent.conf"
  systemctl daemon-reload
  if [ "${STEMEDB_AGENT_NO_START:-0}" = 1 ]; then
    systemctl enable "$UNIT"
    say "enabled $UNIT (not started: STEMEDB_AGENT_NO_START=1)"
  else
    was_active=0
    systemctl -q is-active "$UNIT" && was_active=1
    systemctl enable --now "$UNIT"
    [ "$was_active" = 1 ] && systemctl restart "$UNIT"   # pick up the new code
    say "$(systemctl is-active "$UNIT"): $UNIT ($(systemctl show -p StatusText --value "$UNIT"))"
  fi
else
  say "systemd is not running (not PID 1): files installed, nothing started. On a systemd host:"
  say "  systemd-sysusers; systemd-tmpfiles --create; systemctl daemon-reload; systemctl enable --now $UNIT"
fi
say "done. Status: agentctl status (root, or members of group stemedb-agent: usermod -aG stemedb-agent USER)"
