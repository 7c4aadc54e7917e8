// process: the database's own processes, grouped the way process-exporter groups a name (the
// judge's StemeDB predicate on comm): CPU by mode, resident memory, threads, threads in D,
// descriptors, with the host's CPU count, busy and iowait shares and available memory beside
// them. Bounded work on a host with tens of thousands of processes: the database's processes
// are found by ./finder.ts (one stat read only of pids not classified yet, a full pass every
// RECHECK_SECONDS) and read in full. Processes exiting mid-read are skipped, not errors.
import { performance } from "node:perf_hooks";
import type { CollectContext, Collector } from "../../core/collector.js";
import { errorMessage } from "../../core/errors.js";
import { Host, type Process } from "../../core/host/host.js";
import { parseCgroupUnit } from "../procio/parse.js";
import { DatabaseFinder } from "./finder.js";
import type { ProcessObservation } from "./observation.js";
import {
  account,
  type Baseline,
  type CpuTimes,
  cpuRatios,
  parseCpuTimes,
  parseMeminfo,
  parseUptime,
  type ProcessSample,
} from "./parse.js";
import type { ProcStat } from "../../core/host/proc.js";

/** Thread states read per run at most (a database with this many threads is already a finding). */
const MAX_TASKS = 20_000;
/** Every pid is classified afresh this often (seconds since boot, as /proc/uptime counts). */
const RECHECK_SECONDS = 60;

export interface ProcessOptions {
  readonly procPath: string;
}

export interface ProcessCollectorOptions extends ProcessOptions {
  /** The judge's predicate: whether a comm is the database. */
  readonly isDatabase: (comm: string) => boolean;
}

export class ProcessCollector implements Collector<ProcessObservation> {
  readonly name = "process";
  readonly onceWarmupMs = 1000;
  /** Clock ticks per second for utime/stime: sysconf(_SC_CLK_TCK), read from the agent's auxv. */
  readonly clockTicks: number;
  private readonly host: Host;
  private readonly finder: DatabaseFinder;
  private lastAt: number | null = null;
  private baseline: Baseline | null = null;
  private lastCpu: CpuTimes | null = null;
  /** Unit per pid, read once per process (pid and start time). */
  private readonly units = new Map<number, { starttime: number; unit: string | null }>();

  constructor(private readonly opts: ProcessCollectorOptions) {
    this.host = new Host({ procPath: opts.procPath });
    this.finder = new DatabaseFinder(this.host, opts.isDatabase, RECHECK_SECONDS);
    this.clockTicks = this.finder.clockTicks;
  }

  async collect({ signal }: CollectContext): Promise<ProcessObservation> {
    const cpu = parseCpuTimes(this.read("stat"));
    if (typeof cpu === "string") throw new Error(`${this.opts.procPath}/stat: ${cpu}`);
    const mem = parseMeminfo(this.read("meminfo"));
    if (typeof mem === "string") throw new Error(`${this.opts.procPath}/meminfo: ${mem}`);
    const uptime = parseUptime(this.read("uptime"));
    if (uptime === null) throw new Error(`${this.opts.procPath}/uptime: no seconds since boot`);
    const at = performance.now();
    const samples: ProcessSample[] = [];
    const budget = { tasks: MAX_TASKS };
    for (const { p, stat } of await this.finder.find(uptime, signal)) {
      const s = this.sample(p, stat, budget);
      if (s) samples.push(s);
    }
    const alive = new Set(samples.map((s) => s.pid));
    for (const pid of this.units.keys()) if (!alive.has(pid)) this.units.delete(pid);
    const seconds = this.lastAt === null ? null : (at - this.lastAt) / 1000;
    const { processes, group, baseline } = account(
      samples,
      this.baseline,
      uptime,
      this.clockTicks,
      seconds,
    );
    const ratios = cpuRatios(this.lastCpu, cpu);
    this.lastAt = at;
    this.baseline = baseline;
    this.lastCpu = cpu;
    return {
      interval_seconds: seconds,
      processes,
      group,
      host: {
        cpus: cpu.cpus,
        ...ratios,
        mem_total_bytes: mem.total_bytes,
        mem_available_bytes: mem.available_bytes,
      },
    };
  }

  private read(name: string): string {
    try {
      return this.host.read(name);
    } catch (e) {
      throw new Error(`cannot read ${this.opts.procPath}/${name}: ${errorMessage(e)}`);
    }
  }

  /** One database process; null when it exited while being read. */
  private sample(
    p: Process<number>,
    stat: ProcStat,
    budget: { tasks: number },
  ): ProcessSample | null {
    const status = p.status();
    if (status === null || stat.state === null) return null;
    if (!Number.isFinite(stat.utime) || !Number.isFinite(stat.stime)) return null;
    let openFds: number | null;
    try {
      const fds = p.fds();
      if (fds === null) return null; // exited
      openFds = fds.length;
    } catch {
      openFds = null; // exists, but its descriptors may not be listed
    }
    const threads = Number.isFinite(status.threads) ? status.threads : stat.threads;
    return {
      pid: p.pid,
      comm: stat.comm,
      unit: this.unitOf(p, stat.starttime),
      state: stat.state,
      utime: stat.utime,
      stime: stat.stime,
      starttime: stat.starttime,
      rss_bytes: status.rssBytes,
      threads: Number.isFinite(threads) ? threads : 1,
      threads_in_d: this.threadsInD(p, stat.state, threads, budget),
      open_fds: openFds,
    };
  }

  /** Threads in uninterruptible sleep: the process's own state when it has one thread. */
  private threadsInD(
    p: Process<number>,
    state: string,
    threads: number,
    budget: { tasks: number },
  ): number {
    if (threads <= 1 || budget.tasks <= 0) return state === "D" ? 1 : 0;
    const tids = p.tasks();
    if (tids === null) return state === "D" ? 1 : 0;
    let n = 0;
    for (const tid of tids.slice(0, budget.tasks)) if (p.taskStat(tid)?.state === "D") n++;
    budget.tasks -= tids.length;
    return n;
  }

  private unitOf(p: Process<number>, starttime: number): string | null {
    const known = this.units.get(p.pid);
    if (known && known.starttime === starttime) return known.unit;
    const text = p.cgroup();
    const unit = text === null ? null : parseCgroupUnit(text).unit;
    this.units.set(p.pid, { starttime, unit });
    return unit;
  }
}
