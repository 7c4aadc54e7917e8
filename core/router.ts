// The core's half of publishing: a collector's observations and background results go to its
// sinks, and what the sinks return goes to history. Collectors never hold the history writer.
import type { ScheduleSpec, Scheduler } from "./scheduler.js";
import type { Collector, HistoryRow, Sink, Sinks } from "./collector.js";
import { errorMessage } from "./errors.js";
import type { EventInput, Labels, TopIoRow } from "./history/store.js";
import type { Logger } from "./log.js";

/** The part of HistoryStore the router writes through. */
export interface HistoryWriter {
  recorder(metric: string, labels: Labels): Recorder;
  event(e: EventInput): void;
  topIo(ts: number, rows: readonly TopIoRow[]): void;
  setState(key: string, value: string): boolean;
  setStateWithBatch(key: string, value: string): void;
}

type Recorder = (value: number, ts?: number) => void;

export class Router<O, U = never> {
  /** Recorders bound per labels object (a history key sorts and serialises labels; once is enough). */
  private readonly recorders = new WeakMap<Labels, Map<string, Recorder>>();

  constructor(
    private readonly name: string,
    private readonly sinks: Sinks<O, U>,
    /** Null for --once, which must not change the node's history. */
    private readonly history: HistoryWriter | null,
    private readonly log: Logger,
  ) {}

  /** A fresh observation from a scheduled run. Throws what a sink throws (the scheduler counts it). */
  observation(o: O): void {
    this.route(this.sinks.observation, o);
  }

  /** A background result the collector emitted; never throws into the collector's work. */
  readonly update = (u: U): void => {
    if (!this.sinks.update) return;
    try {
      this.route(this.sinks.update, u);
    } catch (e) {
      this.log.warn({ collector: this.name, err: errorMessage(e) }, "publishing an update failed");
    }
  };

  /** Closing: the sinks' last words, after the collector's own close. */
  close(): void {
    if (this.sinks.close) this.route(this.sinks.close, undefined);
  }

  private route<M>(sink: Sink<M>, m: M): void {
    sink.metrics?.(m);
    // Sinks run even without history: their conditions advance the same way.
    const h = this.history;
    if (sink.history) for (const row of sink.history(m)) if (h) this.write(h, row);
    if (sink.events) for (const e of sink.events(m)) h?.event(e);
  }

  private write(h: HistoryWriter, row: HistoryRow): void {
    if ("series" in row) {
      let bound = this.recorders.get(row.labels);
      if (!bound) this.recorders.set(row.labels, (bound = new Map<string, Recorder>()));
      let rec = bound.get(row.series);
      if (!rec) bound.set(row.series, (rec = h.recorder(row.series, row.labels)));
      rec(row.value, row.ts);
    } else if ("topIo" in row) h.topIo(row.ts, row.topIo);
    else if (row.durable) h.setState(row.state, row.value);
    else h.setStateWithBatch(row.state, row.value);
  }
}

/** A collector with its route: what the scheduler runs and the app closes. */
export interface Routed {
  readonly collector: Collector<unknown>;
  readonly route: { close(): void };
  /**
   * Puts the collector on the scheduler; each fresh observation goes to its sinks, then to
   * `keep` (the app's latest map). A closure, so the collector's observation type stays known.
   */
  schedule(s: Scheduler, spec: ScheduleSpec): void;
}

/** Closes the collector, then its sinks (kmsg's pending incidents are written last). */
export async function closeRouted(r: Pick<Routed, "collector" | "route">): Promise<void> {
  try {
    await r.collector.close?.();
  } finally {
    r.route.close();
  }
}
