// The backup pause policy, pure: when WAL fsync has been slow long enough to pause a unit, how
// to pause it, when a pause has done its job or failed to, and how much pause time a unit has
// left. No I/O here; the remediator feeds it facts and carries out what it says.
import { percentileSorted } from "../../core/history/percentile.js";
import { fsyncSlow } from "../../judge/index.js";
import type { PauseMethod, UnitKind } from "./systemd.js";

export const DAY_MS = 86_400_000;

export interface PolicyConfig {
  /** p99 at or above this (seconds) is slow (the judge's fsyncSlow). */
  readonly threshold: number;
  /** p99 below this (seconds) is recovered. */
  readonly resumeBelow: number;
  /** Slow for this long (ms) triggers a pause. */
  readonly forMs: number;
  /** The p99 is taken over this much recent time (ms). */
  readonly windowMs: number;
  /** Recovered for this long (ms) ends a pause (hysteresis). */
  readonly resumeAfterMs: number;
  /** A pause that has not brought p99 under the threshold by then is not the cure (ms). */
  readonly improveWithinMs: number;
  readonly maxPauseMs: number;
  readonly dailyBudgetMs: number;
  /** A service below this many bytes/s is not competing. */
  readonly minIoBytesPerSecond: number;
}

/** Latency samples (seconds) by time, for percentiles over a sliding window. */
export class LatencyWindow {
  private readonly samples: Array<{ t: number; v: number }> = [];
  constructor(private readonly keepMs: number) {}

  push(t: number, v: number): void {
    if (!Number.isFinite(v) || v < 0) return;
    const last = this.samples.at(-1);
    if (last && t < last.t) this.samples.length = 0; // the clock went back: start over rather than mix
    this.samples.push({ t, v });
    const cut = t - this.keepMs;
    let drop = 0;
    while (drop < this.samples.length && (this.samples[drop]?.t ?? 0) < cut) drop++;
    if (drop > 0) this.samples.splice(0, drop);
  }

  /** p99 of the samples in [from, to], with how many there were; null when there are none. */
  p99(from: number, to: number): { p99: number; n: number } | null {
    const vs = this.samples
      .filter((s) => s.t >= from && s.t <= to)
      .map((s) => s.v)
      .sort((a, b) => a - b);
    return vs.length === 0 ? null : { p99: percentileSorted(vs, 0.99), n: vs.length };
  }

  get size(): number {
    return this.samples.length;
  }
}

/** How long a condition has held continuously: since when, or null while it does not hold. */
export class Streak {
  private since: number | null = null;
  /** `holds` null means unknown (no data): the streak is broken, not extended. */
  update(now: number, holds: boolean | null): void {
    if (holds === true) this.since ??= now;
    else this.since = null;
  }
  heldFor(now: number): number {
    return this.since === null ? 0 : Math.max(0, now - this.since);
  }
  get start(): number | null {
    return this.since;
  }
}

/** Paused time inside the last 24 h, from a unit's pause intervals (end null: still paused). */
export function pausedInLastDay(
  intervals: ReadonlyArray<{ start: number; end: number | null }>,
  now: number,
): number {
  const from = now - DAY_MS;
  let ms = 0;
  for (const iv of intervals) {
    const s = Math.max(iv.start, from);
    const e = Math.min(iv.end ?? now, now);
    if (e > s) ms += e - s;
  }
  return ms;
}

export const budgetLeft = (
  cfg: PolicyConfig,
  intervals: ReadonlyArray<{ start: number; end: number | null }>,
  now: number,
): number => Math.max(0, cfg.dailyBudgetMs - pausedInLastDay(intervals, now));

export interface UnitFacts {
  readonly unit: string;
  readonly kind: UnitKind;
  /** ActiveState is "active". */
  readonly active: boolean;
  readonly load: string;
  readonly watchdog: boolean;
  readonly canFreeze: boolean;
  /** Recent I/O of the unit on the WAL's device(s), bytes/s (max over the window); null when unknown. */
  readonly ioBytesPerSecond: number | null;
}

export type PauseChoice =
  | {
      readonly kind: "pause";
      readonly method: PauseMethod;
      readonly forMs: number;
      readonly why: string;
    }
  /** Not a candidate now; nothing to tell anyone (inactive, idle). */
  | { readonly kind: "skip"; readonly reason: string }
  /** A candidate the agent will not touch, worth an event (budget spent, not loaded). */
  | { readonly kind: "refuse"; readonly reason: string };

/** How to pause a unit that should be paused: freezing where it is safe, SIGSTOP where not. */
export function pauseMethod(f: Pick<UnitFacts, "kind" | "watchdog" | "canFreeze">): {
  method: PauseMethod;
  why: string;
} {
  if (f.kind === "timer")
    return { method: "stop-timer", why: "a timer is stopped, and started again on resume" };
  if (f.watchdog)
    return {
      method: "sigstop",
      why: "the unit has WatchdogSec=, and a frozen unit with a watchdog wedges on systemd 252: SIGSTOP instead",
    };
  if (!f.canFreeze)
    return { method: "sigstop", why: "systemd says the unit cannot be frozen: SIGSTOP instead" };
  return { method: "freeze", why: "frozen with the cgroup freezer" };
}

/**
 * Whether to pause one listed unit, given that WAL fsync has been slow for `for`.
 * `manual`: an operator asked (no I/O condition; the length is theirs, within max_pause and budget).
 */
export function choosePause(
  cfg: PolicyConfig,
  f: UnitFacts,
  leftMs: number,
  opts: { manual?: { forMs: number } } = {},
): PauseChoice {
  if (f.load !== "loaded")
    return {
      kind: "refuse",
      reason: `${f.unit} is not a loaded unit (LoadState=${f.load || "unknown"})`,
    };
  if (!f.active) return { kind: "skip", reason: `${f.unit} is not active` };
  if (leftMs <= 0)
    return {
      kind: "refuse",
      reason:
        `${f.unit}'s daily pause budget (${Math.round(cfg.dailyBudgetMs / 60_000)} min in 24 h) is ` +
        `spent: left alone so backups are delayed, never starved`,
    };
  if (!opts.manual && f.kind === "service") {
    if (f.ioBytesPerSecond === null)
      return { kind: "skip", reason: `no I/O figures for ${f.unit} yet` };
    if (f.ioBytesPerSecond < cfg.minIoBytesPerSecond)
      return {
        kind: "skip",
        reason: `${f.unit} is not doing I/O on the WAL's device (${(f.ioBytesPerSecond / 1048576).toFixed(2)} MiB/s)`,
      };
  }
  const { method, why } = pauseMethod(f);
  const want = opts.manual ? Math.min(opts.manual.forMs, cfg.maxPauseMs) : cfg.maxPauseMs;
  return { kind: "pause", method, forMs: Math.min(want, leftMs), why };
}

export interface Held {
  readonly since: number;
  readonly deadline: number;
  readonly by: "agent" | "operator";
  /** When the WAL's p99 first came back under the threshold after the pause; null: not yet. */
  readonly improvedAt: number | null;
}

export type HeldVerdict =
  | { readonly kind: "keep"; readonly improved: boolean }
  | {
      readonly kind: "resume";
      readonly reason: "deadline" | "recovered" | "not_improving";
      readonly message: string;
    };

/**
 * For a unit the agent holds: keep it paused, or resume it and why. `post` is the p99 over the
 * window counting only samples taken since the pause; `recoveredForMs` how long that p99 has
 * stayed under resume_below. An operator's pause ends only at its deadline or by the operator.
 */
export function judgeHeld(
  cfg: PolicyConfig,
  h: Held,
  now: number,
  post: { p99: number; n: number } | null,
  recoveredForMs: number,
): HeldVerdict {
  if (now >= h.deadline)
    return {
      kind: "resume",
      reason: "deadline",
      message:
        `the pause reached its end (${Math.round((h.deadline - h.since) / 1000)} s: ` +
        `max_pause or the budget left)`,
    };
  if (h.by === "operator") return { kind: "keep", improved: h.improvedAt !== null };
  const improved =
    h.improvedAt !== null ||
    (post !== null &&
      post.n >= 3 &&
      !fsyncSlow(post.p99, { warn: cfg.resumeBelow, crit: cfg.threshold }));
  if (!improved && now - h.since >= cfg.improveWithinMs) {
    return {
      kind: "resume",
      reason: "not_improving",
      message:
        `WAL fsync p99 did not come back under ${fmtMs(cfg.threshold)} within ` +
        `${Math.round(cfg.improveWithinMs / 1000)} s of pausing ` +
        `(${post ? `p99 ${fmtMs(post.p99)} over ${post.n} samples since` : "no samples since"}): ` +
        `the pause was not the cure`,
    };
  }
  if (improved && recoveredForMs >= cfg.resumeAfterMs)
    return {
      kind: "resume",
      reason: "recovered",
      message: `WAL fsync p99 stayed under ${fmtMs(cfg.resumeBelow)} for ${Math.round(recoveredForMs / 1000)} s`,
    };
  return { kind: "keep", improved };
}

export const fmtMs = (s: number) => `${(s * 1000).toFixed(s < 0.01 ? 2 : 0)} ms`;
