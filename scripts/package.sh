#!/usr/bin/env bash
# `npm run package`: one self-contained Debian package, stemedb-agent_VERSION_amd64.deb, built
# with dpkg-deb (no debhelper): the built agent with its production node_modules, the shipped
# Node.js line (scripts/node-runtimes.txt) under /opt/stemedb-agent, the unit, sysusers and
# tmpfiles snippets, /etc/stemedb/agent.toml (the documented defaults) as conffile, the alert
# rules and dashboard under /usr/share/stemedb-agent, and `stemedb-agent` and `agentctl` on PATH.
# Maintainer scripts: packaging/deb/. Then lintian, when installed (scripts/test-deps.sh adds it).
#
#   scripts/package.sh [--out DIR] [--version DEBVERSION] [--no-build] [--no-lintian]
#
#   --out DIR          where the .deb goes (default: the checkout)
#   --version V        the package version (default: package.json's version, "-1")
#   --no-build         package dist/ and build/Release as they are (tests: no rebuild under them)
#
# Needs dpkg-deb, dpkg-shlibdeps (dpkg-dev), binutils (strip) and the registry (npm ci
# --omit=dev into the staged tree; npm's cache makes repeated builds offline).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd -P)
say() { printf 'package: %s\n' "$*"; }
die() { printf 'package: error: %s\n' "$*" >&2; exit 1; }

OUT=$REPO VERSION="" LINTIAN=1 BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?}; shift 2 ;;
    --version) VERSION=${2:?}; shift 2 ;;
    --no-lintian) LINTIAN=0; shift ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done
for t in dpkg-deb dpkg-shlibdeps strip; do
  command -v "$t" >/dev/null || die "$t not found (apt-get install dpkg-dev binutils; or: bash scripts/test-deps.sh)"
done

RUNTIME=$(bash scripts/node-runtime.sh ship)
export PATH="$RUNTIME/bin:$PATH" npm_config_nodedir="$RUNTIME"
NODE_VERSION=$(node --version)
[ -n "$VERSION" ] || VERSION="$(node -p 'require("./package.json").version')-1"
say "stemedb-agent $VERSION on Node $NODE_VERSION"

# 1. the build: dist/ and the sd_notify addon, on the shipped runtime
if [ "$BUILD" = 1 ]; then
  [ -x node_modules/.bin/tsc ] || npm ci --no-audit --no-fund
  npm run build --silent
  [ -f build/Release/sd_notify.node ] || npm run build:native --silent
fi
[ -f dist/agent/main.js ] && [ -f dist/agentctl.cjs ] && [ -f build/Release/sd_notify.node ] \
  || die "dist/ or build/Release/sd_notify.node missing: npm ci && npm run build"

# 2. the staged root
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/root"
APP=/opt/stemedb-agent
A="$ROOT$APP"
install -d "$A/dist" "$A/build/Release" "$A/node/bin"
cp -a dist/core dist/agent dist/collectors dist/judge dist/remediators dist/agentctl.cjs "$A/dist/"
find "$A/dist" -name '*.map' -delete
install -m 0644 build/Release/sd_notify.node "$A/build/Release/sd_notify.node"
strip --strip-unneeded "$A/build/Release/sd_notify.node"
install -m 0644 package.json package-lock.json "$A/"
say "production dependencies (npm ci --omit=dev on Node $NODE_VERSION)"
# --ignore-scripts: the root's install script builds the addon from source (done above); the
# dependencies have none (better-sqlite3 13 carries its Node-API binary, checked below).
(cd "$A" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
# What the runtime never reads: other platforms' binaries, sources, headers, docs.
find "$A/node_modules/better-sqlite3/prebuilds" -type f ! -name 'linux-x64.node' -delete
rm -rf "$A/node_modules/better-sqlite3/src" "$A/node_modules/better-sqlite3/deps" \
  "$A/node_modules/better-sqlite3/binding.gyp" "$A/node_modules/node-addon-api" "$A/node_modules/.package-lock.json"
find "$A/node_modules" \( -name '*.md' -o -name '*.markdown' -o -name '*.map' -o -name '*.ts' -o -name '*.html' \
  -o -name '.npmignore' -o -name '.git*' -o -name '.eslintrc*' -o -name '.travis.yml' -o -name '.github' \
  -o -name '.taprc' -o -name '.nycrc' -o -name '.editorconfig' -o -name '.prettierrc*' \
  -o \( -type d \( -name test -o -name tests -o -name __tests__ -o -name benchmarks -o -name docs -o -name example \
  -o -name examples \) \) \) -prune -exec rm -rf {} +
find "$A/node_modules" -type d -empty -delete
# The command-line entry points and maintenance scripts of dependencies are never run (the agent
# imports them as libraries).
rm -rf "$A/node_modules/.bin" "$A/node_modules/pino/bin.js" "$A/node_modules/pino-pretty/bin.js" \
  "$A/node_modules/systeminformation/lib/cli.js"
find "$A/node_modules" \( -name '*.sh' -o -name '.husky' \) -prune -exec rm -rf {} +
strip --strip-unneeded "$A/node_modules/better-sqlite3/prebuilds/linux-x64.node"
# Our scripts run through the packaged node (wrappers, unit), never through their #! line.
sed -i '1{/^#!/d}' "$A/dist/agent/main.js" "$A/dist/agentctl.cjs" "$A/dist/agent/cli/agentctl.js"
install -m 0755 "$RUNTIME/bin/node" "$A/node/bin/node"
strip --strip-unneeded "$A/node/bin/node"
install -m 0644 "$RUNTIME/LICENSE" "$A/node/LICENSE"

# The staged tree must run on its own node: the agent, its configuration, both native modules,
# and agentctl's external modules (systeminformation, tar-stream: `agentctl bundle`).
SN="$A/node/bin/node"
"$SN" "$A/dist/agent/main.js" --version >/dev/null || die "the staged agent does not run"
"$SN" "$A/dist/agent/main.js" --print-config --config /dev/null >/dev/null || die "the staged agent cannot load its configuration"
(cd "$A" && "$SN" -e '
  new (require("better-sqlite3"))(":memory:").prepare("select 1").get();
  if (typeof require("./build/Release/sd_notify.node").send !== "function") process.exit(1);
  require("systeminformation"); require("tar-stream");
') || die "a native or external module does not load on the staged Node $NODE_VERSION"

# exec keeps the PID: under systemd the agent is the unit's main PID (NotifyAccess=main).
install -d "$ROOT/usr/bin"
printf '#!/bin/sh\nexec %s %s "$@"\n' "$APP/node/bin/node" "$APP/dist/agent/main.js" >"$ROOT/usr/bin/stemedb-agent"
# NODE_EXTRA_CA_CERTS would make Node parse the whole CA bundle at each start (~35 ms).
printf '#!/bin/sh\nunset NODE_EXTRA_CA_CERTS\nexec %s %s "$@"\n' "$APP/node/bin/node" "$APP/dist/agentctl.cjs" \
  >"$ROOT/usr/bin/agentctl"
chmod 0755 "$ROOT/usr/bin/stemedb-agent" "$ROOT/usr/bin/agentctl"

# The unit runs the packaged node directly (no wrapper in between).
install -d "$ROOT/usr/lib/systemd/system" "$ROOT/usr/lib/sysusers.d" "$ROOT/usr/lib/tmpfiles.d"
sed -e "s|^ExecStart=/usr/bin/stemedb-agent |ExecStart=$APP/node/bin/node $APP/dist/agent/main.js |" \
  -e "s|^ExecStopPost=-+/usr/bin/stemedb-agent |ExecStopPost=-+$APP/node/bin/node $APP/dist/agent/main.js |" \
  -e "s|^Documentation=.*|Documentation=file:///usr/share/doc/stemedb-agent/README.md.gz|" \
  -e "s|^# Installed by scripts/install.sh.*|# Installed by the stemedb-agent Debian package (scripts/package.sh).|" \
  systemd/stemedb-agent.service >"$ROOT/usr/lib/systemd/system/stemedb-agent.service"
grep -q "^ExecStart=$APP/node/bin/node " "$ROOT/usr/lib/systemd/system/stemedb-agent.service" \
  || die "ExecStart= not rewritten"
grep -q "^ExecStopPost=-+$APP/node/bin/node " "$ROOT/usr/lib/systemd/system/stemedb-agent.service" \
  || die "ExecStopPost= not rewritten"
install -m 0644 systemd/stemedb-agent.sysusers.conf "$ROOT/usr/lib/sysusers.d/stemedb-agent.conf"
install -m 0644 systemd/stemedb-agent.tmpfiles.conf "$ROOT/usr/lib/tmpfiles.d/stemedb-agent.conf"
install -D -m 0644 systemd/agent.toml "$ROOT/etc/stemedb/agent.toml"
install -d "$ROOT/usr/share/stemedb-agent"
cp -a monitoring/. "$ROOT/usr/share/stemedb-agent/"
# The bio collector's optional drop-in (CAP_BPF, CAP_PERFMON): shipped, never active until copied.
install -m 0644 systemd/bio.conf "$ROOT/usr/share/stemedb-agent/bio.conf"

D="$ROOT/usr/share/doc/stemedb-agent"
install -d "$D"
install -m 0644 packaging/deb/copyright "$D/copyright"
gzip -9n <README.md >"$D/README.md.gz"
sed -e "s|@VERSION@|$VERSION|" -e "s|@COMMIT@|$(git rev-parse --short HEAD 2>/dev/null || echo unknown)|" \
  -e "s|@NODE@|$NODE_VERSION|" -e "s|@DATE@|$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")|" \
  packaging/deb/changelog.in | gzip -9n >"$D/changelog.Debian.gz"
install -D -m 0644 packaging/deb/lintian-overrides "$ROOT/usr/share/lintian/overrides/stemedb-agent"

# 3. control: dependencies from the shipped ELF files (dpkg-shlibdeps), plus what the maintainer
# scripts call (systemd-sysusers, systemd-tmpfiles; deb-systemd-helper/-invoke)
mkdir -p "$WORK/shlibs/debian"
printf 'Source: stemedb-agent\n\nPackage: stemedb-agent\nArchitecture: amd64\n' >"$WORK/shlibs/debian/control"
ELF=$(cd "$ROOT" && find . -type f \( -name '*.node' -o -path ./opt/stemedb-agent/node/bin/node \) | sed "s|^\.|$ROOT|")
# shellcheck disable=SC2086
SHLIBS=$(cd "$WORK/shlibs" && dpkg-shlibdeps -O $ELF 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$SHLIBS" ] || die "dpkg-shlibdeps found no dependencies"
DEPENDS="$SHLIBS, systemd (>= 247), init-system-helpers (>= 1.54~)"

find "$ROOT" -type d -exec chmod 0755 {} +
# Executable: the node binary and the two wrappers only (node reads every script it runs).
find "$ROOT" -type f -exec chmod 0644 {} +
chmod 0755 "$A/node/bin/node" "$ROOT/usr/bin/stemedb-agent" "$ROOT/usr/bin/agentctl"
install -d "$ROOT/DEBIAN"
SIZE=$(du -sk --apparent-size --exclude=DEBIAN "$ROOT" | cut -f1)
sed -e "s|@VERSION@|$VERSION|" -e "s|@INSTALLED_SIZE@|$SIZE|" -e "s|@DEPENDS@|$DEPENDS|" \
  packaging/deb/control.in >"$ROOT/DEBIAN/control"
install -m 0644 packaging/deb/conffiles "$ROOT/DEBIAN/conffiles"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$ROOT/DEBIAN/"
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f ! -path './etc/*' -printf '%P\0' | sort -z \
  | xargs -0 md5sum) >"$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/md5sums"

DEB="$OUT/stemedb-agent_${VERSION}_amd64.deb"
mkdir -p "$OUT"
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >/dev/null
say "built $DEB: $(du -k --apparent-size "$DEB" | awk '{printf "%.1f MiB", $1/1024}'), installed $(awk -v k="$SIZE" 'BEGIN{printf "%.1f MiB", k/1024}')"
say "depends: $DEPENDS"
if [ "$LINTIAN" = 1 ]; then
  if command -v lintian >/dev/null; then
    lintian --fail-on error,warning "$DEB" \
      || die "lintian found problems (above)"
    say "lintian: clean (overrides: packaging/deb/lintian-overrides)"
  else
    say "lintian not installed: not checked (bash scripts/test-deps.sh installs it)"
  fi
fi
