// Rises of the kernel's error counters, and whether the kernel log accounts for them. Pure: the
// samples, the clock and the kernel log's record (a query) are passed in.
//
// Timing. A rise is seen at a sample (atMs) and happened after the previous one (sinceMs). The
// kernel prints its line next to the increment (ext4 prints, then counts; btrfs counts, then
// prints), and the kernel-log collector records it when it reads it, a tick later (or a few
// seconds for the journal). So a line belongs to a rise when it was recorded from BEFORE_MS
// before the previous sample up to `windowMs` after this one; the rise is judged only once that
// window has closed and history has flushed (`settleMs`), so a late line is never missed.
import type { KernelLogQuery } from "../kmsg/sink.js";
import type { CounterKind, LogCheck, Rise } from "./observation.js";

/** Lines recorded this long before the previous sample still count (clock and read jitter). */
export const BEFORE_MS = 5_000;
/** Rises waiting for their window at most; beyond, the oldest go unchecked (a storm is logged). */
export const MAX_PENDING = 256;

export type { KernelLogQuery, KernelLogSeen } from "../kmsg/sink.js";

/** One counter's identity and value at one sample. */
export interface CounterSample {
  readonly counter: CounterKind;
  readonly device: string;
  readonly disk: string | null;
  readonly mountpoint: string | null;
  readonly value: number;
  readonly logged: boolean;
}

const keyOf = (s: CounterSample) => `${s.counter}\u0000${s.device}\u0000${s.mountpoint ?? ""}`;

/**
 * The rises between two samples. A counter seen for the first time, or one that went back (the
 * device re-attached, the filesystem fsck'd and mounted again), is a new baseline, not a rise.
 */
export function risesBetween(
  before: ReadonlyMap<string, number> | null,
  now: readonly CounterSample[],
  sinceMs: number,
  atMs: number,
): { rises: Rise[]; values: Map<string, number> } {
  const values = new Map<string, number>();
  const rises: Rise[] = [];
  for (const s of now) {
    const key = keyOf(s);
    values.set(key, s.value);
    const prev = before?.get(key);
    if (prev !== undefined && s.value > prev)
      rises.push({
        counter: s.counter,
        device: s.device,
        disk: s.disk,
        mountpoint: s.mountpoint,
        from: prev,
        to: s.value,
        sinceMs,
        atMs,
        logged: s.logged,
      });
  }
  return { rises, values };
}

/** The window in which a line accounts for a rise. */
export function windowOf(r: Rise, windowMs: number): { fromMs: number; toMs: number } {
  return { fromMs: r.sinceMs - BEFORE_MS, toMs: r.atMs + windowMs };
}

/** Rises waiting until their window has closed and history holds every line recorded in it. */
export class PendingRises {
  private queue: Rise[] = [];

  constructor(
    private readonly windowMs: number,
    private readonly settleMs: number,
  ) {}

  get size(): number {
    return this.queue.length;
  }

  /** Queues the rises the kernel always logs on a known disk; how many old ones were dropped. */
  add(rises: readonly Rise[]): number {
    for (const r of rises) if (r.logged && r.disk !== null) this.queue.push(r);
    const over = Math.max(0, this.queue.length - MAX_PENDING);
    if (over > 0) this.queue = this.queue.slice(over);
    return over;
  }

  /** The rises whose window has closed by `nowMs`, with what the kernel log recorded in it. */
  judge(nowMs: number, query: KernelLogQuery): LogCheck[] {
    const due = this.queue.filter((r) => windowOf(r, this.windowMs).toMs + this.settleMs <= nowMs);
    if (due.length === 0) return [];
    this.queue = this.queue.filter((r) => !due.includes(r));
    return due.map((rise) => {
      const w = windowOf(rise, this.windowMs);
      const seen = query(rise.disk ?? "", w.fromMs, w.toMs);
      return { rise, ...seen, ...w };
    });
  }
}
