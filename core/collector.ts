// The contract between the core and a collector. A collector observes; it never acts.
// The core owns time: it calls collect() on schedule with an AbortSignal that fires at the
// collector's timeout, and it alone decides where observations go.

export interface CollectContext {
  /** Fires when the run's timeout passes or the agent stops: stop work, kill children. */
  readonly signal: AbortSignal;
}

export interface Collector<O = unknown> {
  /** Stable identifier: metric label value and config section name. */
  readonly name: string;
  /** One observation. Throwing or rejecting is a counted failure that never affects other collectors. */
  collect(ctx: CollectContext): Promise<O>;
  /** Hands a fresh observation to metrics and history. Not called by --once. */
  publish?(observation: O): void;
  /** For --once: take a first sample, wait this long, report the second (rates need two). */
  readonly onceWarmupMs?: number;
  /** Releases watchers, files and timers. */
  close?(): void | Promise<void>;
}
