// The columns of `iostat -x`, computed from two diskstats samples exactly as sysstat 12.6
// computes them (iostat.c write_ext_stat, rd_stats.c compute_ext_disk_stats); checked
// against iostat on a loop device under fio in test/diskstats-iostat.test.ts.
//
// Counter widths: time fields (ms) are printed as u32 and wrap every 2^32 ms; the rest are
// unsigned long. A u32 delta is taken modulo 2^32; a 64-bit counter going backwards means the
// device was re-created, and that interval has no figures.
import type { DiskCounters } from "./parse.js";

const U32 = 2 ** 32;

export function deltaU32(prev: number, cur: number): number {
  return (((cur - prev) % U32) + U32) % U32;
}

/** Delta of a 64-bit counter, or null when it went backwards (reset). */
export function delta64(prev: number, cur: number): number | null {
  return cur >= prev ? cur - prev : null;
}

/** Raw deltas of one interval, wrap-corrected. */
export interface DiskDelta extends Pick<
  DiskCounters,
  | "reads"
  | "readsMerged"
  | "sectorsRead"
  | "readMs"
  | "writes"
  | "writesMerged"
  | "sectorsWritten"
  | "writeMs"
  | "ioMs"
  | "weightedMs"
> {
  readonly discards: number;
  readonly discardsMerged: number;
  readonly sectorsDiscarded: number;
  readonly discardMs: number;
  readonly flushes: number;
  readonly flushMs: number;
}

/** iostat -x figures for one interval. Awaits are null when no such request completed (iostat prints 0.00). */
export interface Iostat {
  readonly r_s: number;
  readonly w_s: number;
  readonly d_s: number;
  readonly f_s: number;
  readonly rkB_s: number;
  readonly wkB_s: number;
  readonly dkB_s: number;
  readonly rrqm_s: number;
  readonly wrqm_s: number;
  readonly r_await_ms: number | null;
  readonly w_await_ms: number | null;
  readonly d_await_ms: number | null;
  readonly f_await_ms: number | null;
  readonly rareq_sz_kB: number | null;
  readonly wareq_sz_kB: number | null;
  readonly aqu_sz: number;
  readonly util_pct: number;
}

export function diskDelta(prev: DiskCounters, cur: DiskCounters): DiskDelta | null {
  if (prev.major !== cur.major || prev.minor !== cur.minor || prev.fields !== cur.fields)
    return null;
  const c64 = [
    delta64(prev.reads, cur.reads),
    delta64(prev.readsMerged, cur.readsMerged),
    delta64(prev.sectorsRead, cur.sectorsRead),
    delta64(prev.writes, cur.writes),
    delta64(prev.writesMerged, cur.writesMerged),
    delta64(prev.sectorsWritten, cur.sectorsWritten),
    delta64(prev.discard?.completed ?? 0, cur.discard?.completed ?? 0),
    delta64(prev.discard?.merged ?? 0, cur.discard?.merged ?? 0),
    delta64(prev.discard?.sectors ?? 0, cur.discard?.sectors ?? 0),
    delta64(prev.flush?.completed ?? 0, cur.flush?.completed ?? 0),
  ];
  if (c64.some((d) => d === null)) return null;
  const [
    reads,
    readsMerged,
    sectorsRead,
    writes,
    writesMerged,
    sectorsWritten,
    discards,
    discardsMerged,
    sectorsDiscarded,
    flushes,
  ] = c64 as number[];
  return {
    reads: reads as number,
    readsMerged: readsMerged as number,
    sectorsRead: sectorsRead as number,
    readMs: deltaU32(prev.readMs, cur.readMs),
    writes: writes as number,
    writesMerged: writesMerged as number,
    sectorsWritten: sectorsWritten as number,
    writeMs: deltaU32(prev.writeMs, cur.writeMs),
    ioMs: deltaU32(prev.ioMs, cur.ioMs),
    weightedMs: deltaU32(prev.weightedMs, cur.weightedMs),
    discards: discards as number,
    discardsMerged: discardsMerged as number,
    sectorsDiscarded: sectorsDiscarded as number,
    discardMs: deltaU32(prev.discard?.ms ?? 0, cur.discard?.ms ?? 0),
    flushes: flushes as number,
    flushMs: deltaU32(prev.flush?.ms ?? 0, cur.flush?.ms ?? 0),
  };
}

export function iostat(d: DiskDelta, seconds: number): Iostat {
  const per = (n: number) => n / seconds;
  const avg = (num: number, den: number) => (den > 0 ? num / den : null);
  return {
    r_s: per(d.reads),
    w_s: per(d.writes),
    d_s: per(d.discards),
    f_s: per(d.flushes),
    rkB_s: per(d.sectorsRead) / 2,
    wkB_s: per(d.sectorsWritten) / 2,
    dkB_s: per(d.sectorsDiscarded) / 2,
    rrqm_s: per(d.readsMerged),
    wrqm_s: per(d.writesMerged),
    r_await_ms: avg(d.readMs, d.reads),
    w_await_ms: avg(d.writeMs, d.writes),
    d_await_ms: avg(d.discardMs, d.discards),
    f_await_ms: avg(d.flushMs, d.flushes),
    rareq_sz_kB: avg(d.sectorsRead / 2, d.reads),
    wareq_sz_kB: avg(d.sectorsWritten / 2, d.writes),
    aqu_sz: d.weightedMs / (seconds * 1000),
    util_pct: Math.min(100, (d.ioMs / (seconds * 1000)) * 100),
  };
}
