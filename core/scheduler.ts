// Runs each collector on its own cadence, isolated from the others.
//
// - Monotonic time (performance.now) for cadence, so wall-clock jumps neither stall nor burst runs.
// - A run gets an AbortSignal that fires at its timeout; the failure is counted at once,
//   but the collector stays "running" until its promise settles, so a hung collector
//   never piles up a second run (the next due slots count as "overlap").
// - A throw, a rejection or a hang only ever touches that collector's own state.
import { performance } from "node:perf_hooks";
import type { Collector } from "./collector.js";
import type { Duration } from "./config/units.js";
import { errorMessage, TimeoutError } from "./errors.js";
import type { Logger } from "./log.js";
import type { CollectorErrorReason, CoreMetrics } from "./metrics/registry.js";

export interface ScheduleSpec {
  readonly interval: Duration;
  readonly timeout: Duration;
  readonly jitter: Duration;
}

export interface CollectorStatus {
  readonly name: string;
  readonly interval_seconds: number;
  readonly timeout_seconds: number;
  readonly running: boolean;
  readonly runs: number;
  readonly failures: number;
  readonly consecutive_failures: number;
  readonly last_success: string | null;
  readonly last_duration_seconds: number | null;
  readonly last_error: {
    readonly at: string;
    readonly reason: CollectorErrorReason;
    readonly message: string;
  } | null;
}

interface Slot {
  readonly collector: Collector<unknown>;
  /**
   * One run: collect, and return what hands the fresh observation on (to the collector's route
   * and the latest map). A closure, so each slot keeps its collector's observation type.
   */
  readonly collect: (signal: AbortSignal) => Promise<() => void>;
  spec: ScheduleSpec;
  timer: NodeJS.Timeout | undefined;
  /** Monotonic ms of the next planned run, before jitter. */
  nextDue: number;
  /** The run in flight (settles even after a timeout, when the collector finally returns). */
  inFlight: Promise<void> | undefined;
  abort: AbortController | undefined;
  runs: number;
  failures: number;
  consecutiveFailures: number;
  lastSuccess: number | null;
  lastDuration: number | null;
  lastError: { at: number; reason: CollectorErrorReason; message: string } | null;
}

export class Scheduler {
  private readonly slots = new Map<string, Slot>();
  private started = false;

  constructor(
    private readonly metrics: CoreMetrics,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {}

  /** `publish` gets each fresh observation (the core routes it to sinks and keeps it as latest). */
  add<O>(collector: Collector<O>, spec: ScheduleSpec, publish?: (observation: O) => void): void {
    if (this.slots.has(collector.name)) throw new Error(`collector ${collector.name} added twice`);
    this.metrics.declareCollector(collector.name);
    const slot: Slot = {
      collector,
      collect: async (signal) => {
        const o = await collector.collect({ signal });
        return () => publish?.(o);
      },
      spec,
      timer: undefined,
      nextDue: 0,
      inFlight: undefined,
      abort: undefined,
      runs: 0,
      failures: 0,
      consecutiveFailures: 0,
      lastSuccess: null,
      lastDuration: null,
      lastError: null,
    };
    this.slots.set(collector.name, slot);
    if (this.started) this.arm(slot, performance.now() + this.phase(slot));
  }

  /** New interval/timeout/jitter (config reload); takes effect from the next run. */
  update(name: string, spec: ScheduleSpec): void {
    const slot = this.slots.get(name);
    if (!slot) return;
    const changed = slot.spec.interval !== spec.interval || slot.spec.jitter !== spec.jitter;
    slot.spec = spec;
    if (changed && this.started) {
      clearTimeout(slot.timer);
      this.arm(slot, performance.now() + this.phase(slot));
    }
  }

  /** Stops scheduling a collector (reload); a run in flight is aborted and left to settle. */
  remove(name: string): Collector | undefined {
    const slot = this.slots.get(name);
    if (!slot) return undefined;
    clearTimeout(slot.timer);
    slot.abort?.abort(new Error("collector removed"));
    this.slots.delete(name);
    return slot.collector;
  }

  names(): string[] {
    return [...this.slots.keys()];
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    const now = performance.now();
    for (const slot of this.slots.values()) this.arm(slot, now + this.phase(slot));
  }

  /** Stop scheduling, abort runs in flight and wait for them (bounded by `graceMs`). */
  async stop(graceMs = 2000): Promise<void> {
    this.started = false;
    const pending: Promise<void>[] = [];
    for (const slot of this.slots.values()) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
      if (slot.inFlight) {
        slot.abort?.abort(new Error("agent stopping"));
        pending.push(slot.inFlight);
      }
    }
    if (pending.length === 0) return;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(pending),
      new Promise<void>((r) => (t = setTimeout(r, graceMs))),
    ]);
    clearTimeout(t);
  }

  status(): CollectorStatus[] {
    return [...this.slots.values()].map((s) => ({
      name: s.collector.name,
      interval_seconds: s.spec.interval / 1000,
      timeout_seconds: s.spec.timeout / 1000,
      running: s.inFlight !== undefined,
      runs: s.runs,
      failures: s.failures,
      consecutive_failures: s.consecutiveFailures,
      last_success: s.lastSuccess === null ? null : new Date(s.lastSuccess).toISOString(),
      last_duration_seconds: s.lastDuration,
      last_error: s.lastError && {
        at: new Date(s.lastError.at).toISOString(),
        reason: s.lastError.reason,
        message: s.lastError.message,
      },
    }));
  }

  /** This collector's offset from start (see phases()). */
  private phase(slot: Slot): number {
    const slots = [...this.slots.values()];
    return phases(slots.map((s) => s.spec.interval))[slots.indexOf(slot)] ?? 0;
  }

  /** Plan the first run at `due`; a random offset within the jitter spreads nodes apart. */
  private arm(slot: Slot, due: number): void {
    slot.nextDue = due;
    this.schedule(slot);
  }

  /** Told how late each collector's timer fired (ms): the agent's event-loop delay, sampled for free. */
  onLate: ((ms: number) => void) | undefined;

  private schedule(slot: Slot): void {
    if (!this.started) return;
    const delay = Math.max(0, slot.nextDue - performance.now()) + this.random() * slot.spec.jitter;
    const due = performance.now() + delay;
    slot.timer = setTimeout(() => {
      this.onLate?.(performance.now() - due);
      this.tick(slot);
    }, delay);
  }

  private tick(slot: Slot): void {
    slot.timer = undefined;
    const now = performance.now();
    // Fixed cadence from the planned slot; when far behind (a long pause), skip the missed slots.
    slot.nextDue += slot.spec.interval;
    if (slot.nextDue < now) slot.nextDue = now + slot.spec.interval;
    if (slot.inFlight) {
      this.fail(
        slot,
        "overlap",
        `previous run (started ${slot.spec.timeout / 1000}s+ ago) has not ended; run skipped`,
      );
    } else {
      slot.inFlight = this.runOnce(slot);
    }
    this.schedule(slot);
  }

  private async runOnce(slot: Slot): Promise<void> {
    const { collector, spec } = slot;
    const ac = new AbortController();
    slot.abort = ac;
    const started = performance.now();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort(new TimeoutError(`timed out after ${spec.timeout}ms`));
      this.fail(slot, "timeout", `no result within ${spec.timeout / 1000}s; aborted`);
    }, spec.timeout);
    try {
      const publish = await slot.collect(ac.signal);
      if (timedOut || ac.signal.aborted) return; // too late: the failure is already counted
      slot.runs++;
      slot.consecutiveFailures = 0;
      slot.lastSuccess = Date.now();
      this.metrics.collectorLastSuccess.labels(collector.name).set(slot.lastSuccess / 1000);
      this.metrics.collectorUp.labels(collector.name).set(1);
      try {
        publish();
      } catch (e) {
        this.fail(slot, "error", `publishing failed: ${errorMessage(e)}`);
      }
    } catch (e) {
      if (!timedOut && !ac.signal.aborted) this.fail(slot, "error", errorMessage(e));
      else if (!timedOut)
        this.log.debug({ collector: collector.name }, "collector aborted while stopping");
    } finally {
      clearTimeout(timer);
      const secs = (performance.now() - started) / 1000;
      slot.lastDuration = secs;
      this.metrics.collectorDuration.labels(collector.name).observe(secs);
      if (timedOut)
        this.log.warn(
          { collector: collector.name, seconds: secs },
          "timed-out collector run finally ended",
        );
      slot.inFlight = undefined;
      slot.abort = undefined;
    }
  }

  private fail(slot: Slot, reason: CollectorErrorReason, message: string): void {
    const name = slot.collector.name;
    slot.failures++;
    slot.consecutiveFailures++;
    if (reason !== "overlap") slot.runs++;
    slot.lastError = { at: Date.now(), reason, message };
    this.metrics.collectorErrors.labels(name, reason).inc();
    this.metrics.collectorUp.labels(name).set(0);
    // Log the first failure of a streak and then sparsely, so a broken collector cannot flood the journal.
    const n = slot.consecutiveFailures;
    if (n === 1 || (n & (n - 1)) === 0)
      this.log.warn({ collector: name, reason, consecutive: n }, `collector failed: ${message}`);
  }
}

/**
 * Offsets of the collectors' first runs, so their cadences keep them apart. In one phase, every
 * collector whose interval is a multiple of 5 s ran in the same turn of the event loop (every
 * 30 s all of them): a 30-60 ms burst that delayed scrapes and the control socket. Collectors
 * of 1 s or faster stay at 0 (each would otherwise cost a wake-up of its own every second); the
 * k-th slower one starts k base steps later (the shortest interval, at most 1 s), so it runs in
 * a turn the fast ones wake for anyway, and never in the same one as another slow collector
 * while there are fewer of them than base steps in their intervals.
 */
export function phases(intervals: readonly number[]): number[] {
  const base = Math.min(1000, ...intervals);
  let k = 0;
  return intervals.map((i) => (i <= 1000 ? 0 : (++k * base) % i));
}
