// wal's sinks: segments and bytes by state, active age, oldest age, write rate, rotations,
// findings per kind, the database's own WAL figures; write rate, the database's fsync p99 and
// its replication lag into history; an event when a finding kind appears, when its files
// change, and when it clears.
import type { Registry } from "prom-client";
import type { HistoryRow, Sinks } from "../../core/collector.js";
import { Conditions } from "../../core/conditions.js";
import type { EventInput } from "../../core/history/store.js";
import type { Logger } from "../../core/log.js";
import { counter, gauge } from "../../core/metrics/define.js";
import { NS } from "../../core/metrics/registry.js";
import {
  FINDING_KINDS,
  type FindingKind,
  type SegmentState,
  type WalFinding,
} from "./inventory.js";
import type { CollectorJudge } from "../judge.js";
import type { WalObservation } from "./observation.js";

const STATES: readonly SegmentState[] = ["active", "sealed", "compressed"];

export function walSinks(
  registry: Registry,
  log: Logger,
  dir: string,
  judge: CollectorJudge,
): Sinks<WalObservation> {
  const r = registry;
  const gSegments = gauge(r, {
    name: `${NS}wal_segments`,
    help: "WAL segments by state (active: being written, sealed, compressed).",
    labelNames: ["state"],
  });
  const gBytes = gauge(r, {
    name: `${NS}wal_segment_bytes`,
    help: "Bytes of WAL segments by state.",
    labelNames: ["state"],
  });
  const gActiveAge = gauge(r, {
    name: `${NS}wal_active_write_age_seconds`,
    help: "Seconds since the active segment was last written.",
  });
  const gOldest = gauge(r, {
    name: `${NS}wal_oldest_segment_age_seconds`,
    help: "Age of the oldest segment (by modification time).",
  });
  const gWriteRate = gauge(r, {
    name: `${NS}wal_write_bytes_per_second`,
    help: "Bytes per second written into the WAL (active segment growth, rotations included).",
  });
  const cRotations = counter(r, {
    name: `${NS}wal_rotations_total`,
    help: "New active segments seen (segment rotations).",
  });
  const gProblems = gauge(r, {
    name: `${NS}wal_problems`,
    help: "Files (or gaps) per WAL finding kind; 0 when clear. Names are in history, not in labels.",
    labelNames: ["kind"],
  });
  const gDbP99 = gauge(r, {
    name: `${NS}db_wal_fsync_p99_seconds`,
    help: "The database's own WAL fsync p99 (from stemedb.metrics_url; absent when not scraped).",
  });
  const gDbErrors = gauge(r, {
    name: `${NS}db_wal_fsync_errors`,
    help: "The database's own WAL fsync error count (stemedb_wal_fsync_errors_total, mirrored).",
  });
  for (const k of FINDING_KINDS) gProblems.set({ kind: k }, 0);
  cRotations.inc(0);
  /** Per finding kind: the files it names. */
  const findings = new Conditions<FindingKind, string>();
  const noLabels = {};

  return {
    observation: {
      metrics(o) {
        for (const s of STATES) {
          gSegments.set({ state: s }, o.segments[s].count);
          gBytes.set({ state: s }, o.segments[s].bytes);
        }
        if (o.active) gActiveAge.set(o.active.write_age_seconds);
        if (o.active?.bytes_per_second !== null && o.active?.bytes_per_second !== undefined)
          gWriteRate.set(o.active.bytes_per_second);
        if (o.oldest_age_seconds !== null) gOldest.set(o.oldest_age_seconds);
        if (o.new_rotations > 0) cRotations.inc(o.new_rotations);
        const byKind = new Map(o.findings.map((f) => [f.kind, f] as const));
        for (const k of FINDING_KINDS) {
          const f = byKind.get(k);
          gProblems.set({ kind: k }, f ? Math.max(1, f.files.length) : 0);
        }
        if (o.database && o.database.ok) {
          if (o.database.p99 !== null) gDbP99.set(o.database.p99);
          if (o.database.errors !== null) gDbErrors.set(o.database.errors);
        }
      },
      *history(o): Iterable<HistoryRow> {
        const ts = Date.now();
        if (o.active?.bytes_per_second !== null && o.active?.bytes_per_second !== undefined)
          yield {
            series: "wal_write_bytes_per_second",
            labels: noLabels,
            value: o.active.bytes_per_second,
            ts,
          };
        if (o.database && o.database.ok && o.database.p99 !== null)
          yield { series: "db_wal_fsync_p99_seconds", labels: noLabels, value: o.database.p99, ts };
        if (o.database && o.database.ok && o.database.replication_lag_seconds !== null)
          yield {
            series: "db_replication_lag_seconds",
            labels: noLabels,
            value: o.database.replication_lag_seconds,
            ts,
          };
      },
      *events(o): Iterable<EventInput> {
        // The last finding of a kind is the one reported (as the gauges do).
        const byKind = new Map<FindingKind, WalFinding>();
        for (const f of o.findings) byKind.set(f.kind, f);
        const files = new Map([...byKind].map(([k, f]) => [k, f.files.join("\u0000")] as const));
        for (const t of findings.update(files)) {
          const f = byKind.get(t.key);
          if (f) {
            yield {
              class: "wal",
              kind: `wal.${t.key}`,
              severity: judge.findingSeverity(t.key),
              subject: dir,
              message: f.message,
              data: { files: f.files },
            };
            log.warn({ kind: t.key, files: f.files.slice(0, 5) }, `wal: ${f.message}`);
          } else
            yield {
              class: "wal",
              kind: `wal.${t.key}.cleared`,
              severity: "info",
              subject: dir,
              message: `WAL finding cleared: ${t.key}`,
            };
        }
      },
    },
  };
}
