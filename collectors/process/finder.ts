// Which processes are the database (the judge's StemeDB predicate on comm), for the process and
// stalls collectors alike. Each pass lists /proc and reads one file (stat) only of pids it has not
// classified yet; a pid classified as something else is read again only while young (it may still
// exec into the database) and in a full pass every `recheckSeconds` (a long-lived process that
// execs or renames itself, a pid reused between two passes). It yields to the event loop every
// SLICE pids. Processes exiting between the listing and the read are skipped, not errors.
import { errorMessage } from "../../core/errors.js";
import type { Host, Process } from "../../core/host/host.js";
import type { ProcStat } from "../../core/host/proc.js";
import { parseAuxvClockTicks, YOUNG_SECONDS } from "./parse.js";

/** Processes read per slice before yielding to the event loop. */
const SLICE = 256;
/** Linux's USER_HZ on every architecture the agent runs on, when auxv does not tell. */
const DEFAULT_CLK_TCK = 100;

export interface FoundProcess {
  readonly p: Process<number>;
  readonly stat: ProcStat;
}

export class DatabaseFinder {
  /** Clock ticks per second for stat's times: sysconf(_SC_CLK_TCK), read from the agent's auxv. */
  readonly clockTicks: number;
  /** Pids found not to be the database: when they started and when they were looked at. */
  private readonly others = new Map<number, { started: number; checked: number }>();
  private lastRecheck = -Infinity;

  constructor(
    private readonly host: Host,
    private readonly isDatabase: (comm: string) => boolean,
    /** Every pid is classified afresh this often (seconds since boot, as /proc/uptime counts). */
    private readonly recheckSeconds: number,
  ) {
    let hz: number | null = null;
    try {
      hz = parseAuxvClockTicks(host.readBytes("self/auxv"));
    } catch {
      // a captured tree has no auxv
    }
    this.clockTicks = hz ?? DEFAULT_CLK_TCK;
  }

  /** The database's processes now, with the stat they were classified by. */
  async find(uptime: number, signal: AbortSignal): Promise<FoundProcess[]> {
    let pids: number[];
    try {
      pids = this.host.pids();
    } catch (e) {
      throw new Error(`cannot list ${this.host.procPath}: ${errorMessage(e)}`);
    }
    const recheck = uptime - this.lastRecheck >= this.recheckSeconds;
    if (recheck) this.lastRecheck = uptime;
    const found: FoundProcess[] = [];
    const listed = new Set<number>();
    for (let i = 0; i < pids.length; i++) {
      if (i > 0 && i % SLICE === 0) {
        await new Promise<void>((r) => setImmediate(r));
        if (signal.aborted) throw signal.reason as Error;
      }
      const pid = pids[i] as number;
      listed.add(pid);
      const other = this.others.get(pid);
      // Known not to be the database, and already old when looked at: not read again.
      if (!recheck && other && other.checked - other.started > YOUNG_SECONDS) continue;
      const p = this.host.process(pid);
      const stat = p.stat();
      if (stat === null) continue; // exited
      if (!this.isDatabase(stat.comm)) {
        this.others.set(pid, { started: stat.starttime / this.clockTicks, checked: uptime });
        continue;
      }
      this.others.delete(pid);
      found.push({ p, stat });
    }
    for (const pid of this.others.keys()) if (!listed.has(pid)) this.others.delete(pid);
    return found;
  }
}
