// The history store's writes watched from another thread (pebble's disk-health check for the
// agent's own SQLite file). around() marks a write's start in shared memory; the watchdog thread
// (watchdog-worker.ts) logs while one lasts past the slow threshold, since the main thread, stuck
// in the write, cannot. When the write returns, its real duration is judged here: a slow or
// stalled write becomes episodes (metrics) and a detected + cleared pair of events.
import { Worker } from "node:worker_threads";
import type { Registry } from "prom-client";
import type { Logger } from "../log.js";
import { levelOf, stallEvent, type StallLimits, stallMetrics } from "../stalls.js";
import type { EventInput } from "./store.js";
import { type HistoryOp, OP, OPS, SLOTS, START, type WatchdogData } from "./watchdog-protocol.js";

export class WriteWatchdog {
  private readonly slots = new BigInt64Array(new SharedArrayBuffer(8 * SLOTS));
  private worker: Worker | undefined;
  private depth = 0;
  private readonly metrics;

  constructor(
    private readonly path: string,
    private limits: StallLimits,
    registry: Registry,
    private readonly log: Logger,
    /** Where the events of a write that was slow go (the store's own buffer). */
    private readonly event: (e: EventInput) => void,
  ) {
    this.metrics = stallMetrics(registry);
    this.start();
  }

  private start(): void {
    const data: WatchdogData = {
      shared: this.slots.buffer,
      path: this.path,
      ...this.limits,
    };
    const w = new Worker(new URL("./watchdog-worker.js", import.meta.url), {
      workerData: data,
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 8 },
    });
    w.unref();
    w.on("error", (e) => this.log.warn({ err: e.message }, "history watchdog failed"));
    this.worker = w;
  }

  setLimits(l: StallLimits): void {
    if (
      l.slow_seconds === this.limits.slow_seconds &&
      l.stall_seconds === this.limits.stall_seconds
    )
      return;
    this.limits = l;
    void this.worker?.terminate();
    this.start();
  }

  /** Runs one write, watched; nested writes count as the outer one. */
  around<T>(op: HistoryOp, write: () => T): T {
    if (this.depth > 0) return write();
    const t0 = Date.now();
    Atomics.store(this.slots, OP, BigInt(OPS.indexOf(op)));
    Atomics.store(this.slots, START, BigInt(t0));
    this.depth++;
    try {
      return write();
    } finally {
      this.depth--;
      Atomics.store(this.slots, START, 0n);
      this.judge(op, t0, (Date.now() - t0) / 1000);
    }
  }

  private judge(op: HistoryOp, t0: number, seconds: number): void {
    const level = levelOf(seconds, this.limits);
    if (level === null) return;
    this.metrics.episodes.inc({ source: "history", level });
    (level === "stall" ? this.log.error : this.log.warn).call(
      this.log,
      { op, path: this.path, seconds },
      `history: ${op} took ${seconds.toFixed(1)} s (${level})`,
    );
    const detail = op;
    const crossed = level === "stall" ? this.limits.stall_seconds : this.limits.slow_seconds;
    this.event({
      ...stallEvent("history", this.path, {
        kind: "detected",
        key: op,
        level,
        age_seconds: crossed,
        detail,
      }),
      ts: t0 + crossed * 1000,
    });
    this.event(
      stallEvent("history", this.path, {
        kind: "cleared",
        key: op,
        level,
        duration_seconds: seconds,
        detail,
      }),
    );
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = undefined;
  }
}
