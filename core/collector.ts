// The contract between the core and a collector. A collector observes; it never acts and never
// publishes. The core owns time: it calls collect() on schedule with an AbortSignal that fires at
// the collector's timeout, and it alone routes observations: the scheduler hands each fresh one
// to the collector's sinks (core/router.ts), and background results the collector emits through
// the callback the core gave it take the same route.
import type { EventFilter, StoredEvent } from "./history/queries.js";
import type { EventInput, Labels, TopIoRow } from "./history/store.js";

export interface CollectContext {
  /** Fires when the run's timeout passes or the agent stops: stop work, kill children. */
  readonly signal: AbortSignal;
}

export interface Collector<O = unknown> {
  /** Stable identifier: metric label value and config section name. */
  readonly name: string;
  /** One observation. Throwing or rejecting is a counted failure that never affects other collectors. */
  collect(ctx: CollectContext): Promise<O>;
  /** For --once: take a first sample, wait this long, report the second (rates need two). */
  readonly onceWarmupMs?: number;
  /** Releases watchers, files and timers. */
  close?(): void | Promise<void>;
}

/** One write to history, named by series (never by position). */
export type HistoryRow =
  | {
      readonly series: string;
      /** Reuse one object per series' labels: the router binds a recorder to it once. */
      readonly labels: Labels;
      readonly value: number;
      readonly ts?: number;
    }
  | { readonly topIo: readonly TopIoRow[]; readonly ts: number }
  /** Small state: committed with the rows buffered so far, or at once when `durable`. */
  | { readonly state: string; readonly value: string; readonly durable?: true };

/** Where one kind of message (an observation, a background result) goes. Only the core calls it. */
export interface Sink<M> {
  /** Sets the collector's Prometheus metrics. */
  metrics?(m: M): void;
  /** Rows for history. */
  history?(m: M): Iterable<HistoryRow>;
  /** Events for history: transitions of the collector's conditions (core/conditions.ts). */
  events?(m: M): Iterable<EventInput>;
}

/** A collector's sinks: built from the registry by the collector's sink module. */
export interface Sinks<O, U = never> {
  readonly observation: Sink<O>;
  /** Results of background work (SMART's polls, a late fsync probe) the collector emits. */
  readonly update?: Sink<U>;
  /** When the collector is closed: what is still pending (kmsg's open incidents). */
  readonly close?: Sink<void>;
}

/** What a collector may read of history: series (through typed queries) and its own state. */
export interface HistoryReader {
  series(metric: string, labels: Labels, since: number): Array<{ ts: number; value: number }>;
  getState(key: string): string | undefined;
  /** Events (newest first): what another collector recorded, read through its typed query. */
  events(filter: EventFilter): StoredEvent[];
}
