// stalls: what is stuck now, seen while it lasts (pebble's disk-health check), without eBPF.
// - The database: a StemeDB thread (the judge's predicate on comm) in uninterruptible sleep (D)
//   inside a write or sync call (/proc/<pid>/task/<tid>/syscall) on a descriptor that points into
//   the WAL directory (readlink /proc/<pid>/fd/<fd>) is a WAL write stalled, named by file, long
//   before the kernel's 120 s hung-task message. Reading another process's syscall file needs
//   ptrace access (root with CAP_SYS_PTRACE, which the shipped unit keeps): when it is refused the
//   answer is "unknown", never "no stall".
// - Devices: requests in flight (diskstats field 9) and no completion since T: the oldest has
//   waited at least now - T (parse.ts deviceAges); while the eBPF tier runs, each device's oldest
//   request's own age as well (collectors/bio, handed in by the core), the larger of the two.
// Bounded: at most MAX_TASKS thread stats a run, yielding every SLICE; database pids are found
// by a full /proc walk (the process collector's finder, ../process/finder.ts) every RESCAN_MS
// and only re-checked between. Threads and processes exiting mid-read are skipped.
import { realpathSync } from "node:fs";
import { performance } from "node:perf_hooks";
import type { CollectContext, Collector } from "../../core/collector.js";
import { errorMessage } from "../../core/errors.js";
import { Host, type Process } from "../../core/host/host.js";
import { parseDiskstats } from "../diskstats/parse.js";
import { DatabaseFinder } from "../process/finder.js";
import { parseUptime } from "../process/parse.js";
import type { DbThreadStall, StallsObservation } from "./observation.js";
import {
  type DeviceMemory,
  deviceAges,
  withExact,
  fileIn,
  parseSyscall,
  WRITE_CALLS,
  type WriteCall,
  writeCallOf,
} from "./parse.js";

/** Thread stats read per run at most. */
export const MAX_TASKS = 10_000;
/** Thread stats read before yielding to the event loop. */
const SLICE = 256;
/** Database processes looked at per run at most. */
const MAX_PROCESSES = 64;
/** New database processes are found by a full /proc walk this often. */
const RESCAN_MS = 5_000;
/** Devices reported at most (oldest first): the device label stays bounded. */
export const MAX_DEVICES = 32;

export interface StallsOptions {
  readonly procPath: string;
  readonly sysPath: string;
  readonly walDir: string;
}

export interface StallsCollectorOptions extends StallsOptions {
  readonly isDatabase: (comm: string) => boolean;
  /** process.arch by default: which syscall table applies. */
  readonly arch?: string;
  /** The eBPF tier's oldest request per device, when it runs and its figures are fresh. */
  readonly exactAges?: () => ReadonlyArray<{
    readonly device: string;
    readonly age_seconds: number;
    readonly op: string;
  }>;
}

const DENIED = new Set(["EACCES", "EPERM"]);
/** linux/capability.h */
const CAP_SYS_PTRACE = 19n;

export class StallsCollector implements Collector<StallsObservation> {
  readonly name = "stalls";
  private readonly host: Host;
  private readonly finder: DatabaseFinder;
  private readonly table: ReadonlyMap<number, WriteCall> | undefined;
  private dbPids: number[] = [];
  private scannedAt = -Infinity;
  /** Per thread: the call and file it was first seen stuck in, and when. */
  private stuck = new Map<string, { since: number }>();
  private devices: DeviceMemory = new Map();
  /** Why other users' threads cannot be examined at all, when the agent lacks CAP_SYS_PTRACE. */
  private readonly blind: string | null;

  constructor(private readonly opts: StallsCollectorOptions) {
    this.host = new Host({ procPath: opts.procPath, sysPath: opts.sysPath });
    // Looked for every RESCAN_MS, each time in a full pass (every pid's stat read again).
    this.finder = new DatabaseFinder(this.host, opts.isDatabase, 0);
    this.table = WRITE_CALLS[opts.arch ?? process.arch];
    let caps: bigint | null = null;
    try {
      caps = this.host.process("self").capEff();
    } catch {
      // a captured tree has no self
    }
    // Without it, another user's syscall file is refused and, under the unit's
    // ProtectProc=ptraceable, the process is not even listed: no stall seen would mean nothing.
    this.blind =
      caps !== null && (caps & (1n << CAP_SYS_PTRACE)) === 0n
        ? "the agent lacks CAP_SYS_PTRACE: other users' database threads cannot be examined"
        : null;
  }

  async collect({ signal }: CollectContext): Promise<StallsObservation> {
    const now = performance.now() / 1000;
    const devices = this.deviceAges(now);
    return { db: await this.db(now, signal), devices };
  }

  private deviceAges(now: number): StallsObservation["devices"] {
    let text: string;
    try {
      text = this.host.read("diskstats");
    } catch (e) {
      throw new Error(`cannot read ${this.opts.procPath}/diskstats: ${errorMessage(e)}`);
    }
    // Whole devices only (a partition's requests are its disk's too).
    const disks = parseDiskstats(text).disks.filter((d) => this.wholeDevice(d.device));
    const r = deviceAges(
      disks.map((d) => ({
        device: d.device,
        in_flight: d.inFlight,
        completed: d.reads + d.writes + (d.discard?.completed ?? 0) + (d.flush?.completed ?? 0),
      })),
      this.devices,
      now,
    );
    this.devices = r.memory;
    return withExact(r.ages, this.opts.exactAges?.() ?? [])
      .filter((a) => a.age_seconds > 0)
      .sort((a, b) => b.age_seconds - a.age_seconds)
      .slice(0, MAX_DEVICES);
  }

  private readonly whole = new Map<string, boolean>();
  private wholeDevice(name: string): boolean {
    let w = this.whole.get(name);
    if (w === undefined) {
      w = this.host.sysExists(`block/${name}`);
      if (this.whole.size < 4096) this.whole.set(name, w);
    }
    return w;
  }

  private walReal(): string | null {
    try {
      return realpathSync(this.opts.walDir);
    } catch {
      return null;
    }
  }

  private async db(now: number, signal: AbortSignal): Promise<StallsObservation["db"]> {
    const walDir = this.walReal();
    if (now * 1000 - this.scannedAt >= RESCAN_MS) {
      this.scannedAt = now * 1000;
      this.dbPids = await this.findDatabase(signal);
    }
    if (!this.table)
      return {
        wal_dir: walDir,
        threads: [],
        unknown: `no syscall table for ${this.opts.arch ?? process.arch}`,
        processes: this.dbPids.length,
        tasks_scanned: 0,
      };
    const threads: DbThreadStall[] = [];
    const seen = new Map<string, { since: number }>();
    let unknown: string | null = null;
    let budget = MAX_TASKS;
    let scanned = 0;
    const alive: number[] = [];
    for (const pid of this.dbPids) {
      const p = this.host.process(pid);
      const stat = p.stat();
      if (stat === null || !this.opts.isDatabase(stat.comm)) continue; // exited, or exec'd
      alive.push(pid);
      const tids = p.tasks();
      if (tids === null) continue;
      if (tids.length > budget)
        unknown ??= `more than ${MAX_TASKS} threads: only some were looked at`;
      for (const tid of tids.slice(0, Math.max(0, budget))) {
        // ~16 µs a thread: a database of thousands of threads must not hold the event loop.
        if (++scanned % SLICE === 0) {
          await new Promise<void>((r) => setImmediate(r));
          if (signal.aborted) throw signal.reason as Error;
        }
        const ts = p.taskStat(tid);
        if (ts?.state !== "D" || walDir === null) continue;
        const r = this.stuckIn(p, tid, walDir);
        if (r === null) continue;
        if ("denied" in r) {
          unknown ??= r.denied;
          continue;
        }
        const key = `${pid}/${tid}/${r.call}/${r.fd}/${r.file}`;
        const since = this.stuck.get(key)?.since ?? now;
        seen.set(key, { since });
        threads.push({
          pid,
          tid: Number(tid),
          comm: ts.comm,
          call: r.call,
          file: r.file,
          age_seconds: now - since,
        });
      }
      budget -= tids.length;
    }
    this.dbPids = alive;
    this.stuck = seen;
    return {
      wal_dir: walDir,
      threads: threads.sort((a, b) => b.age_seconds - a.age_seconds),
      unknown: unknown ?? this.blind,
      processes: alive.length,
      tasks_scanned: scanned,
    };
  }

  /** The write call and WAL file a thread in D is in; null when none (or it is gone). */
  private stuckIn(
    p: Process<number>,
    tid: string,
    walDir: string,
  ): { call: WriteCall; fd: number; file: string } | { denied: string } | null {
    let text: string;
    try {
      text = p.read(`task/${tid}/syscall`);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? "";
      if (DENIED.has(code))
        return {
          denied: `${p.path(`task/${tid}/syscall`)}: ${code} (needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)`,
        };
      return null; // exited meanwhile
    }
    const w = writeCallOf(parseSyscall(text), this.table as ReadonlyMap<number, WriteCall>);
    if (w === null) return null;
    const target = p.fdTarget(String(w.fd));
    if (target === null) return null;
    const file = fileIn(target, walDir);
    return file === null ? null : { ...w, file };
  }

  /** Every database pid but the agent's own, at most MAX_PROCESSES. */
  private async findDatabase(signal: AbortSignal): Promise<number[]> {
    let uptime: number | null;
    try {
      uptime = parseUptime(this.host.read("uptime"));
    } catch (e) {
      throw new Error(`cannot read ${this.opts.procPath}/uptime: ${errorMessage(e)}`);
    }
    if (uptime === null) throw new Error(`${this.opts.procPath}/uptime: no seconds since boot`);
    const self = process.pid;
    return (await this.finder.find(uptime, signal))
      .map((f) => f.p.pid)
      .filter((pid) => pid !== self)
      .slice(0, MAX_PROCESSES);
  }
}
