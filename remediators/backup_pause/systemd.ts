// Talking to PID 1 through systemctl and systemd-run (configurable paths, so tests can point
// them into a container). Every call has a timeout: a wedged systemd must not wedge the agent.
// Facts behind the choices (systemd 252): freeze/thaw need cgroup v2 (v1 says "does not support
// freezing", hence the SIGSTOP fallback); uid 0 on PID 1's private socket needs no polkit.
import { run } from "../../core/exec.js";

export type UnitKind = "service" | "timer";

/** How a unit is held: frozen by the cgroup v2 freezer, SIGSTOPped through systemd, or (a timer) stopped. */
export type PauseMethod = "freeze" | "sigstop" | "stop-timer";

export interface UnitState {
  readonly unit: string;
  readonly kind: UnitKind;
  /** LoadState: "loaded", "not-found", "masked", ... */
  readonly load: string;
  /** ActiveState: "active", "inactive", "failed", "activating", "deactivating", ... */
  readonly active: string;
  readonly sub: string;
  /** FreezerState: "running", "frozen", "freezing", "thawing" ("" on timers and old systemd). */
  readonly freezer: string;
  readonly canFreeze: boolean;
  /** WatchdogUSec in µs; a unit with a watchdog is never frozen (systemd 252 wedges it). */
  readonly watchdogUsec: number;
  readonly mainPid: number;
}

export const unitKind = (unit: string): UnitKind => (unit.endsWith(".timer") ? "timer" : "service");

/** `systemctl show` output (KEY=VALUE lines) as a map. Pure. */
export function parseShow(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}

export const SHOW_PROPS = [
  "LoadState",
  "ActiveState",
  "SubState",
  "FreezerState",
  "CanFreeze",
  "WatchdogUSec",
  "MainPID",
] as const;

/** A unit's state from its properties. WatchdogUSec is printed as a time span ("3s", "0", "infinity"). Pure. */
export function unitState(unit: string, p: ReadonlyMap<string, string>): UnitState {
  return {
    unit,
    kind: unitKind(unit),
    load: p.get("LoadState") ?? "",
    active: p.get("ActiveState") ?? "",
    sub: p.get("SubState") ?? "",
    freezer: p.get("FreezerState") ?? "",
    canFreeze: p.get("CanFreeze") === "yes",
    watchdogUsec: parseTimespanUsec(p.get("WatchdogUSec") ?? "0"),
    mainPid: Number(p.get("MainPID") ?? 0) || 0,
  };
}

const SPAN_UNITS: Record<string, number> = {
  us: 1,
  usec: 1,
  ms: 1e3,
  msec: 1e3,
  s: 1e6,
  sec: 1e6,
  min: 60e6,
  h: 3600e6,
  d: 86400e6,
};

/** systemd's printed time span ("0", "3s", "1min 30s", "infinity") in µs; unknown text counts as set. Pure. */
export function parseTimespanUsec(text: string): number {
  const t = text.trim();
  if (t === "" || t === "0") return 0;
  if (t === "infinity") return Infinity;
  let total = 0;
  for (const part of t.split(/\s+/)) {
    const m = /^(\d+(?:\.\d+)?)([a-z]*)$/.exec(part);
    const scale = m ? (m[2] === "" ? 1 : SPAN_UNITS[m[2] ?? ""]) : undefined;
    if (!m || scale === undefined) return Infinity;
    total += Number(m[1]) * scale;
  }
  return total;
}

/** The transient timer that resumes a unit even if the agent is dead. One per unit, named for it. */
export function deadmanName(unit: string): string {
  return `stemedb-agent-resume-${unit.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

export class SystemdError extends Error {
  override readonly name = "SystemdError";
  constructor(
    readonly args: readonly string[],
    readonly stderr: string,
    readonly code: number | null,
  ) {
    super(`systemctl ${args.join(" ")}: ${stderr.trim() || `exit ${code}`}`);
  }
  /** cgroup v1 (or a systemd without the freezer) answers this to `freeze`. */
  get freezeUnsupported(): boolean {
    return /does not support freezing|not supported|Unknown command verb/i.test(this.stderr);
  }
}

export class Systemd {
  constructor(
    private readonly systemctl: string,
    private readonly systemdRun: string,
    private readonly timeoutMs = 15_000,
  ) {}

  async call(args: readonly string[], bin = this.systemctl): Promise<string> {
    const r = await run(bin, args, {
      signal: AbortSignal.timeout(this.timeoutMs),
      maxOutput: 1 << 20,
    });
    if (r.code !== 0) throw new SystemdError(args, r.stderr || r.stdout, r.code);
    return r.stdout;
  }

  async show(unit: string): Promise<UnitState> {
    return unitState(
      unit,
      parseShow(await this.call(["show", ...SHOW_PROPS.map((p) => `--property=${p}`), "--", unit])),
    );
  }

  /** The command that undoes `method` on `unit`: what the dead-man timer runs, and what resume runs. */
  resumeArgs(unit: string, method: PauseMethod): string[] {
    switch (method) {
      case "freeze":
        return ["thaw", "--", unit];
      case "sigstop":
        return ["kill", "--signal=SIGCONT", "--kill-who=all", "--", unit];
      case "stop-timer":
        return ["start", "--", unit];
    }
  }

  pauseArgs(unit: string, method: PauseMethod): string[] {
    switch (method) {
      case "freeze":
        return ["freeze", "--", unit];
      case "sigstop":
        return ["kill", "--signal=SIGSTOP", "--kill-who=all", "--", unit];
      case "stop-timer":
        return ["stop", "--", unit];
    }
  }

  pause(unit: string, method: PauseMethod): Promise<string> {
    return this.signalled(this.pauseArgs(unit, method));
  }

  resume(unit: string, method: PauseMethod): Promise<string> {
    return this.signalled(this.resumeArgs(unit, method));
  }

  /**
   * systemctl kill --kill-who=all can fail on the unit's other processes ("Failed to send signal
   * ... to auxiliary processes: Input/output error", seen on a cgroup v1 systemd 252) after the
   * main process got it: then the main process alone, and the caller verifies the state.
   */
  private async signalled(args: string[]): Promise<string> {
    try {
      return await this.call(args);
    } catch (e) {
      if (
        args[0] !== "kill" ||
        !(e instanceof SystemdError) ||
        !/auxiliary processes/.test(e.stderr)
      )
        throw e;
      return this.call(args.map((a) => (a === "--kill-who=all" ? "--kill-who=main" : a)));
    }
  }

  /**
   * Arms the dead-man's switch: a transient timer in PID 1 that resumes the unit after
   * `seconds` whatever happens to the agent. A leftover of the same name is cleared first
   * (arming an existing name fails on 252).
   */
  async arm(unit: string, method: PauseMethod, seconds: number): Promise<string> {
    const name = deadmanName(unit);
    await this.disarm(unit);
    await this.call(
      [
        `--unit=${name}`,
        `--on-active=${Math.max(1, Math.ceil(seconds))}s`,
        "--timer-property=AccuracySec=1s",
        `--description=stemedb-agent dead-man's switch: resume ${unit}`,
        "--",
        ...this.deadmanCommand(unit, method),
      ],
      this.systemdRun,
    );
    return name;
  }

  /** What the switch runs: the resume command; for SIGCONT with the same main-process fallback as signalled(). */
  deadmanCommand(unit: string, method: PauseMethod): string[] {
    const args = this.resumeArgs(unit, method);
    if (method !== "sigstop") return [this.systemctl, ...args];
    const q = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;
    const all = [this.systemctl, ...args].map(q).join(" ");
    return ["/bin/sh", "-c", `${all} || ${all.replace("--kill-who=all", "--kill-who=main")}`];
  }

  /** Stops the switch (normal resume); a missing one is fine. */
  async disarm(unit: string): Promise<void> {
    const name = deadmanName(unit);
    for (const args of [
      ["stop", "--", `${name}.timer`, `${name}.service`],
      ["reset-failed", "--", `${name}.timer`, `${name}.service`],
    ]) {
      try {
        await this.call(args);
      } catch {
        // not loaded: nothing to disarm
      }
    }
  }

  /** Whether the switch for `unit` is still waiting to fire. */
  async armed(unit: string): Promise<boolean> {
    try {
      const p = parseShow(
        await this.call(["show", "--property=ActiveState", "--", `${deadmanName(unit)}.timer`]),
      );
      return p.get("ActiveState") === "active";
    } catch {
      return false;
    }
  }
}
