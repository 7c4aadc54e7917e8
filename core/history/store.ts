// The agent's memory: one SQLite file in the state dir.
//
// Writes are buffered in memory and flushed in one transaction every flush_interval, so
// collectors never wait on the disk. Raw samples are kept briefly; each minute is summarised
// (count/sum/min/max/p50/p99) as it closes, minutes are summarised into hours, and each
// resolution has its own retention, so the file stays bounded.
//
// The store never takes the agent down: a corrupt file is moved aside and replaced, a full
// disk stops writes (rows wait in a bounded buffer, oldest dropped first) until space returns,
// and if no file can be used at all the store runs in memory and says so.
import { statSync } from "node:fs";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import type { Duration } from "../config/units.js";
import { errorCode, errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { CoreMetrics } from "../metrics/registry.js";
import {
  finishRow,
  insertRow,
  type JournalRow,
  type JournalState,
  recentRows,
  unfinishedRows,
} from "./journal.js";
import { type ExportCursor, type ExportPage, exportPage, type ExportWindow } from "./export.js";
import { MIGRATIONS, migrate, SCHEMA_VERSION } from "./migrations.js";
import { type Db, moveAside, openHistory, prepared } from "./open.js";
import { type Summary, summarize } from "./percentile.js";
import type { StallLimits } from "../stalls.js";
import { WriteWatchdog } from "./watchdog.js";
import type { HistoryOp } from "./watchdog-protocol.js";
import * as q from "./queries.js";

/** How often maintenance recounts the rows of each table (they are counted at open too). */
const ROW_COUNT_EVERY_MS = 15 * 60_000;

export const HISTORY_FILE = "history.db";
const MINUTE = 60_000;
const HOUR = 3_600_000;
/** A minute is summarised this long after it ends, so late samples of a slow collector still count. */
const MINUTE_GRACE = 5_000;
/** Values kept per series per minute for percentiles; a 1 s collector gives 60. */
const MAX_VALUES_PER_MINUTE = 1_000;
/** A sample this far before its series' current minute means the wall clock went back. */
const CLOCK_STEP_BACK = 5 * MINUTE;

export type Labels = Readonly<Record<string, string>>;
export type EventSeverity = "info" | "warn" | "crit";

export interface EventInput {
  readonly class: string;
  readonly kind: string;
  readonly severity: EventSeverity;
  readonly message: string;
  readonly subject?: string | undefined;
  readonly data?: unknown;
  readonly ts?: number;
}

export interface TopIoRow {
  readonly pid: number;
  readonly comm: string;
  readonly unit: string | null;
  readonly read_bps: number;
  readonly write_bps: number;
}

export interface Retention {
  readonly raw_retention: Duration;
  readonly minute_retention: Duration;
  readonly hour_retention: Duration;
  readonly event_retention: Duration;
  readonly top_io_retention: Duration;
  readonly max_pending_rows: number;
}

/** Why writes are not happening, or "ok". */
export type WriteState = "ok" | "full" | "io-error" | "read-only" | "memory";

export interface HistoryStats {
  readonly path: string | null;
  readonly mode: "file" | "memory";
  readonly write_state: WriteState;
  readonly last_error: string | null;
  readonly schema_version: number;
  readonly size_bytes: number;
  readonly pending_rows: number;
  readonly dropped_rows: number;
  readonly rows: {
    readonly series: number;
    readonly samples: number;
    readonly rollups: number;
    readonly events: number;
  };
  readonly rows_counted_at: string | null;
}

/** Why a write that had to be durable at once was not made. */
export type WriteFailure = "full" | "read-only" | "io-error" | "corrupt" | "memory";

/**
 * A write the caller needs durable before it goes on (a journal row) was not made. The store has
 * handled it like any failed write (write state, metrics, a damaged file moved aside); the caller
 * decides what not to do without it.
 */
export class HistoryWriteError extends Error {
  override readonly name = "HistoryWriteError";
  constructor(
    readonly reason: WriteFailure,
    detail: string,
  ) {
    super(`history ${reason === "memory" ? "in memory only" : reason}: ${detail}`);
  }
}

const SELECT_SERIES_ID = "SELECT id FROM series WHERE metric = ? AND labels = ?";
const UPSERT_STATE =
  "INSERT INTO state (key, value, updated) VALUES (?, ?, ?)" +
  " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated";

type PendingEvent = EventInput & { readonly ts: number };
type PendingSample = readonly [seriesKey: string, ts: number, value: number];
interface PendingRollup extends Summary {
  readonly seriesKey: string;
  readonly ts: number;
}
interface MinuteAcc {
  bucket: number;
  values: number[];
}

export interface HistoryOptions {
  readonly stateDir: string;
  readonly retention: Retention;
  readonly log: Logger;
  readonly metrics: CoreMetrics;
  readonly now?: () => number;
  /** Watch writes from another thread (the agent; tests of the store itself go without). */
  readonly stalls?: StallLimits;
}

export class HistoryStore {
  readonly path: string;
  /** Never handed out: every read and write goes through a typed method below. */
  #db: Db;
  private mode: "file" | "memory";
  private inode = 0;
  private writeState: WriteState = "ok";
  private lastError: string | null = null;
  private retention: Retention;
  private readonly log: Logger;
  private readonly metrics: CoreMetrics;
  private readonly now: () => number;
  private readonly seriesIds = new Map<string, number>();
  private pendingSamples: PendingSample[] = [];
  private pendingRollups: PendingRollup[] = [];
  private pendingEvents: PendingEvent[] = [];
  private pendingTopIo: Array<TopIoRow & { readonly ts: number }> = [];
  /** State written with the next batch, atomically with the events buffered before it. */
  private pendingState = new Map<string, string>();
  private readonly minutes = new Map<string, MinuteAcc>();
  private dropped = 0;
  private rowCounts = { series: 0, samples: 0, rollups: 0, events: 0 };
  /** Series rows the batch being written created (for rowCounts once it commits). */
  private newSeries = 0;
  private rowsCountedAt: number | null = null;
  private knownTables: string[] | undefined;
  /** Every write that can block in the kernel runs through it (a pass-through without one). */
  private readonly watchdog: WriteWatchdog | null;

  constructor(opts: HistoryOptions) {
    this.path = join(opts.stateDir, HISTORY_FILE);
    this.retention = opts.retention;
    this.log = opts.log;
    this.metrics = opts.metrics;
    this.now = opts.now ?? Date.now;
    this.watchdog = opts.stalls
      ? // After the write returns: a flush clears its batch once written, so not into that batch.
        new WriteWatchdog(this.path, opts.stalls, opts.metrics.registry, opts.log, (e) =>
          queueMicrotask(() => this.event(e)),
        )
      : null;
    const { db, mode } = this.openOrFallBack(opts.stateDir);
    this.#db = db;
    this.mode = mode;
    this.countRows();
  }

  setRetention(r: Retention): void {
    this.retention = r;
  }

  setStallLimits(l: StallLimits): void {
    this.watchdog?.setLimits(l);
  }

  private watched<T>(op: HistoryOp, write: () => T): T {
    return this.watchdog ? this.watchdog.around(op, write) : write();
  }

  /** Buffers one sample; it reaches the file at the next flush. */
  record(metric: string, labels: Labels, value: number, ts = this.now()): void {
    this.recordKey(seriesKey(metric, labels), value, ts);
  }

  /** A recorder for one series with its key computed once (collectors that record every second). */
  recorder(metric: string, labels: Labels): (value: number, ts?: number) => void {
    const key = seriesKey(metric, labels);
    return (value, ts = this.now()) => this.recordKey(key, value, ts);
  }

  private recordKey(key: string, value: number, ts: number): void {
    if (!Number.isFinite(value)) return;
    this.pendingSamples.push([key, ts, value]);
    const bucket = ts - (ts % MINUTE);
    let acc = this.minutes.get(key);
    if (acc && acc.bucket !== bucket) {
      // A late sample for a minute already summarised: raw only. Far behind is no late sample but
      // the wall clock stepped back (NTP): summarise what we had and go on, or no minute would be
      // summarised until the clock caught up again.
      if (bucket < acc.bucket && acc.bucket - bucket <= CLOCK_STEP_BACK) return;
      this.closeMinute(key, acc);
      acc = undefined;
    }
    if (!acc) {
      acc = { bucket, values: [] };
      this.minutes.set(key, acc);
    }
    if (acc.values.length < MAX_VALUES_PER_MINUTE) acc.values.push(value);
    this.bound();
  }

  /** Buffers one event; it reaches the file at the next flush. */
  event(e: EventInput): void {
    this.pendingEvents.push({ ...e, ts: e.ts ?? this.now() });
    this.bound();
  }

  /** Buffers the top I/O consumers of one interval. */
  topIo(ts: number, rows: readonly TopIoRow[]): void {
    for (const r of rows) this.pendingTopIo.push({ ...r, ts });
    this.bound();
  }

  /**
   * Writes state in the same transaction as the rows buffered so far (a resume position and the
   * events it accounts for commit together). getState sees it at once.
   */
  setStateWithBatch(key: string, value: string): void {
    this.pendingState.set(key, value);
  }

  /** Reads a small piece of durable state (resume points, baselines). */
  getState(key: string): string | undefined {
    const pending = this.pendingState.get(key);
    if (pending !== undefined) return pending;
    try {
      const row = prepared(this.#db, "SELECT value FROM state WHERE key = ?").get(key) as
        { value: string } | undefined;
      return row?.value;
    } catch (e) {
      this.log.warn({ key, err: errorMessage(e) }, "history: cannot read state");
      return undefined;
    }
  }

  /** Writes durable state at once (not buffered): callers rely on it surviving a crash. */
  setState(key: string, value: string): boolean {
    try {
      this.watched("state", () => prepared(this.#db, UPSERT_STATE).run(key, value, this.now()));
      return true;
    } catch (e) {
      this.onWriteError(e);
      return false;
    }
  }

  /** Writes everything buffered in one transaction. Never throws. */
  flush(): void {
    const now = this.now();
    for (const [key, acc] of this.minutes) {
      if (acc.bucket + MINUTE + MINUTE_GRACE <= now) {
        this.closeMinute(key, acc);
        this.minutes.delete(key);
      }
    }
    if (this.pendingCount() === 0 && this.pendingState.size === 0) return;
    try {
      // Never write a batch into a file that was removed, replaced, truncated or overwritten
      // under us: it would be lost at the next start. Checked here, not only each minute.
      this.watched("flush", () => {
        this.checkFileIdentity();
        this.checkFileContent();
        this.writeBatch(
          this.pendingSamples,
          this.pendingRollups,
          this.pendingEvents,
          this.pendingTopIo,
        );
      });
      this.pendingState = new Map();
      this.pendingSamples = [];
      this.pendingRollups = [];
      this.pendingEvents = [];
      this.pendingTopIo = [];
      if (this.writeState !== "ok" && this.mode === "file") {
        this.log.info({ previous: this.writeState }, "history: writes resumed");
        this.writeState = "ok";
        this.lastError = null;
      }
      this.metrics.historyWritable.set(this.mode === "file" ? 1 : 0);
    } catch (e) {
      this.onWriteError(e);
    }
  }

  /** Summarises closed hours, prunes past retention, checks the file is still ours. Never throws. */
  maintain(): void {
    const steps = this.maintenanceSteps();
    while (steps.next().done !== true) {
      // every step, now
    }
  }

  /**
   * maintain() one step per next(): the core takes one step per 1 s tick, so on a large history
   * the event loop is never held for all of it at once. Never throws; a failing step ends the
   * round (the next round starts over).
   */
  *maintenanceSteps(): Generator<void, void, void> {
    const steps: Array<() => void> = [
      () => (this.checkFileIdentity(), this.checkFileContent()),
      () => this.rollupHours(),
      () => this.prune(),
      () => this.#db.pragma("incremental_vacuum(2000)"),
      () => {
        // count(*) walks every page of a table on the event loop (~140 ms for 30 days of rollups
        // for 12 disks), so the counts, which status shows with their time, are refreshed rarely.
        const now = this.now();
        if (
          this.rowsCountedAt === null ||
          now - this.rowsCountedAt >= ROW_COUNT_EVERY_MS ||
          now < this.rowsCountedAt
        )
          this.countRows();
      },
    ];
    for (const step of steps) {
      try {
        this.watched("maintenance", step);
      } catch (e) {
        this.onWriteError(e);
        break;
      }
      yield;
    }
    this.metrics.historyFileBytes.set(this.sizeBytes());
  }

  /** Finishes the current minutes, flushes, checkpoints and closes. */
  close(): void {
    for (const [key, acc] of this.minutes) this.closeMinute(key, acc);
    this.minutes.clear();
    this.flush();
    try {
      if (this.mode === "file") this.#db.pragma("wal_checkpoint(TRUNCATE)");
    } catch {
      // best effort: the WAL file is replayed at next open anyway
    }
    this.#db.close();
    void this.watchdog?.close();
  }

  stats(): HistoryStats {
    return {
      path: this.mode === "file" ? this.path : null,
      mode: this.mode,
      write_state: this.writeState,
      last_error: this.lastError,
      schema_version: SCHEMA_VERSION,
      size_bytes: this.sizeBytes(),
      pending_rows: this.pendingCount(),
      dropped_rows: this.dropped,
      rows: { ...this.rowCounts },
      rows_counted_at:
        this.rowsCountedAt === null ? null : new Date(this.rowsCountedAt).toISOString(),
    };
  }

  /** One series since `since` (ms): raw samples where still kept, per-minute averages before them. */
  series(metric: string, labels: Labels, since: number): Array<{ ts: number; value: number }> {
    try {
      const key = seriesKey(metric, labels);
      const sep = key.indexOf("\u0000");
      const id = prepared(this.#db, SELECT_SERIES_ID, true).get(metric, key.slice(sep + 1)) as
        number | undefined;
      if (id === undefined) return [];
      const raw = prepared(
        this.#db,
        "SELECT ts, value FROM samples WHERE series_id = ? AND ts >= ? ORDER BY ts",
      ).all(id, since) as Array<{ ts: number; value: number }>;
      const firstRaw = raw[0]?.ts ?? Number.MAX_SAFE_INTEGER;
      const minutes = prepared(
        this.#db,
        "SELECT ts, sum / count AS value FROM rollups" +
          " WHERE series_id = ? AND resolution = 60 AND ts >= ? AND ts < ? ORDER BY ts",
      ).all(id, since, firstRaw) as Array<{ ts: number; value: number }>;
      return [...minutes, ...raw];
    } catch (e) {
      this.log.warn({ metric, err: errorMessage(e) }, "history: query failed");
      return [];
    }
  }

  /** p99 of one series' samples in the last `windowMs` (raw where kept), or null without any. */
  recentP99(metric: string, labels: Labels, windowMs: number, now = this.now()): number | null {
    return q.p99Of(this.series(metric, labels, now - windowMs));
  }

  /** Every metric name with a series, sorted. */
  metricNames(): string[] {
    return q.metricNames(this.#db);
  }

  /** The series of `metric` whose labels pass `keep`, as summary rows since `from` at `resolution`. */
  seriesSummaries(
    metric: string,
    resolution: q.Resolution,
    from: number,
    keep: (labels: Record<string, string>) => boolean = () => true,
  ): q.SeriesSummaries[] {
    return q.seriesSummaries(this.#db, metric, resolution, from, keep);
  }

  /** Events since `filter.since`, newest first. */
  events(filter: q.EventFilter): q.StoredEvent[] {
    return q.events(this.#db, filter);
  }

  /** The kernel log's storage failures since `since` (status and diagnose). */
  kernelLog(since: number, limit = 20): q.KernelLog {
    return q.kernelLog(this.#db, since, limit);
  }

  /** The heaviest I/O consumers since `since`. */
  topIoConsumers(since: number, limit: number): q.TopIoConsumer[] {
    return q.topIo(this.#db, since, limit);
  }

  /** One page of every stored point in a window (the diagnostic bundle's history CSV). */
  exportPage(w: ExportWindow, after: ExportCursor | null, limit: number): ExportPage {
    return exportPage(this.#db, w, after, limit);
  }

  // ---------------------------------------------------------------- remediation journal (see Journal)

  journalBegin(remediator: string, action: string, target: string, detail: unknown): number {
    return this.writeNow((db) => insertRow(db, remediator, action, target, detail, Date.now()));
  }

  journalFinish(id: number, state: JournalState, detail: unknown): void {
    if (id < 0) return; // begun while the journal was down: there is no row to close
    this.writeNow((db) => finishRow(db, id, state, detail, Date.now()));
  }

  journalUnfinished(remediator: string): Array<{ id: number; action: string; target: string }> {
    return unfinishedRows(this.#db, remediator);
  }

  journalRecent(limit: number): JournalRow[] {
    return recentRows(this.#db, limit);
  }

  // ---------------------------------------------------------------- internals

  private openOrFallBack(stateDir: string): { db: Db; mode: "file" | "memory" } {
    try {
      const opened = openHistory(this.path, stateDir);
      this.inode = statSync(this.path).ino;
      if (opened.recovered)
        this.noteRecovery("corrupt", opened.recovered.reason, opened.recovered.movedTo);
      if (opened.migration.kind === "migrated")
        this.log.info(
          { from: opened.migration.from, to: opened.migration.to },
          "history: schema migrated",
        );
      this.metrics.historyWritable.set(1);
      return { db: opened.db, mode: "file" };
    } catch (e) {
      this.writeState = "memory";
      this.lastError = `cannot use ${this.path}: ${errorMessage(e)}`;
      this.log.error(
        { path: this.path, err: errorMessage(e) },
        "history: no usable file; keeping history in memory only (lost at exit)",
      );
      this.metrics.historyWritable.set(0);
      const db = new Database(":memory:");
      migrate(db, MIGRATIONS);
      return { db, mode: "memory" };
    }
  }

  private noteRecovery(reason: string, detail: string, movedTo: string): void {
    this.metrics.historyRecoveries.labels(reason).inc();
    this.log.error(
      { path: this.path, movedTo, detail },
      "history: file could not be used; moved aside and started a new one",
    );
    this.event({
      class: "agent",
      kind: "history.recovered",
      severity: "warn",
      subject: this.path,
      message: `history file moved aside to ${movedTo} (${detail}); a new one was started`,
      data: { reason, detail, moved_to: movedTo },
    });
  }

  private closeMinute(key: string, acc: MinuteAcc): void {
    if (acc.values.length === 0) return;
    this.pendingRollups.push({ seriesKey: key, ts: acc.bucket, ...summarize(acc.values) });
  }

  private pendingCount(): number {
    return (
      this.pendingSamples.length +
      this.pendingRollups.length +
      this.pendingEvents.length +
      this.pendingTopIo.length
    );
  }

  /** Bounds memory while writes are failing: the oldest raw samples go first, then top-I/O rows, rollups, events. */
  private bound(): void {
    const max = this.retention.max_pending_rows;
    const total = this.pendingCount();
    if (total <= max) return;
    let excess = total - max + Math.floor(max / 10); // drop in chunks, not one row per call
    for (const queue of [
      this.pendingSamples,
      this.pendingTopIo,
      this.pendingRollups,
      this.pendingEvents,
    ] as unknown[][]) {
      const n = Math.min(excess, queue.length);
      queue.splice(0, n);
      excess -= n;
      this.dropped += n;
      this.metrics.historyDroppedRows.inc(n);
      if (excess === 0) break;
    }
  }

  /** Series id for `key`; ids created inside a transaction go to `fresh` until it commits. */
  private seriesId(
    key: string,
    fresh: Map<string, number>,
    insert: Database.Statement,
    select: Database.Statement,
  ): number {
    const known = this.seriesIds.get(key) ?? fresh.get(key);
    if (known !== undefined) return known;
    const sep = key.indexOf("\u0000");
    const metric = key.slice(0, sep);
    const labels = key.slice(sep + 1);
    if (insert.run(metric, labels).changes > 0) this.newSeries++;
    const row = select.get(metric, labels) as { id: number };
    fresh.set(key, row.id);
    return row.id;
  }

  private writeBatch(
    samples: readonly PendingSample[],
    rollups: readonly PendingRollup[],
    events: readonly PendingEvent[],
    topIo: HistoryStore["pendingTopIo"],
  ): void {
    const db = this.#db;
    const insSeries = prepared(db, "INSERT OR IGNORE INTO series (metric, labels) VALUES (?, ?)");
    const selSeries = prepared(db, SELECT_SERIES_ID);
    const insSample = prepared(
      db,
      "INSERT OR REPLACE INTO samples (series_id, ts, value) VALUES (?, ?, ?)",
    );
    // A minute seen twice (restart inside it) is merged, not overwritten.
    const insRollup = prepared(
      db,
      `INSERT INTO rollups (series_id, resolution, ts, count, sum, min, max, p50, p99)
      VALUES (?, 60, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (series_id, resolution, ts) DO UPDATE SET
        p50 = (p50 * count + excluded.p50 * excluded.count) / (count + excluded.count),
        p99 = max(p99, excluded.p99),
        count = count + excluded.count, sum = sum + excluded.sum,
        min = min(min, excluded.min), max = max(max, excluded.max)`,
    );
    const insEvent = prepared(
      db,
      "INSERT INTO events (ts, class, kind, severity, subject, message, data)" +
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    const insTop = prepared(
      db,
      "INSERT INTO io_top (ts, pid, comm, unit, read_bps, write_bps) VALUES (?, ?, ?, ?, ?, ?)",
    );
    const insState = prepared(db, UPSERT_STATE);
    const now = this.now();
    // Ids of series created in this batch are cached only once it commits: a rolled-back
    // batch (disk full) must not leave ids in the cache that the file does not have.
    const fresh = new Map<string, number>();
    this.newSeries = 0;
    db.transaction(() => {
      for (const [key, ts, value] of samples)
        insSample.run(this.seriesId(key, fresh, insSeries, selSeries), ts, value);
      for (const r of rollups)
        insRollup.run(
          this.seriesId(r.seriesKey, fresh, insSeries, selSeries),
          r.ts,
          r.count,
          r.sum,
          r.min,
          r.max,
          r.p50,
          r.p99,
        );
      for (const e of events)
        insEvent.run(
          e.ts,
          e.class,
          e.kind,
          e.severity,
          e.subject ?? null,
          e.message,
          e.data === undefined ? null : JSON.stringify(e.data),
        );
      for (const r of topIo) insTop.run(r.ts, r.pid, r.comm, r.unit, r.read_bps, r.write_bps);
      for (const [k, v] of this.pendingState) insState.run(k, v, now);
    })();
    for (const [k, id] of fresh) this.seriesIds.set(k, id);
    // Counted as written, so `status -v` moves from the first flush; exact again at each recount
    // (a minute merged into an existing rollup, or a replaced sample, is counted once too many).
    const c = this.rowCounts;
    this.rowCounts = {
      series: c.series + this.newSeries,
      samples: c.samples + samples.length,
      rollups: c.rollups + rollups.length,
      events: c.events + events.length,
    };
  }

  /**
   * A write that must be durable before the caller goes on (the journal): into the live file or
   * not at all. The file is checked first, as at a flush (removed, replaced or damaged: a fresh
   * one is started); in memory the row would be lost at exit, so that is refused. A failure goes
   * through the same handling as a failed flush and throws HistoryWriteError.
   */
  private writeNow<T>(write: (db: Db) => T): T {
    this.checkFileIdentity();
    this.checkFileContent();
    if (this.mode !== "file")
      throw new HistoryWriteError("memory", this.lastError ?? "no usable history file");
    try {
      return this.watched("journal", () => write(this.#db));
    } catch (e) {
      const reason = this.onWriteError(e);
      throw new HistoryWriteError(reason, this.lastError ?? errorMessage(e));
    }
  }

  private onWriteError(e: unknown): Exclude<WriteFailure, "memory"> {
    const code = errorCode(e) ?? "";
    const reason =
      code === "SQLITE_FULL"
        ? "full"
        : code.startsWith("SQLITE_IOERR")
          ? "io"
          : code.startsWith("SQLITE_READONLY")
            ? "readonly"
            : code === "SQLITE_CORRUPT" || code === "SQLITE_NOTADB"
              ? "corrupt"
              : "other";
    this.metrics.historyWriteErrors.labels(reason).inc();
    this.metrics.historyWritable.set(0);
    this.lastError = `${code || "error"}: ${errorMessage(e)}`;
    if (reason === "corrupt" && this.mode === "file") {
      this.replaceFile("corrupt", this.lastError);
      return "corrupt";
    }
    const state: "full" | "read-only" | "io-error" =
      reason === "full" ? "full" : reason === "readonly" ? "read-only" : "io-error";
    if (this.writeState !== state) {
      this.log.error(
        { path: this.path, err: this.lastError, pending: this.stats().pending_rows },
        `history: writes stopped (${state}); the agent keeps running and retries at each flush`,
      );
      this.writeState = state;
    }
    return state;
  }

  /** The file was deleted, replaced or corrupted under us: start over with a fresh one. */
  private replaceFile(reason: string, detail: string): void {
    try {
      this.#db.close();
    } catch {
      // already unusable
    }
    this.seriesIds.clear();
    this.knownTables = undefined;
    this.rowsCountedAt = null; // a fresh file: recount at the next maintenance
    let movedTo = "(file was gone)";
    try {
      movedTo = moveAside(this.path, reason);
    } catch {
      // nothing to move
    }
    const { db, mode } = this.openOrFallBack(dirname(this.path));
    this.#db = db;
    this.mode = mode;
    if (mode === "file") {
      this.writeState = "ok";
      this.noteRecovery(reason, detail, movedTo);
    }
  }

  private checkFileIdentity(): void {
    if (this.mode !== "file") return;
    let ino = -1;
    try {
      ino = statSync(this.path).ino;
    } catch {
      // removed
    }
    if (ino !== this.inode) {
      this.log.error({ path: this.path }, "history: file was removed or replaced while running");
      this.replaceFile(
        "replaced",
        ino === -1 ? "file removed while running" : "file replaced while running",
      );
    }
  }

  /**
   * Reads the file through a second connection with an empty page cache: the agent's own
   * connection keeps serving cached pages after the file was truncated or overwritten, and would
   * go on writing into it. A cheap look (the schema, then the first and last row of each table:
   * a root-to-leaf path each), so it can run at every flush; garbage or holes where the header,
   * the schema or a table's edges were are "corrupt" and the file is moved aside.
   */
  private checkFileContent(): void {
    if (this.mode !== "file") return;
    let problem: string | null = null;
    let probe: Db | undefined;
    try {
      probe = new Database(this.path, { readonly: true, fileMustExist: true });
      const tables = new Set(
        probe
          .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
          .pluck()
          .all() as string[],
      );
      const missing = this.tables().filter((t) => !tables.has(t));
      if (missing.length > 0) problem = `tables missing from the file: ${missing.join(", ")}`;
      else {
        for (const t of tables) {
          if (t.startsWith("sqlite_")) continue;
          const q = (n: string) => `"${n.replace(/"/g, '""')}"`;
          // The key the table's b-tree is ordered by: its PRIMARY KEY when WITHOUT ROWID, else rowid.
          const pk = probe
            .prepare(`SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk`)
            .pluck()
            .all(t) as string[];
          const withoutRowid = (
            probe.prepare("SELECT sql FROM sqlite_schema WHERE name = ?").pluck().get(t) as string
          ).includes("WITHOUT ROWID");
          const key = withoutRowid && pk.length > 0 ? pk.map(q) : ["rowid"];
          for (const dir of ["ASC", "DESC"])
            probe
              .prepare(
                `SELECT * FROM ${q(t)} ORDER BY ${key.map((k) => `${k} ${dir}`).join(", ")} LIMIT 1`,
              )
              .all();
        }
      }
    } catch (e) {
      const code = errorCode(e) ?? "";
      // Only the answers that mean "this is not our database any more"; anything else (EMFILE, a
      // busy lock) is no reason to move a good history aside.
      if (
        code === "SQLITE_CORRUPT" ||
        code === "SQLITE_NOTADB" ||
        code === "SQLITE_IOERR_SHORT_READ" ||
        code === "SQLITE_CANTOPEN"
      )
        problem = `${code}: ${errorMessage(e)}`;
    } finally {
      probe?.close();
    }
    if (problem === null) return;
    this.log.error({ path: this.path, problem }, "history: file damaged while running");
    this.metrics.historyWriteErrors.labels("corrupt").inc();
    this.replaceFile("corrupt", `damaged while running (${problem})`);
  }

  /** The tables our own connection knows (from its cache: what the file should have). */
  private tables(): string[] {
    this.knownTables ??= (
      this.#db
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
        .pluck()
        .all() as string[]
    ).filter((t) => !t.startsWith("sqlite_"));
    return this.knownTables;
  }

  private rollupHours(): void {
    const now = this.now();
    const lastComplete = now - (now % HOUR) - HOUR; // start of the last fully elapsed hour
    const doneRaw = this.getState("rollup.hour.done");
    let next: number;
    if (doneRaw !== undefined) next = Number(doneRaw) + HOUR;
    else {
      // First time: start at the oldest minute we have.
      const oldest = this.#db
        .prepare("SELECT min(ts) FROM rollups WHERE resolution = 60")
        .pluck()
        .get() as number | null;
      if (oldest === null) return;
      next = oldest - (oldest % HOUR);
    }
    next = Math.max(next, now - this.retention.minute_retention - (now % HOUR));
    if (next > lastComplete) return;
    const ids = this.#db.prepare("SELECT id FROM series").pluck().all() as number[];
    const ins = this.#db
      .prepare(`INSERT OR REPLACE INTO rollups (series_id, resolution, ts, count, sum, min, max, p50, p99)
      SELECT series_id, 3600, ?, sum(count), sum(sum), min(min), max(max), sum(p50 * count) / sum(count), max(p99)
      FROM rollups WHERE series_id = ? AND resolution = 60 AND ts >= ? AND ts < ? GROUP BY series_id`);
    this.#db.transaction(() => {
      for (let h = next; h <= lastComplete; h += HOUR) {
        for (const id of ids) ins.run(h, id, h, h + HOUR);
      }
      this.#db
        .prepare(
          "INSERT INTO state (key, value, updated) VALUES ('rollup.hour.done', ?, ?)" +
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
        )
        .run(String(lastComplete), now);
    })();
  }

  private prune(): void {
    const now = this.now();
    const r = this.retention;
    const ids = this.#db.prepare("SELECT id FROM series").pluck().all() as number[];
    const delRaw = this.#db.prepare("DELETE FROM samples WHERE series_id = ? AND ts < ?");
    const delRoll = this.#db.prepare(
      "DELETE FROM rollups WHERE series_id = ? AND resolution = ? AND ts < ?",
    );
    this.#db.transaction(() => {
      for (const id of ids) {
        delRaw.run(id, now - r.raw_retention);
        delRoll.run(id, 60, now - r.minute_retention);
        delRoll.run(id, 3600, now - r.hour_retention);
      }
      this.#db.prepare("DELETE FROM events WHERE ts < ?").run(now - r.event_retention);
      this.#db.prepare("DELETE FROM io_top WHERE ts < ?").run(now - r.top_io_retention);
    })();
  }

  private countRows(): void {
    try {
      const one = (sql: string) => this.#db.prepare(sql).pluck().get() as number;
      this.rowCounts = {
        series: one("SELECT count(*) FROM series"),
        samples: one("SELECT count(*) FROM samples"),
        rollups: one("SELECT count(*) FROM rollups"),
        events: one("SELECT count(*) FROM events"),
      };
      this.rowsCountedAt = this.now();
    } catch (e) {
      this.log.warn({ err: errorMessage(e) }, "history: cannot count rows");
    }
  }

  private sizeBytes(): number {
    if (this.mode !== "file") return 0;
    let total = 0;
    for (const suffix of ["", "-wal"]) {
      try {
        total += statSync(this.path + suffix).size;
      } catch {
        // absent
      }
    }
    return total;
  }
}

/** metric NUL canonical-labels: one string key per series. */
export function seriesKey(metric: string, labels: Labels): string {
  const keys = Object.keys(labels).sort();
  const canon: Record<string, string> = {};
  for (const k of keys) canon[k] = labels[k] as string;
  return `${metric}\u0000${JSON.stringify(canon)}`;
}
