// The agent's own metrics: how its collectors, history and loop are doing.
// Collector-specific metrics are registered by each collector on the same registry.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { VERSION } from "../version.js";

export const NS = "stemedb_agent_";

export type CollectorErrorReason = "error" | "timeout" | "overlap";

export class CoreMetrics {
  readonly registry = new Registry();
  readonly collectorErrors: Counter<"collector" | "reason">;
  readonly collectorDuration: Histogram<"collector">;
  readonly collectorLastSuccess: Gauge<"collector">;
  readonly collectorUp: Gauge<"collector">;
  readonly historyWritable: Gauge;
  readonly historyFileBytes: Gauge;
  readonly historyWriteErrors: Counter<"reason">;
  readonly historyDroppedRows: Counter;
  readonly historyRecoveries: Counter<"reason">;
  readonly coreLoopLastTick: Gauge;

  constructor() {
    const registers = [this.registry];
    new Gauge({
      name: `${NS}build_info`,
      help: "Agent build information; always 1.",
      labelNames: ["version", "node_version"],
      registers,
    }).set({ version: VERSION, node_version: process.version }, 1);
    new Gauge({
      name: `${NS}start_time_seconds`,
      help: "Unix time the agent started.",
      registers,
    }).set(Date.now() / 1000);
    this.collectorErrors = new Counter({
      name: `${NS}collector_errors_total`,
      help:
        "Collector runs that failed, by reason: error (threw or rejected), timeout (ran past its" +
        " timeout), overlap (a run was due while the previous one had not yet ended).",
      labelNames: ["collector", "reason"],
      registers,
    });
    this.collectorDuration = new Histogram({
      name: `${NS}collector_duration_seconds`,
      help: "Wall time of collector runs that finished, successful or not.",
      labelNames: ["collector"],
      buckets: [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
      ],
      registers,
    });
    this.collectorLastSuccess = new Gauge({
      name: `${NS}collector_last_success_timestamp_seconds`,
      help: "Unix time of the collector's last successful run (0 if none yet).",
      labelNames: ["collector"],
      registers,
    });
    this.collectorUp = new Gauge({
      name: `${NS}collector_up`,
      help: "1 if the collector's last run succeeded, 0 if it failed.",
      labelNames: ["collector"],
      registers,
    });
    this.historyWritable = new Gauge({
      name: `${NS}history_writable`,
      help:
        "1 while the history file accepts writes;" +
        " 0 while writes are stopped (disk full, I/O error, in-memory fallback).",
      registers,
    });
    this.historyFileBytes = new Gauge({
      name: `${NS}history_file_bytes`,
      help: "Size of the history database including its WAL file.",
      registers,
    });
    this.historyWriteErrors = new Counter({
      name: `${NS}history_write_errors_total`,
      help: "Failed history flushes, by reason (full, io, readonly, corrupt, other).",
      labelNames: ["reason"],
      registers,
    });
    this.historyDroppedRows = new Counter({
      name: `${NS}history_dropped_rows_total`,
      help: "History rows dropped because the file could not be written for too long.",
      registers,
    });
    this.historyRecoveries = new Counter({
      name: `${NS}history_recoveries_total`,
      help: "Times the history file was moved aside and a fresh one started, by reason.",
      labelNames: ["reason"],
      registers,
    });
    this.coreLoopLastTick = new Gauge({
      name: `${NS}core_loop_last_tick_timestamp_seconds`,
      help: "Unix time of the core loop's last tick; /healthz fails when it is stale.",
      registers,
    });
  }

  /** Make a collector's series exist (at 0) before its first run, so absent() alerts work. */
  declareCollector(name: string): void {
    this.collectorLastSuccess.labels(name).set(0);
    for (const reason of ["error", "timeout", "overlap"] as const)
      this.collectorErrors.labels(name, reason).inc(0);
  }
}
