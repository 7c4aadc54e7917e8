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
}

/** /proc/<pid>/stat: "pid (comm) state ppid ...", split after the last ")". */
export function parseProcStat(text: string): ProcStat {
  const close = text.lastIndexOf(")");
  const rest = text.slice(close + 2).split(" ");
  return {
    comm: text.slice(text.indexOf("(") + 1, close < 0 ? 0 : close),
    state: text.slice(close + 2, close + 3) || null,
    ppid: Number(rest[1] ?? 0),
    flags: Number(rest[6]),
  };
}

/** Effective capabilities from /proc/<pid>/status ("CapEff: 000001ffffffffff"); null when absent. */
export function parseCapEff(status: string): bigint | null {
  const line = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return line ? BigInt(`0x${line[1]}`) : null;
}
