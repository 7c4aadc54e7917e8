// /proc/<pid> files, parsed (proc(5)). Pure: text in, fields out; reading is core/host/host.ts.

/** PF_KTHREAD in /proc/<pid>/stat's flags (include/linux/sched.h): the task is a kernel thread. */
export const PF_KTHREAD = 0x00200000;

export interface ProcStat {
  /** Between the first "(" and the last ")": a comm may itself hold spaces and parentheses. */
  readonly comm: string;
  /** Field 3, one letter ("R", "S", "D", "T" when stopped, ...); null when missing. */
  readonly state: string | null;
  /** Field 4; 0 when missing, NaN when not a number. */
  readonly ppid: number;
  /** Field 9 (PF_* bits); NaN when missing, so that no bit tests as set. */
  readonly flags: number;
  /** Fields 14 and 15: CPU time in user and kernel mode, in clock ticks; NaN when missing. */
  readonly utime: number;
  readonly stime: number;
  /** Field 20; NaN when missing. */
  readonly threads: number;
  /** Field 22: when the process started, in clock ticks after boot (with the pid, its identity). */
  readonly starttime: number;
}

/** /proc/<pid>/stat: "pid (comm) state ppid ...", split after the last ")". */
export function parseProcStat(text: string): ProcStat {
  const close = text.lastIndexOf(")");
  // rest[i] is field i + 3 of proc(5) (field 3, the state, is rest[0]).
  const rest = text.slice(close + 2).split(" ");
  return {
    comm: text.slice(text.indexOf("(") + 1, close < 0 ? 0 : close),
    state: text.slice(close + 2, close + 3) || null,
    ppid: Number(rest[1] ?? 0),
    flags: Number(rest[6]),
    utime: counter(rest[11]),
    stime: counter(rest[12]),
    threads: counter(rest[17]),
    starttime: counter(rest[19]),
  };
}

/** An unsigned decimal field, NaN when missing or anything else (Number("") would be 0). */
function counter(field: string | undefined): number {
  return field !== undefined && /^\d+$/.test(field) ? Number(field) : NaN;
}

/** What /proc/<pid>/status adds to stat: resident memory in bytes (0 for kernel threads). */
export interface ProcStatus {
  readonly rssBytes: number;
  /** Threads; NaN when the line is missing. */
  readonly threads: number;
}

export function parseProcStatus(text: string): ProcStatus {
  const rss = /^VmRSS:\s*(\d+) kB$/m.exec(text)?.[1];
  const threads = /^Threads:\s*(\d+)$/m.exec(text)?.[1];
  return {
    rssBytes: rss === undefined ? 0 : Number(rss) * 1024,
    threads: threads === undefined ? NaN : Number(threads),
  };
}

/** Effective capabilities from /proc/<pid>/status ("CapEff: 000001ffffffffff"); null when absent. */
export function parseCapEff(status: string): bigint | null {
  const line = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return line ? BigInt(`0x${line[1]}`) : null;
}
