// smart: SMART health of every disk, from smartctl --json. Each device is polled on its own
// schedule (every `interval`, staggered) by a background run with a wall-clock timeout that kills
// smartctl's process group; the collector's own tick only starts due runs and returns the latest
// results, so a hung smartctl never blocks the agent, a scrape or another device, and never piles
// up (a device whose smartctl will not die is not polled again until it does).
import { readdirSync } from "node:fs";
import { ExecError, run } from "../../core/exec.js";
import { errorMessage } from "../../core/errors.js";
import type { Logger } from "../../core/log.js";
import type { CollectContext, Collector, HistoryReader } from "../../core/collector.js";
import { isolatedCommand } from "./isolate.js";
import { classify, type CollectState } from "./classify.js";
import { decodeExitStatus, parseScan, parseSmart, type SmartReport } from "./parse.js";
import {
  advanceTrend,
  readTrendState,
  RISE_WINDOW_MS,
  type TrendState,
  type Trends,
  trendView,
} from "./trend.js";
import { enduranceUsed, judge, predictiveCounters } from "./verdict.js";
import type { DeviceResult, SmartObservation, SmartPoll } from "./observation.js";

/** Discovery opens every disk: rarely. */
const RESCAN_MS = 30 * 60_000;
/** Gap between first polls of successive devices, so they never all hit the HBA at once. */
const STAGGER_MS = 3_000;

export interface SmartOptions {
  readonly smartctl: string;
  /** Run each smartctl in its own sandboxed transient unit through this systemd-run; null: directly. */
  readonly isolateWith: string | null;
  readonly interval: number;
  readonly timeout: number;
  /** Extra devices: "NAME" or "NAME;TYPE" (e.g. "/dev/bus/0;megaraid,1"). */
  readonly devices: readonly string[];
  /** How long a rise counts as current for the counters judged on growth (default RISE_WINDOW_MS, 7 d). */
  readonly growthWindow?: number;
  readonly sysPath: string;
  readonly devPath: string;
  /** --once: wait for every device's run instead of returning what is known. */
  readonly waitForRuns: boolean;
  /** Where the drives' baselines were kept (the history's state); null: none (--once). */
  readonly state: HistoryReader | null;
  /** The core's route for each poll's result, as it ends. */
  readonly emit: (poll: SmartPoll) => void;
  readonly log: Logger;
}

interface Slot {
  readonly name: string;
  readonly type: string;
  /** The type smartctl detected on an earlier poll: passed with -d afterwards, because
   *  autodetection itself may wake a sleeping disk before -n standby is honoured (smartctl(8)). */
  detectedType: string | null;
  readonly label: string;
  readonly fromScan: boolean;
  nextDue: number;
  running: Promise<void> | null;
  lingeringPid: number | null;
  result: DeviceResult | null;
  /** Last result with health data, kept while the disk sleeps. */
  lastOk: DeviceResult | null;
  /** smartctl's own output of the last run, and of the last run with health data (for bundles). */
  raw: { json: string; at: string } | null;
  rawOk: { json: string; at: string } | null;
}

/** What smartctl printed on one of the agent's runs: the diagnostic bundle carries it as is. */
export interface SmartRawReport {
  readonly device: string;
  readonly name: string;
  readonly which: "last" | "last-awake";
  readonly collected_at: string;
  readonly json: string;
}

export function deviceLabel(name: string, type: string): string {
  const base = name
    .replace(/^\/dev\//, "")
    .replace(/^disk\/by-id\//, "")
    .replace(/\//g, "_");
  return type.includes(",") ? `${base}_${type.replace(/[,+]/g, "_")}` : base;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class SmartCollector implements Collector<SmartObservation> {
  readonly name = "smart";
  private readonly slots = new Map<string, Slot>();
  private lastScan = -Infinity;
  private discovering: Promise<void> | null = null;
  private smartctlError: string | null = null;
  private readonly stop = new AbortController();
  /** Counter history per drive (read from the history's state once, then kept here). */
  private readonly trends = new Map<string, TrendState>();

  private readonly growthWindow: number;

  constructor(private readonly opts: SmartOptions) {
    this.growthWindow = opts.growthWindow ?? RISE_WINDOW_MS;
    for (const spec of opts.devices)
      this.addSlot(spec.split(";")[0] ?? spec, spec.split(";")[1] ?? "", false, 0);
  }

  async collect(_ctx: CollectContext): Promise<SmartObservation> {
    const now = Date.now();
    if (now - this.lastScan >= RESCAN_MS && !this.discovering) {
      this.lastScan = now;
      this.discovering = this.discover().finally(() => (this.discovering = null));
    }
    if (this.opts.waitForRuns && this.discovering) await this.discovering;
    const started: Promise<void>[] = [];
    for (const s of this.slots.values()) {
      if (s.running || Date.now() < s.nextDue) continue;
      if (s.lingeringPid !== null) {
        if (pidAlive(s.lingeringPid)) continue; // the last smartctl is still stuck in the kernel
        s.lingeringPid = null;
      }
      s.nextDue = Date.now() + this.opts.interval;
      s.running = this.poll(s).finally(() => (s.running = null));
      started.push(s.running);
    }
    if (this.opts.waitForRuns) await Promise.all(started);
    return {
      smartctl_error: this.smartctlError,
      devices: [...this.slots.values()].flatMap((s) => (s.result ? [s.result] : [])),
    };
  }

  close(): void {
    this.stop.abort(new Error("agent stopping"));
  }

  private addSlot(name: string, type: string, fromScan: boolean, index: number): void {
    const key = `${name};${type}`;
    if (
      this.slots.has(key) ||
      [...this.slots.values()].some((s) => s.name === name && (s.type === type || !s.type || !type))
    )
      return;
    this.slots.set(key, {
      name,
      type,
      detectedType: null,
      label: deviceLabel(name, type),
      fromScan,
      nextDue: this.opts.waitForRuns ? 0 : Date.now() + index * STAGGER_MS,
      running: null,
      lingeringPid: null,
      result: null,
      lastOk: null,
      raw: null,
      rawOk: null,
    });
  }

  /** smartctl --scan-open, plus the physical disks sysfs knows (smartctl's scan skips virtio and others). */
  private async discover(): Promise<void> {
    const found: Array<{ name: string; type: string }> = [];
    try {
      const cmd = this.command(["--scan-open", "--json=c"]);
      const r = await run(cmd.file, cmd.args, {
        signal: AbortSignal.any([this.stop.signal, AbortSignal.timeout(this.opts.timeout)]),
      });
      const scan = parseScan(r.stdout);
      if ("error" in scan)
        this.opts.log.warn({ err: scan.error }, "smart: cannot read smartctl --scan-open output");
      else for (const d of scan.devices) found.push({ name: d.name, type: d.type });
      this.smartctlError = null;
    } catch (e) {
      if (e instanceof ExecError && e.kind === "spawn") {
        if (this.smartctlError === null)
          this.opts.log.error(
            { smartctl: this.opts.smartctl, err: e.message },
            "smart: cannot run smartctl; install smartmontools or set collectors.smart.smartctl",
          );
        this.smartctlError = `cannot run ${this.opts.smartctl}: ${e.message}`;
        return;
      }
      this.opts.log.warn({ err: errorMessage(e) }, "smart: device scan failed");
    }
    try {
      for (const n of readdirSync(`${this.opts.sysPath}/block`).sort()) {
        // A physical disk has a "device" link; loop, dm, md, zram, ram have none.
        try {
          readdirSync(`${this.opts.sysPath}/block/${n}/device`);
        } catch {
          continue;
        }
        found.push({ name: `${this.opts.devPath}/${n.replace(/!/g, "/")}`, type: "" });
      }
    } catch {
      // no sysfs
    }
    found.forEach((d, i) => this.addSlot(d.name, d.type, true, i + this.slots.size));
  }

  private command(args: string[]): { file: string; args: string[] } {
    return this.opts.isolateWith
      ? isolatedCommand(this.opts.isolateWith, this.opts.smartctl, args, this.opts.timeout)
      : { file: this.opts.smartctl, args };
  }

  private async poll(s: Slot): Promise<void> {
    const t0 = performance.now();
    const type = s.type || s.detectedType;
    const args = ["--json=c", "-a", "-n", "standby", ...(type ? ["-d", type] : []), s.name];
    let result: DeviceResult;
    let baseline: SmartPoll["baseline"] = null;
    try {
      const cmd = this.command(args);
      const r = await run(cmd.file, cmd.args, {
        signal: AbortSignal.any([this.stop.signal, AbortSignal.timeout(this.opts.timeout)]),
        killGrace: 2000,
      });
      const report = parseSmart(r.stdout);
      const seconds = (performance.now() - t0) / 1000;
      s.raw = { json: r.stdout, at: new Date().toISOString() };
      if ("error" in report)
        result = this.failed(
          s,
          "error",
          `unreadable smartctl output (exit ${r.code}): ${report.error}`,
          r.code,
          seconds,
        );
      else ({ result, baseline } = this.interpret(s, report, r.code, seconds));
    } catch (e) {
      const seconds = (performance.now() - t0) / 1000;
      s.raw = null; // no output of this run: the one before it is not "the last"
      if (e instanceof ExecError && e.kind === "aborted") {
        if (this.stop.signal.aborted) return;
        if (e.lingering && e.pid !== undefined) s.lingeringPid = e.pid;
        result = this.failed(
          s,
          "unresponsive",
          `smartctl did not finish within ${this.opts.timeout / 1000}s; ` +
            `killed${e.lingering ? " (still stuck in the kernel)" : ""}`,
          null,
          seconds,
        );
      } else result = this.failed(s, "error", errorMessage(e), null, seconds);
    }
    s.result = result;
    if (result.state === "ok") s.rawOk = s.raw;
    this.opts.emit({ result, baseline });
  }

  /**
   * smartctl's output of each disk's last run (and of its last run with health data, when the
   * disk has slept since): what the agent already has, so a bundle never runs smartctl itself.
   */
  rawReports(): SmartRawReport[] {
    const out: SmartRawReport[] = [];
    for (const s of this.slots.values()) {
      const base = { device: s.label, name: s.name };
      if (s.raw) out.push({ ...base, which: "last", collected_at: s.raw.at, json: s.raw.json });
      if (s.rawOk && s.rawOk !== s.raw)
        out.push({ ...base, which: "last-awake", collected_at: s.rawOk.at, json: s.rawOk.json });
    }
    return out;
  }

  private interpret(
    s: Slot,
    report: SmartReport,
    code: number | null,
    seconds: number,
  ): { result: DeviceResult; baseline: SmartPoll["baseline"] } {
    const { state, detail } = classify(report, code);
    const exit = report.exitStatus ?? code;
    if (state !== "ok") {
      const base = this.failed(s, state, detail, exit, seconds);
      // Asleep: keep the health it had when last awake.
      const result: DeviceResult =
        state === "standby" && s.lastOk
          ? {
              ...s.lastOk,
              state,
              detail,
              exit_status: exit,
              exit_bits: decodeExitStatus(exit ?? 0),
              collected_at: base.collected_at,
              seconds,
            }
          : base;
      return { result, baseline: null };
    }
    if (!s.type && report.device?.type) s.detectedType = report.device.type;
    const counters = predictiveCounters(report);
    const { trends, baseline } = this.trend(s, report, counters);
    const v = judge(report, trends, { growthWindowMs: this.growthWindow });
    const wear = enduranceUsed(report);
    const result: DeviceResult = {
      device: s.label,
      name: s.name,
      type: report.device?.type ?? s.type,
      state,
      detail,
      verdict: v.verdict,
      reasons: v.reasons,
      exit_status: exit,
      exit_bits: decodeExitStatus(exit ?? 0),
      model: report.identity.model,
      serial: report.identity.serial,
      firmware: report.identity.firmware,
      protocol: report.device?.protocol ?? null,
      temperature_celsius: report.temperature.current,
      power_on_hours: report.powerOnHours,
      counters,
      wear: wear ? { percent_used: wear.percentUsed, source: wear.source } : null,
      collected_at: new Date().toISOString(),
      seconds,
    };
    s.lastOk = result;
    return { result, baseline };
  }

  private failed(
    s: Slot,
    state: CollectState,
    detail: string | null,
    exit: number | null,
    seconds: number,
  ): DeviceResult {
    const prev = s.lastOk;
    return {
      device: s.label,
      name: s.name,
      type: s.type,
      state,
      detail,
      verdict: "unknown",
      reasons: detail ? [{ level: "info", code: state, message: detail }] : [],
      exit_status: exit,
      exit_bits: decodeExitStatus(exit ?? 0),
      model: prev?.model ?? null,
      serial: prev?.serial ?? null,
      firmware: prev?.firmware ?? null,
      protocol: prev?.protocol ?? null,
      temperature_celsius: null,
      power_on_hours: null,
      counters: {},
      wear: null,
      collected_at: new Date().toISOString(),
      seconds,
    };
  }

  /**
   * smartd's attribute-change tracking, but persistent: the counters, when each was first
   * seen and its last rise are kept in the history's state table by drive identity, so an
   * agent restart still knows that reallocations grew since yesterday, and the verdict can
   * tell a rising CRC count from an old one (trend.ts).
   */
  private trend(
    s: Slot,
    report: SmartReport,
    counters: Record<string, number>,
  ): { trends: Trends; baseline: SmartPoll["baseline"] } {
    const h = this.opts.state;
    const serial = report.identity.serial;
    const id = serial ? `${report.identity.model ?? ""}:${serial}` : `${s.name}`;
    const key = `smart.baseline.${id}`;
    const now = Date.now();
    const prev = this.trends.get(key) ?? (h ? readTrendState(h.getState(key)) : null);
    const { state, increases } = advanceTrend(prev, counters, now);
    this.trends.set(key, state);
    return {
      trends: trendView(state, now, this.growthWindow),
      // The core writes it with the counters, and events for the rises (sink.ts).
      baseline: { key, state, increases, at: now },
    };
  }
}
