// bio: per-I/O latency from the block layer's tracepoints, through a bpftrace child that prints
// its in-kernel maps once per interval (bcc's biolatency, kept running). /proc/diskstats only
// has totals: its await is an average per second, where one 800 ms write among 2,000 fast ones
// disappears; here every request lands in a latency bucket.
//
// The child: no shell, a script generated from the options (script.ts), its own process group
// (killed whole on close), stdout read in bounded lines (a bad or overlong line is counted, not
// fatal), stderr kept in a small tail for the reason it died. When it dies, the collector says
// so (the diskstats tier is all there is meanwhile) and starts it again after a back-off that
// doubles up to `maxBackoffMs`; the figures of earlier children are carried over, so counters
// never go back. collect() never waits for the child: it returns what the last round said.
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync, readlinkSync } from "node:fs";
import { basename } from "node:path";
import type { CollectContext, Collector } from "../../core/collector.js";
import { errorMessage } from "../../core/errors.js";
import { Host } from "../../core/host/host.js";
import type { Logger } from "../../core/log.js";
import { CgroupNames } from "./cgroups.js";
import type {
  BioCounters,
  BioFallback,
  BioHistogram,
  BioInflight,
  BioObservation,
  BioUnit,
} from "./observation.js";
import {
  type BioOp,
  buildTick,
  exportBuckets,
  type Histo,
  octaveQuantile,
  oldestInflight,
  parseLine,
  quantile,
  type SlotState,
  type Tick,
} from "./parse.js";
import { bioScript, END_OF_TICK, SLOT_US } from "./script.js";

export interface BioOptions {
  /** "auto": only where it can run (checked once per build); true: try, and say why it fails. */
  readonly mode: "auto" | "on";
  readonly bpftrace: string;
  readonly queueTime: boolean;
  readonly intervalMs: number;
  readonly topK: number;
  /** BPFTRACE_MAP_KEYS_MAX: the bound of every map in the script. */
  readonly mapKeysMax: number;
  readonly procPath: string;
  readonly sysPath: string;
  readonly tracefsPath: string;
}

interface BioDeps {
  readonly log: Logger;
}

/** The longest bpftrace line kept: a full in-flight or histogram map at mapKeysMax keys. */
const MAX_LINE = 8 * 1024 * 1024;
const STDERR_TAIL = 4096;
const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 60_000;
/** A child that lived this long resets the back-off. */
const HEALTHY_MS = 60_000;
/** CAP_PERFMON (38) and CAP_BPF (39): what bpftrace needs short of all of root's. */
const BPF_CAPS = (1n << 38n) | (1n << 39n);

/** Why the eBPF tier cannot run here, or null when it can (CAP_BPF and CAP_PERFMON, tracefs, bpftrace). */
export function unavailableReason(o: BioOptions, host: Host): string | null {
  const caps = host.process("self").capEff();
  if (caps === null || (caps & BPF_CAPS) !== BPF_CAPS)
    return "not permitted: the agent lacks CAP_BPF and CAP_PERFMON (run as root, see systemd/bio.conf)";
  try {
    // "[integrity]" still allows tracepoints; "[confidentiality]" forbids reading kernel memory.
    if (/\[confidentiality\]/.test(readFileSync(`${o.sysPath}/kernel/security/lockdown`, "utf8")))
      return "kernel lockdown=confidentiality forbids BPF tracing";
  } catch {
    // no lockdown LSM
  }
  if (!existsSync(`${o.tracefsPath}/events/block/block_rq_issue`))
    return (
      `no tracefs with block events at ${o.tracefsPath} ` +
      "(mount -t tracefs nodev /sys/kernel/tracing, or enable sys-kernel-tracing.mount)"
    );
  // Kernel BTF is not needed: the script defines the two kernel types it uses (script.ts).
  try {
    accessSync(o.bpftrace, constants.X_OK);
  } catch {
    return `${o.bpftrace} not found or not executable (install bpftrace)`;
  }
  return null;
}

interface UnitAcc {
  read_bytes: number;
  write_bytes: number;
  ios: number;
  latency_us: number;
  octaves: Map<number, number>;
}

export class BioCollector implements Collector<BioObservation> {
  readonly name = "bio";
  private readonly host: Host;
  private readonly cgroups: CgroupNames;
  private child: ChildProcess | null = null;
  private closed = false;
  /** Null while the eBPF tier runs. */
  private fallback: BioFallback | null;
  private restartTimer: NodeJS.Timeout | undefined;
  private backoffMs = MIN_BACKOFF_MS;
  private startedAt = 0;
  /** Figures of children that ended, per histogram id (device op sync). */
  private readonly base = new Map<string, Histo>();
  private baseCounters = { done: 0, unmatched: 0, unattributed: 0, histogrammed: 0 };
  /** The current child's last complete round. */
  private tick: Tick | null = null;
  /** Maps of the round being read. */
  private pending = new Map<string, number | Map<string, number>>();
  /** Per unit, summed over the rounds since the last collect(). */
  private units = new Map<number, UnitAcc>();
  private unattributedTick = 0;
  private lastCollect: { at: number; cumulative: Map<string, Map<number, number>> } | null = null;
  private readonly counts = { bad_lines: 0, bad_keys: 0, exits: 0 };
  /** Completions counted but never in the histograms: only grows (a full map keeps them out). */
  private dropped = 0;
  private readonly names = new Map<string, string>();
  /** In-flight slots' starts and leaks, carried from round to round (parse.ts oldestInflight). */
  private slotState: SlotState = new Map();
  /** In-flight counts found leaked at the last round. */
  private leaked = 0;
  /** The oldest request in flight per device as of the last round. */
  private ages: Array<{ device: string; op: BioOp; age_seconds: number }> = [];

  constructor(
    private readonly o: BioOptions,
    private readonly deps: BioDeps,
  ) {
    this.host = new Host({ procPath: o.procPath, sysPath: o.sysPath });
    this.cgroups = new CgroupNames({ root: this.cgroup2Root() });
    const why = o.mode === "auto" ? unavailableReason(o, this.host) : null;
    if (why !== null) {
      this.fallback = { kind: "unavailable", reason: why };
      deps.log.info({ reason: why }, "bio: eBPF tier unavailable, diskstats only");
    } else {
      this.fallback = { kind: "starting", reason: "bpftrace starting" };
      this.start();
    }
  }

  private cgroup2Root(): string | null {
    try {
      return (
        this.host.mountinfoSync("self").mounts.find((m) => m.fsType === "cgroup2")?.mountPoint ??
        null
      );
    } catch {
      return null;
    }
  }

  private start(): void {
    if (this.closed) return;
    const script = bioScript({
      queueTime: this.o.queueTime,
      intervalMs: this.o.intervalMs,
      cgroupProbe: existsSync(`${this.o.tracefsPath}/events/block/block_io_start`)
        ? "block_io_start"
        : "block_rq_issue",
    });
    let child: ChildProcess;
    try {
      child = spawn(this.o.bpftrace, ["-f", "json", "-e", script], {
        detached: true, // its own process group: close() ends it and anything it started
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
          BPFTRACE_MAP_KEYS_MAX: String(this.o.mapKeysMax),
          // Keys hold rwbs (10 bytes); nothing longer is read as a string.
          BPFTRACE_STRLEN: "16",
        },
      });
    } catch (e) {
      this.died(`cannot start ${this.o.bpftrace}: ${errorMessage(e)}`);
      return;
    }
    this.child = child;
    this.startedAt = Date.now();
    this.pending = new Map();
    let buf = Buffer.alloc(0);
    let skipping = false;
    child.stdout?.on("data", (chunk: Buffer) => {
      if (this.child !== child) return;
      let data = buf.length > 0 ? Buffer.concat([buf, chunk]) : chunk;
      let nl: number;
      while ((nl = data.indexOf(10)) >= 0) {
        if (!skipping) this.line(data.subarray(0, nl).toString("utf8"));
        skipping = false;
        data = data.subarray(nl + 1);
      }
      if (data.length > MAX_LINE) {
        // Overlong: counted once, the rest of it dropped up to its newline.
        if (!skipping) this.counts.bad_lines++;
        skipping = true;
        data = Buffer.alloc(0);
      }
      buf = Buffer.from(data);
    });
    let stderr = "";
    child.stderr?.on("data", (b: Buffer) => {
      stderr = (stderr + b.toString("utf8")).slice(-STDERR_TAIL);
    });
    child.on("error", (e) => {
      if (this.child === child) this.died(`${this.o.bpftrace}: ${errorMessage(e)}`);
    });
    child.on("exit", (code, signal) => {
      if (this.child !== child) return;
      // The RLIMIT_MEMLOCK complaint is harmless on 5.11+ (memory cgroup accounting): not a reason.
      // Its ERROR lines say why (warnings and the source lines they quote do not).
      const lines = stderr.split("\n").filter((l) => l.trim() !== "" && !/RLIMIT_MEMLOCK/.test(l));
      const errors = lines.filter((l) => /error/i.test(l));
      const why = (errors.length > 0 ? errors : lines).slice(-3).join("; ");
      this.died(
        `bpftrace exited (${signal ?? `code ${code}`})${why ? `: ${why.slice(0, 300)}` : ""}`,
      );
    });
  }

  /** One complete line of output. */
  private line(text: string): void {
    const l = parseLine(text);
    if (l.kind === "bad") {
      this.counts.bad_lines++;
      return;
    }
    if (l.kind !== "map") return;
    this.pending.set(l.name, l.value);
    if (l.name !== END_OF_TICK) return;
    const t = buildTick(this.pending);
    this.pending = new Map();
    if (!t) return;
    this.counts.bad_keys += t.badKeys;
    this.tick = t;
    // Every round, not every collect(): a slot's start carries only while it is seen held.
    const { ages, state, leaked } = oldestInflight(t, this.slotState, SLOT_US, this.idleDevices(t));
    this.slotState = state;
    this.ages = ages;
    this.leaked = leaked;
    for (const [id, c] of t.cgroups) {
      if (id === 0) this.unattributedTick += c.ios;
      const u = this.units.get(id) ?? {
        read_bytes: 0,
        write_bytes: 0,
        ios: 0,
        latency_us: 0,
        octaves: new Map(),
      };
      u.read_bytes += c.read_bytes;
      u.write_bytes += c.write_bytes;
      u.ios += c.ios;
      u.latency_us += c.latency_us;
      for (const [o, n] of c.octaves) u.octaves.set(o, (u.octaves.get(o) ?? 0) + n);
      this.units.set(id, u);
    }
    if (this.fallback !== null) {
      this.deps.log.info("bio: eBPF tier running");
      this.fallback = null;
    }
  }

  private died(reason: string): void {
    this.child = null;
    if (this.closed) return;
    this.counts.exits++;
    this.foldTick();
    if (Date.now() - this.startedAt >= HEALTHY_MS) this.backoffMs = MIN_BACKOFF_MS;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
    this.fallback = { kind: "restarting", reason, retry_in_seconds: wait / 1000 };
    this.deps.log.warn(
      { reason, retryInMs: wait },
      "bio: bpftrace ended; diskstats tier until it is back",
    );
    this.restartTimer = setTimeout(() => this.start(), wait);
    this.restartTimer.unref();
  }

  /** Adds the ended child's figures to the base, so the next child's start from there. */
  private foldTick(): void {
    const t = this.tick;
    this.tick = null;
    this.slotState = new Map();
    this.ages = [];
    if (!t) return;
    for (const [id, h] of t.histos) {
      const b = this.base.get(id) ?? { ...h, buckets: new Map<number, number>(), sum: 0 };
      for (const [i, n] of h.buckets) b.buckets.set(i, (b.buckets.get(i) ?? 0) + n);
      b.sum += h.sum;
      this.base.set(id, b);
    }
    this.baseCounters.done += t.done;
    this.baseCounters.unmatched += t.unmatched;
  }

  /** Base plus the running child's figures, per histogram id. */
  private cumulative(): Map<string, Histo> {
    const out = new Map<string, Histo>();
    for (const [id, b] of this.base) out.set(id, { ...b, buckets: new Map(b.buckets) });
    for (const [id, h] of this.tick?.histos ?? []) {
      const o = out.get(id) ?? { ...h, buckets: new Map<number, number>(), sum: 0 };
      for (const [i, n] of h.buckets) o.buckets.set(i, (o.buckets.get(i) ?? 0) + n);
      o.sum += h.sum;
      out.set(id, o);
    }
    return out;
  }

  /** Devices with slots held whose kernel count (<sys>/dev/block/M:m/inflight) is zero. */
  private idleDevices(t: Tick): Set<string> {
    const idle = new Set<string>();
    for (const dev of new Set(t.inflight.map((r) => r.device))) {
      try {
        const [r, w] = readFileSync(`${this.o.sysPath}/dev/block/${dev}/inflight`, "utf8")
          .trim()
          .split(/\s+/);
        if (r === "0" && w === "0") idle.add(dev);
      } catch {
        // gone, or no such file: trust the counts
      }
    }
    return idle;
  }

  private deviceName(numbers: string): string {
    let n = this.names.get(numbers);
    if (n === undefined) {
      try {
        n = basename(readlinkSync(`${this.o.sysPath}/dev/block/${numbers}`));
      } catch {
        n = numbers;
      }
      if (this.names.size < 4096) this.names.set(numbers, n);
    }
    return n;
  }

  collect(_ctx: CollectContext): Promise<BioObservation> {
    return new Promise((resolve) => resolve(this.observe()));
  }

  private observe(): BioObservation {
    const now = Date.now();
    const cum = this.cumulative();
    const prev = this.lastCollect;
    const histograms: BioHistogram[] = [];
    let histogrammed = 0;
    for (const [id, h] of [...cum].sort(([a], [b]) => a.localeCompare(b))) {
      const before = prev?.cumulative.get(id);
      const delta = new Map<number, number>();
      let count = 0;
      for (const [i, n] of h.buckets) {
        count += n;
        const d = n - (before?.get(i) ?? 0);
        if (d > 0) delta.set(i, d);
      }
      histogrammed += count;
      let intervalCount = 0;
      for (const n of delta.values()) intervalCount += n;
      histograms.push({
        device: this.deviceName(h.device),
        op: h.op,
        sync: h.sync,
        count,
        sum_seconds: h.sum / 1e6,
        cumulative: exportBuckets(h.buckets),
        p99_seconds: quantile(delta, 0.99),
        p999_seconds: quantile(delta, 0.999),
        interval_count: intervalCount,
      });
    }
    this.lastCollect = {
      at: now,
      cumulative: new Map([...cum].map(([id, h]) => [id, new Map(h.buckets)])),
    };
    const t = this.tick;
    const done = this.baseCounters.done + (t?.done ?? 0);
    this.baseCounters.unattributed += this.unattributedTick;
    this.unattributedTick = 0;
    const counters: BioCounters = {
      unmatched: this.baseCounters.unmatched + (t?.unmatched ?? 0),
      dropped: (this.dropped = Math.max(this.dropped, done - histogrammed)),
      inflight_leaked: this.leaked,
      unattributed: this.baseCounters.unattributed,
      bad_lines: this.counts.bad_lines,
      bad_keys: this.counts.bad_keys,
      exits: this.counts.exits,
    };
    const units = this.unitFigures();
    const inflight: BioInflight[] =
      t && this.child ? this.ages.map((r) => ({ ...r, device: this.deviceName(r.device) })) : [];
    const common = {
      queue_time: this.o.queueTime,
      interval_seconds: prev ? (now - prev.at) / 1000 : null,
      histograms,
      counters,
      cgroups_truncated: this.cgroups.truncated,
    };
    return this.fallback === null
      ? { ...common, tier: "ebpf", units, inflight }
      : { ...common, tier: "diskstats", fallback: this.fallback, units: [], inflight: [] };
  }

  /** The units of the rounds since the last collect(): the top K by bytes, the rest as "other". */
  private unitFigures(): BioUnit[] {
    const acc = this.units;
    this.units = new Map();
    const names = this.cgroups.resolve(acc.keys());
    const byUnit = new Map<string, UnitAcc>();
    for (const [id, a] of acc) {
      const name = names.get(id) ?? "unknown";
      const u = byUnit.get(name);
      if (!u) byUnit.set(name, a);
      else {
        u.read_bytes += a.read_bytes;
        u.write_bytes += a.write_bytes;
        u.ios += a.ios;
        u.latency_us += a.latency_us;
        for (const [o, n] of a.octaves) u.octaves.set(o, (u.octaves.get(o) ?? 0) + n);
      }
    }
    const ranked = [...byUnit].sort(
      ([an, a], [bn, b]) =>
        b.read_bytes + b.write_bytes - (a.read_bytes + a.write_bytes) ||
        b.ios - a.ios ||
        an.localeCompare(bn),
    );
    const top = ranked.slice(0, this.o.topK);
    const rest = ranked.slice(this.o.topK);
    if (rest.length > 0) {
      const other: UnitAcc = {
        read_bytes: 0,
        write_bytes: 0,
        ios: 0,
        latency_us: 0,
        octaves: new Map(),
      };
      for (const [, a] of rest) {
        other.read_bytes += a.read_bytes;
        other.write_bytes += a.write_bytes;
        other.ios += a.ios;
        other.latency_us += a.latency_us;
        for (const [o, n] of a.octaves) other.octaves.set(o, (other.octaves.get(o) ?? 0) + n);
      }
      top.push(["other", other]);
    }
    return top.map(([unit, a]) => ({
      unit,
      read_bytes: a.read_bytes,
      write_bytes: a.write_bytes,
      ios: a.ios,
      mean_latency_seconds: a.ios > 0 ? a.latency_us / a.ios / 1e6 : null,
      p99_seconds: octaveQuantile(a.octaves, 0.99),
    }));
  }

  /** Ends the child's whole process group (TERM, then KILL) and stops restarting. */
  close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    this.child = null;
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null)
      return Promise.resolve();
    const pid = child.pid;
    const kill = (sig: NodeJS.Signals) => {
      try {
        process.kill(-pid, sig);
      } catch {
        // already gone
      }
    };
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        kill("SIGKILL");
        resolve();
      }, 3000);
      child.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      kill("SIGTERM");
    });
  }

  /** For tests and status: the running child's pid. */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }
}
