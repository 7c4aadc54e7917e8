// Pure parts of the process collector: the host-wide procfs files it reads (<proc>/stat's CPU
// line, meminfo, uptime, the agent's auxv for the clock tick) and the arithmetic of two samples
// of the database's processes. Text in, figures out; reading is the collector's (through Host).
import type { DbProcess, ProcessObservation } from "./observation.js";

/** The host's CPU time since boot, in clock ticks, from the aggregate "cpu " line. */
export interface CpuTimes {
  /** Online CPUs: the "cpuN" lines. */
  readonly cpus: number;
  /** user + nice + system + idle + iowait + irq + softirq + steal (guest is inside user). */
  readonly total: number;
  readonly idle: number;
  readonly iowait: number;
}

/** <proc>/stat's CPU lines (proc(5)); a reason when there is no usable "cpu " line. */
export function parseCpuTimes(text: string): CpuTimes | string {
  let agg: number[] | null = null;
  let cpus = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("cpu ")) {
      // Older kernels have fewer columns (steal since 2.6.11): missing ones count as 0.
      const f = line.slice(4).trim().split(/\s+/).slice(0, 8);
      if (!f.every((x) => /^\d+$/.test(x)) || f.length < 4) return "malformed cpu line";
      agg = f.map(Number);
    } else if (/^cpu\d+ /.test(line)) cpus++;
  }
  if (agg === null) return 'no "cpu " line';
  if (cpus === 0) return 'no "cpuN" lines';
  const total = agg.reduce((a, b) => a + b, 0);
  if (!Number.isSafeInteger(total)) return "cpu times out of range";
  return { cpus, total, idle: agg[3] ?? 0, iowait: agg[4] ?? 0 };
}

/** Busy and iowait shares of all CPUs between two samples; null when no time passed (or reset). */
export function cpuRatios(
  prev: CpuTimes | null,
  cur: CpuTimes,
): { busy_ratio: number | null; iowait_ratio: number | null } {
  const dt = prev === null ? 0 : cur.total - prev.total;
  if (prev === null || dt <= 0) return { busy_ratio: null, iowait_ratio: null };
  // iowait (and so idle) may step backwards on tickless kernels (proc(5)): clamp, never negative.
  const idle = Math.max(0, cur.idle - prev.idle);
  const iowait = Math.max(0, cur.iowait - prev.iowait);
  const clamp = (x: number) => Math.min(1, Math.max(0, x));
  return { busy_ratio: clamp(1 - (idle + iowait) / dt), iowait_ratio: clamp(iowait / dt) };
}

export interface Meminfo {
  readonly total_bytes: number;
  readonly available_bytes: number;
}

/** <proc>/meminfo; MemAvailable (kernels >= 3.14), else MemFree (an underestimate), in bytes. */
export function parseMeminfo(text: string): Meminfo | string {
  const kb = (key: string) => {
    const v = new RegExp(`^${key}:\\s*(\\d+) kB$`, "m").exec(text)?.[1];
    const n = v === undefined ? NaN : Number(v) * 1024;
    return Number.isSafeInteger(n) ? n : null;
  };
  const total = kb("MemTotal");
  const available = kb("MemAvailable") ?? kb("MemFree");
  if (total === null || available === null) return "no MemTotal/MemAvailable";
  return { total_bytes: total, available_bytes: available };
}

/** <proc>/uptime's first figure: seconds since boot. */
export function parseUptime(text: string): number | null {
  const v = /^(\d+(?:\.\d+)?)\s/.exec(text)?.[1];
  return v === undefined ? null : Number(v);
}

/** AT_CLKTCK in the ELF auxiliary vector: what sysconf(_SC_CLK_TCK) (`getconf CLK_TCK`) returns. */
const AT_CLKTCK = 17n;

/**
 * The clock tick (USER_HZ) from /proc/self/auxv, as glibc's sysconf reads it: (type, value)
 * pairs of native words. Null when absent or implausible.
 */
export function parseAuxvClockTicks(auxv: Buffer, wordBytes: 4 | 8 = 8): number | null {
  for (let o = 0; o + 2 * wordBytes <= auxv.length; o += 2 * wordBytes) {
    const type = wordBytes === 8 ? auxv.readBigUInt64LE(o) : BigInt(auxv.readUInt32LE(o));
    if (type === 0n) break; // AT_NULL ends the vector
    if (type !== AT_CLKTCK) continue;
    const v = Number(
      wordBytes === 8 ? auxv.readBigUInt64LE(o + 8) : auxv.readUInt32LE(o + wordBytes),
    );
    return v >= 1 && v <= 100_000 ? v : null;
  }
  return null;
}

/** One database process as read in one sample. */
export interface ProcessSample {
  readonly pid: number;
  readonly comm: string;
  readonly unit: string | null;
  readonly state: string;
  /** Clock ticks. */
  readonly utime: number;
  readonly stime: number;
  readonly starttime: number;
  readonly rss_bytes: number;
  readonly threads: number;
  readonly threads_in_d: number;
  readonly open_fds: number | null;
}

/** What the next sample is compared with. */
export interface Baseline {
  /** Seconds since boot at the sample. */
  readonly uptime: number;
  readonly pids: ReadonlyMap<number, { starttime: number; utime: number; stime: number }>;
}

export interface Accounted {
  readonly processes: DbProcess[];
  readonly group: ProcessObservation["group"];
  readonly baseline: Baseline;
}

/**
 * Seconds after its start during which a process may still exec into the database: one first
 * seen in the group that started this little before the previous sample (it was then a
 * fork not yet exec'd, seen under its parent's name) counts whole.
 */
export const YOUNG_SECONDS = 5;

/**
 * The group's figures from one sample and the previous one. CPU over the interval counts, per
 * mode, what each process seen at both ends used in between (a pid whose start time changed
 * is a new process) and everything used by one started since the previous sample (or at most
 * YOUNG_SECONDS before it); a process seen for the first time that is older (its comm
 * changed) only sets its baseline. What a process used between its last sample and its exit
 * is not seen.
 */
export function account(
  samples: readonly ProcessSample[],
  prev: Baseline | null,
  uptime: number,
  ticksPerSecond: number,
  seconds: number | null,
): Accounted {
  const pids = new Map<number, { starttime: number; utime: number; stime: number }>();
  let du = 0;
  let ds = 0;
  const out: DbProcess[] = [];
  const g = { user: 0, system: 0, rss: 0, threads: 0, inD: 0 };
  for (const s of samples) {
    pids.set(s.pid, { starttime: s.starttime, utime: s.utime, stime: s.stime });
    const p = prev?.pids.get(s.pid);
    let cores: number | null = null;
    if (p && p.starttime === s.starttime) {
      const u = Math.max(0, s.utime - p.utime);
      const k = Math.max(0, s.stime - p.stime);
      du += u;
      ds += k;
      if (seconds !== null && seconds > 0) cores = (u + k) / ticksPerSecond / seconds;
    } else if (prev && s.starttime / ticksPerSecond >= prev.uptime - YOUNG_SECONDS) {
      du += s.utime;
      ds += s.stime;
    }
    g.user += s.utime;
    g.system += s.stime;
    g.rss += s.rss_bytes;
    g.threads += s.threads;
    g.inD += s.threads_in_d;
    out.push({
      pid: s.pid,
      comm: s.comm,
      unit: s.unit,
      state: s.state,
      cpu_cores: cores,
      rss_bytes: s.rss_bytes,
      threads: s.threads,
      open_fds: s.open_fds,
    });
  }
  out.sort(
    (a, b) =>
      (b.cpu_cores ?? -1) - (a.cpu_cores ?? -1) || b.rss_bytes - a.rss_bytes || a.pid - b.pid,
  );
  const measured = prev !== null && seconds !== null && seconds > 0;
  return {
    processes: out,
    group: {
      count: samples.length,
      cpu_cores: measured ? (du + ds) / ticksPerSecond / seconds : null,
      cpu_seconds: { user: g.user / ticksPerSecond, system: g.system / ticksPerSecond },
      cpu_seconds_interval:
        prev === null ? null : { user: du / ticksPerSecond, system: ds / ticksPerSecond },
      rss_bytes: g.rss,
      threads: g.threads,
      threads_in_d: g.inD,
    },
    baseline: { uptime, pids },
  };
}
