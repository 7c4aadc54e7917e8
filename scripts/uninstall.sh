#!/usr/bin/env bash
# Removes what scripts/install.sh installed. Run as root:
#
#   sudo scripts/uninstall.sh            keeps the history (/var/lib/stemedb-agent) and the
#                                        configuration (/etc/stemedb/agent.toml)
#   sudo scripts/uninstall.sh --purge    removes those too, and the stemedb-agent user and group
#
# Stopping the service runs its ExecStopPost=, which resumes any backup unit the agent paused.
set -euo pipefail

# shellcheck source=scripts/install-paths.sh
. "$(dirname "$0")/install-paths.sh"

say() { printf 'uninstall: %s\n' "$*"; }
die() { printf 'uninstall: error: %s\n' "$*" >&2; exit 1; }

purge=0
for a in "$@"; do
  case "$a" in
    --purge) purge=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) die "unknown argument: $a (usage: $0 [--purge])" ;;
  esac
done
[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"

if [ -d /run/systemd/system ]; then
  systemctl disable --now "$UNIT" 2>/dev/null || true
  systemctl reset-failed "$UNIT" 2>/dev/null || true
fi
rm -f "$UNITDIR/$UNIT" "$SYSUSERSDIR/stemedb-agent.conf" "$TMPFILESDIR/stemedb-agent.conf"
for b in stemedb-agent agentctl; do
  # only our own: a wrapper install.sh wrote, or a symlink into LIBDIR (installs before the wrappers)
  if [ -L "$BINDIR/$b" ] && [[ "$(readlink "$BINDIR/$b")" == "$LIBDIR"/* ]]; then rm -f "$BINDIR/$b"; fi
  if [ -f "$BINDIR/$b" ] && grep -q "installed by stemedb-agent scripts/install.sh" "$BINDIR/$b"; then rm -f "$BINDIR/$b"; fi
done
rm -rf "$LIBDIR" "$LIBDIR.old" "$RUNDIR"
[ -d /run/systemd/system ] && systemctl daemon-reload
say "removed the agent, its commands, unit and snippets"

if [ "$purge" = 1 ]; then
  rm -rf "$STATEDIR"
  rm -f "$CONFDIR/agent.toml"
  rmdir "$CONFDIR" 2>/dev/null || true
  if getent passwd stemedb-agent >/dev/null; then userdel stemedb-agent 2>/dev/null || say "could not remove user stemedb-agent"; fi
  if getent group stemedb-agent >/dev/null; then groupdel stemedb-agent 2>/dev/null || say "could not remove group stemedb-agent"; fi
  say "purged $STATEDIR, $CONFDIR/agent.toml and the stemedb-agent user and group"
else
  say "kept $STATEDIR (history) and $CONFDIR/agent.toml; --purge removes them"
fi
