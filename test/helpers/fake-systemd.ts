// Fake systemctl and systemd-run (remediators.backup_pause.systemctl / systemd_run) that keep unit
// states in files and append every call, in order, to one log. Both insist on the agent's command
// line discipline: unit names only after "--" (systemctl), options then "--" then the command
// (systemd-run); a call that breaks it fails with exit 64 and is logged like any other.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface FakeSystemd {
  readonly systemctl: string;
  readonly systemdRun: string;
  /** Every call so far, one line each: "systemctl ARGS..." or "systemd-run ARGS...". */
  calls(): string[];
  /** A unit's ActiveState: "active" or "inactive" (the default). */
  setActive(unit: string, active: boolean): void;
  freezer(unit: string): string;
  active(unit: string): string;
  /** Makes "systemd-run", or a systemctl verb, fail with exit 1 until cleared. */
  fail(what: string, on?: boolean): void;
  /** The agent's TOML lines for [remediators.backup_pause]. */
  readonly toml: string;
}

const SYSTEMCTL = (d: string) =>
  `#!/bin/sh
D='${d}'
printf 'systemctl' >> "$D/calls"; for a in "$@"; ` +
  `do printf ' %s' "$a" >> "$D/calls"; done; echo >> "$D/calls"
verb=""; units=""; seen=0
` +
  `for a in "$@"; do
  if [ $seen = 1 ]; then units="$units $a"; continue; fi
` +
  `  case "$a" in --) seen=1 ;; -*) ;; *) [ -z "$verb" ] && verb="$a" ;; esac
done
` +
  `[ $seen = 1 ] || { echo "fake systemctl: unit names must follow --" >&2; exit 64; }
` +
  `[ -e "$D/fail-$verb" ] && { echo "fake systemctl: $verb failed" >&2; exit 1; }
for u in $units; do
` +
  `  f="$D/u/$u"
  case "$verb" in
    show) printf ` +
  `'LoadState=loaded\\nActiveState=%s\\nSubState=running\\nFreezerState=%s\\nCanFreeze=yes\\nWatchdogUS` +
  `ec=0\\nMainPID=0\\n' \\
      "$(cat "$f.active" 2>/dev/null || echo inactive)" "$(cat "$f.freezer" ` +
  `2>/dev/null || echo running)" ;;
    freeze) echo frozen > "$f.freezer" ;;
` +
  `    thaw) echo running > "$f.freezer" ;;
    stop) echo inactive > "$f.active" ;;
` +
  `    start) echo active > "$f.active" ;;
  esac
done
exit 0
`;

const SYSTEMD_RUN = (d: string) =>
  `#!/bin/sh
D='${d}'
printf 'systemd-run' >> "$D/calls"; for a in "$@"; ` +
  `do printf ' %s' "$a" >> "$D/calls"; done; echo >> "$D/calls"
` +
  `[ -e "$D/fail-systemd-run" ] && { echo "Failed to start transient timer unit: fake failure" >&2; ` +
  `exit 1; }
unit=""; seen=0
for a in "$@"; do
  [ $seen = 1 ] && break
  case "$a" in --) seen=1 ;; ` +
  `--unit=*) unit="\${a#--unit=}" ;; -*) ;; *) echo "fake systemd-run: $a before --" >&2; exit 64 ;; ` +
  `esac
done
[ $seen = 1 ] && [ -n "$unit" ] || { echo "fake systemd-run: no --unit= or no --" >&2; ` +
  `exit 64; }
echo active > "$D/u/$unit.timer.active"
`;

export function fakeSystemd(dir: string): FakeSystemd {
  const d = join(dir, "fake-systemd");
  mkdirSync(join(d, "u"), { recursive: true });
  writeFileSync(join(d, "calls"), "");
  const systemctl = join(d, "systemctl");
  const systemdRun = join(d, "systemd-run");
  writeFileSync(systemctl, SYSTEMCTL(d));
  writeFileSync(systemdRun, SYSTEMD_RUN(d));
  chmodSync(systemctl, 0o755);
  chmodSync(systemdRun, 0o755);
  const read = (f: string, dflt: string) => (existsSync(f) ? readFileSync(f, "utf8").trim() : dflt);
  return {
    systemctl,
    systemdRun,
    calls: () =>
      readFileSync(join(d, "calls"), "utf8")
        .split("\n")
        .filter((l) => l !== ""),
    setActive: (unit, on) =>
      writeFileSync(join(d, "u", `${unit}.active`), on ? "active\n" : "inactive\n"),
    freezer: (unit) => read(join(d, "u", `${unit}.freezer`), "running"),
    active: (unit) => read(join(d, "u", `${unit}.active`), "inactive"),
    fail: (what, on = true) =>
      on
        ? writeFileSync(join(d, `fail-${what}`), "")
        : rmSync(join(d, `fail-${what}`), { force: true }),
    toml: `systemctl = "${systemctl}"\nsystemd_run = "${systemdRun}"\n`,
  };
}
