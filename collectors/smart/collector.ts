// smart: SMART health of every disk, from smartctl --json. Each device is polled on its own
// schedule (every `interval`, staggered) by a background run with a wall-clock timeout that kills
// smartctl's process group; the collector's own tick only starts due runs and returns the latest
// results, so a hung smartctl never blocks the agent, a scrape or another device, and never piles
// up (a device whose smartctl will not die is not polled again until it does).
import { readdirSync } from "node:fs";
import type { Gauge, Registry } from "prom-client";
import { ExecError, run } from "../../core/exec.js";
import { errorMessage } from "../../core/errors.js";
import type { HistoryStore } from "../../core/history/store.js";
import type { Logger } from "../../core/log.js";
import { gauge } from "../../core/metrics/define.js";
import { NS } from "../../core/metrics/registry.js";
import type { CollectContext, Collector } from "../../core/collector.js";
import { isolatedCommand } from "./isolate.js";
import { classify, COLLECT_STATES, type CollectState } from "./classify.js";
import { decodeExitStatus, parseScan, parseSmart, type SmartReport } from "./parse.js";
import {
  advanceTrend,
  readTrendState,
  RISE_WINDOW_MS,
  type TrendState,
  type Trends,
  trendView,
} from "./trend.js";
import {
  enduranceUsed,
  EXPORTED_ATTRIBUTES,
  judge,
  predictiveCounters,
  RISING_IS_BAD,
  type SmartVerdict,
} from "./verdict.js";
import type { DeviceResult, SmartObservation } from "./observation.js";

const VERDICTS: readonly SmartVerdict[] = ["pass", "warn", "fail", "unknown"];
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
  readonly registry: Registry;
  readonly history: HistoryStore | null;
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
  private readonly gVerdict: Gauge<"device" | "verdict">;
  private readonly gState: Gauge<"device" | "state">;
  private readonly gTemp: Gauge<"device">;
  private readonly gExit: Gauge<"device">;
  private readonly gAttr: Gauge<"device" | "attribute">;
  private readonly gHours: Gauge<"device">;
  private readonly gWear: Gauge<"device">;
  /** Counter history per drive when there is no history store (else it is persisted). */
  private readonly trends = new Map<string, TrendState>();
  private readonly gLast: Gauge<"device">;
  private readonly gInfo: Gauge<"device" | "type" | "protocol" | "model" | "serial" | "firmware">;
  private readonly infoLabels = new Map<string, Record<string, string>>();

  private readonly growthWindow: number;

  constructor(private readonly opts: SmartOptions) {
    const r = opts.registry;
    this.growthWindow = opts.growthWindow ?? RISE_WINDOW_MS;
    this.gVerdict = gauge(r, {
      name: `${NS}smart_verdict`,
      help: "SMART verdict of the device as a state set: 1 for the current verdict (pass, warn, fail, unknown), 0 for the others.",
      labelNames: ["device", "verdict"],
    });
    this.gState = gauge(r, {
      name: `${NS}smart_collect_state`,
      help: "How the last SMART poll went, as a state set: ok, standby (asleep, not woken), unsupported, unresponsive (timed out), error.",
      labelNames: ["device", "state"],
    });
    this.gTemp = gauge(r, {
      name: `${NS}smart_temperature_celsius`,
      help: "Drive temperature reported by SMART.",
      labelNames: ["device"],
    });
    this.gExit = gauge(r, {
      name: `${NS}smart_exit_status`,
      help: "smartctl exit status bitmask of the last poll (see smartctl(8)).",
      labelNames: ["device"],
    });
    this.gAttr = gauge(r, {
      name: `${NS}smart_attribute_raw`,
      help: `Failure-predicting SMART counters, packed raw values decoded (Seagate 188 raw16, 1/7/195 raw24/raw32); attribute is one of: ${EXPORTED_ATTRIBUTES.map(([k, what]) => `${k} (${what})`).join(", ")}.`,
      labelNames: ["device", "attribute"],
    });
    this.gWear = gauge(r, {
      name: `${NS}smart_endurance_used_percent`,
      help: "Percent of the SSD's rated endurance used (NVMe percentage_used, ATA device statistics, or the vendor's wear attribute); may exceed 100.",
      labelNames: ["device"],
    });
    this.gHours = gauge(r, {
      name: `${NS}smart_power_on_seconds`,
      help: "Power-on time reported by SMART (whole hours).",
      labelNames: ["device"],
    });
    this.gLast = gauge(r, {
      name: `${NS}smart_last_collection_timestamp_seconds`,
      help: "Unix time of the device's last completed SMART poll.",
      labelNames: ["device"],
    });
    this.gInfo = gauge(r, {
      name: `${NS}smart_info`,
      help: "Identity of the device; always 1.",
      labelNames: ["device", "type", "protocol", "model", "serial", "firmware"],
    });
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

  publish(o: SmartObservation): void {
    for (const d of o.devices) {
      for (const v of VERDICTS)
        this.gVerdict.set({ device: d.device, verdict: v }, v === d.verdict ? 1 : 0);
      for (const st of COLLECT_STATES)
        this.gState.set({ device: d.device, state: st }, st === d.state ? 1 : 0);
      if (d.exit_status !== null) this.gExit.set({ device: d.device }, d.exit_status);
      if (d.temperature_celsius !== null)
        this.gTemp.set({ device: d.device }, d.temperature_celsius);
      if (d.wear !== null) this.gWear.set({ device: d.device }, d.wear.percent_used);
      if (d.power_on_hours !== null) this.gHours.set({ device: d.device }, d.power_on_hours * 3600);
      for (const [attribute, v] of Object.entries(d.counters))
        this.gAttr.set({ device: d.device, attribute }, v);
      this.gLast.set({ device: d.device }, Date.parse(d.collected_at) / 1000);
      const info = {
        device: d.device,
        type: d.type || "auto",
        protocol: d.protocol ?? "",
        model: d.model ?? "",
        serial: d.serial ?? "",
        firmware: d.firmware ?? "",
      };
      const prev = this.infoLabels.get(d.device);
      if (prev && JSON.stringify(prev) !== JSON.stringify(info)) this.gInfo.remove(prev);
      if (d.state === "ok" || !prev) {
        this.gInfo.set(info, 1);
        this.infoLabels.set(d.device, info);
      }
    }
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
    try {
      const cmd = this.command(args);
      const r = await run(cmd.file, cmd.args, {
        signal: AbortSignal.any([this.stop.signal, AbortSignal.timeout(this.opts.timeout)]),
        killGrace: 2000,
      });
      const report = parseSmart(r.stdout);
      const seconds = (performance.now() - t0) / 1000;
      if ("error" in report)
        result = this.failed(
          s,
          "error",
          `unreadable smartctl output (exit ${r.code}): ${report.error}`,
          r.code,
          seconds,
        );
      else result = this.interpret(s, report, r.code, seconds);
    } catch (e) {
      const seconds = (performance.now() - t0) / 1000;
      if (e instanceof ExecError && e.kind === "aborted") {
        if (this.stop.signal.aborted) return;
        if (e.lingering && e.pid !== undefined) s.lingeringPid = e.pid;
        result = this.failed(
          s,
          "unresponsive",
          `smartctl did not finish within ${this.opts.timeout / 1000}s; killed${e.lingering ? " (still stuck in the kernel)" : ""}`,
          null,
          seconds,
        );
      } else result = this.failed(s, "error", errorMessage(e), null, seconds);
    }
    this.note(s, result);
  }

  private interpret(
    s: Slot,
    report: SmartReport,
    code: number | null,
    seconds: number,
  ): DeviceResult {
    const { state, detail } = classify(report, code);
    const exit = report.exitStatus ?? code;
    if (state !== "ok") {
      const base = this.failed(s, state, detail, exit, seconds);
      // Asleep: keep the health it had when last awake.
      return state === "standby" && s.lastOk
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
    }
    if (!s.type && report.device?.type) s.detectedType = report.device.type;
    const counters = predictiveCounters(report);
    const trends = this.trend(s, report, counters);
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
    return result;
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

  /** Logs and records transitions of state and verdict, once each. */
  private note(s: Slot, r: DeviceResult): void {
    const before = s.result;
    s.result = r;
    const h = this.opts.history;
    if (!before || before.state !== r.state) {
      const quiet = r.state === "ok" || r.state === "unsupported" || r.state === "standby";
      this.opts.log[quiet ? "debug" : "warn"](
        { device: s.name, state: r.state, detail: r.detail },
        "smart: device state",
      );
      if (before && !quiet)
        h?.event({
          class: "smart",
          kind: `smart.${r.state}`,
          severity: r.state === "unresponsive" ? "crit" : "warn",
          subject: r.device,
          message: `${s.name}: ${r.detail ?? r.state}`,
        });
    }
    if (r.state === "ok" && (!before || before.verdict !== r.verdict)) {
      const level = r.verdict === "fail" ? "crit" : r.verdict === "warn" ? "warn" : "info";
      const why = r.reasons
        .filter((x) => x.level !== "info")
        .map((x) => x.message)
        .join("; ");
      h?.event({
        class: "smart",
        kind: "smart.verdict",
        severity: level,
        subject: r.device,
        message: `${s.name} (${r.model ?? "?"}, ${r.serial ?? "?"}): SMART ${r.verdict}${why ? `: ${why}` : ""}`,
        data: { verdict: r.verdict, reasons: r.reasons },
      });
      if (r.verdict !== "pass")
        this.opts.log.warn({ device: s.name, verdict: r.verdict, reasons: why }, "smart: verdict");
    }
  }

  /**
   * smartd's attribute-change tracking, but persistent: the counters, when each was first
   * seen and its last rise are kept in the history's state table by drive identity, so an
   * agent restart still knows that reallocations grew since yesterday, and the verdict can
   * tell a rising CRC count from an old one (trend.ts).
   */
  private trend(s: Slot, report: SmartReport, counters: Record<string, number>): Trends {
    const h = this.opts.history;
    const serial = report.identity.serial;
    const id = serial ? `${report.identity.model ?? ""}:${serial}` : `${s.name}`;
    const key = `smart.baseline.${id}`;
    const now = Date.now();
    const prev = this.trends.get(key) ?? (h ? readTrendState(h.getState(key)) : null);
    const { state, increases } = advanceTrend(prev, counters, now);
    this.trends.set(key, state);
    for (const [name, v] of Object.entries(counters))
      h?.record("smart_attribute_raw", { device: s.label, attribute: name }, v, now);
    for (const inc of increases) {
      if (!RISING_IS_BAD.has(inc.name)) continue;
      const hours = inc.sinceMs / 3_600_000;
      h?.event({
        class: "smart",
        kind: "smart.counter_increased",
        severity: "warn",
        subject: s.label,
        message: `${s.name}: ${inc.name} rose by ${inc.current - inc.previous} to ${inc.current} in ${hours < 1 ? `${Math.round(hours * 60)} min` : `${hours.toFixed(1)} h`}`,
        data: {
          attribute: inc.name,
          previous: inc.previous,
          current: inc.current,
          delta: inc.current - inc.previous,
          since_seconds: Math.round(inc.sinceMs / 1000),
        },
      });
      this.opts.log.warn(
        { device: s.name, attribute: inc.name, previous: inc.previous, current: inc.current },
        "smart: failure-predicting counter increased",
      );
    }
    h?.setState(key, JSON.stringify(state));
    return trendView(state, now, this.growthWindow);
  }
}
