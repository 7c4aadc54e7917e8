// The typed reads over the history file: the SQL lives here, next to the schema, and the store
// runs it on its own connection, so nothing outside core/history holds a handle or writes SQL.
import { percentileSorted } from "./percentile.js";
import type { Db } from "./open.js";

export type Resolution = "raw" | "minute" | "hour";

/** One stored point of a series at some resolution: a raw sample is a summary of one value. */
export interface SummaryRow {
  readonly ts: number;
  readonly min: number;
  readonly max: number;
  readonly sum: number;
  readonly count: number;
  readonly p99: number;
}

export interface SeriesSummaries {
  readonly labels: Record<string, string>;
  readonly rows: SummaryRow[];
}

/** Every metric name with a series, sorted. */
export function metricNames(db: Db): string[] {
  return db.prepare("SELECT DISTINCT metric FROM series ORDER BY metric").pluck().all() as string[];
}

/**
 * The series of `metric` whose labels pass `keep`, each as summary rows since `from` at
 * `resolution`; rollups are followed by the raw samples of the period not yet rolled up.
 */
export function seriesSummaries(
  db: Db,
  metric: string,
  resolution: Resolution,
  from: number,
  keep: (labels: Record<string, string>) => boolean,
): SeriesSummaries[] {
  const all = db.prepare("SELECT id, labels FROM series WHERE metric = ?").all(metric) as Array<{
    id: number;
    labels: string;
  }>;
  const raw = db.prepare(
    "SELECT ts, value AS min, value AS max, value AS sum, 1 AS count, value AS p99 " +
      "FROM samples WHERE series_id = ? AND ts >= ? ORDER BY ts",
  );
  const rollups = db.prepare(
    "SELECT ts, min, max, sum, count, p99 FROM rollups WHERE series_id = ? AND resolution = ? AND ts >= ? ORDER BY ts",
  );
  return all
    .map((s) => ({ id: s.id, labels: JSON.parse(s.labels) as Record<string, string> }))
    .filter((s) => keep(s.labels))
    .map((s) => {
      if (resolution === "raw")
        return { labels: s.labels, rows: raw.all(s.id, from) as SummaryRow[] };
      const res = resolution === "minute" ? 60 : 3600;
      const rows = rollups.all(s.id, res, from) as SummaryRow[];
      // The period not yet rolled up (the current minute or hour) comes from the raw samples.
      const covered = (rows.at(-1)?.ts ?? from - res * 1000) + res * 1000;
      rows.push(...(raw.all(s.id, Math.max(from, covered)) as SummaryRow[]));
      return { labels: s.labels, rows };
    });
}

/** p99 of a series' points (as HistoryStore.series returns them), or null when there are none. */
export function p99Of(points: ReadonlyArray<{ readonly value: number }>): number | null {
  const sorted = points.map((p) => p.value).sort((a, b) => a - b);
  return sorted.length > 0 ? percentileSorted(sorted, 0.99) : null;
}

export interface StoredEvent {
  /** ms since the epoch */
  readonly ts: number;
  readonly class: string;
  readonly kind: string;
  readonly severity: string;
  readonly subject: string | null;
  readonly message: string;
}

export interface EventFilter {
  readonly since: number;
  /** Only events at or before this time (ms); absent for every event since `since`. */
  readonly until?: number;
  /** Only this class; null or "" for every class. */
  readonly class?: string | null;
  /** Only this kind; null or "" for every kind. */
  readonly kind?: string | null;
  /** Only events about this subject (a device, a mountpoint). */
  readonly subject?: string;
  readonly limit: number;
}

/** Events since `since`, newest first. */
export function events(db: Db, f: EventFilter): StoredEvent[] {
  const where = ["ts >= ?"];
  const args: Array<string | number> = [f.since];
  if (f.until !== undefined) {
    where.push("ts <= ?");
    args.push(f.until);
  }
  if (f.class) {
    where.push("class = ?");
    args.push(f.class);
  }
  if (f.kind) {
    where.push("kind = ?");
    args.push(f.kind);
  }
  if (f.subject !== undefined) {
    where.push("subject = ?");
    args.push(f.subject);
  }
  return db
    .prepare(
      `SELECT ts, class, kind, severity, subject, message FROM events WHERE ${where.join(" AND ")} ` +
        `ORDER BY ts DESC, id DESC LIMIT ?`,
    )
    .all(...args, f.limit) as StoredEvent[];
}

export interface KernelIncidentRow {
  readonly ts: number;
  readonly device: string;
  /** The incident's worst line: crit, error or warn. */
  readonly severity: string;
  readonly classes: Record<string, number>;
  readonly lines: number;
  readonly sectors: string[];
}

export interface KernelLineRow {
  readonly subject: string | null;
  readonly kind: string;
  readonly sev: string;
  readonly n: number;
  readonly last: number;
}

export interface KernelLog {
  /** Incidents in the window, worst severity first, then the latest. */
  readonly incidents: KernelIncidentRow[];
  readonly incidentCount: number;
  /** Per-line fault records (class `kernel`) by device and class, most first. */
  readonly lines: KernelLineRow[];
  readonly lineCount: number;
}

const SEV_RANK = "CASE kind WHEN 'crit' THEN 2 WHEN 'error' THEN 1 ELSE 0 END";

/**
 * The kernel log's storage failures since `since`: incidents (the lines of one failure grouped,
 * class kernel_incident) and the per-line records (class kernel) behind them.
 */
export function kernelLog(db: Db, since: number, limit: number): KernelLog {
  const raw = db
    .prepare(
      "SELECT ts, subject, kind, data FROM events WHERE class = 'kernel_incident' AND ts >= ? " +
        `ORDER BY ${SEV_RANK} DESC, ts DESC LIMIT ?`,
    )
    .all(since, limit) as Array<{
    ts: number;
    subject: string | null;
    kind: string;
    data: string | null;
  }>;
  const incidents = raw.map((r) => {
    let d: { classes?: unknown; lines?: unknown; sectors?: unknown } = {};
    try {
      d = JSON.parse(r.data ?? "{}") as typeof d;
    } catch {
      // a damaged row still counts as an incident
    }
    const classes =
      d.classes && typeof d.classes === "object" ? (d.classes as Record<string, number>) : {};
    const sectors = Array.isArray(d.sectors) ? d.sectors.map(String) : [];
    return {
      ts: r.ts,
      device: r.subject ?? "?",
      severity: r.kind,
      classes,
      lines: Number(d.lines) || 0,
      sectors,
    };
  });
  const incidentCount = db
    .prepare("SELECT count(*) FROM events WHERE class = 'kernel_incident' AND ts >= ?")
    .pluck()
    .get(since) as number;
  const lines = db
    .prepare(
      "SELECT subject, kind, max(severity) AS sev, count(*) AS n, max(ts) AS last FROM events " +
        "WHERE class = 'kernel' AND ts >= ? AND kind != 'kernel_log.lost' " +
        "GROUP BY subject, kind ORDER BY n DESC LIMIT ?",
    )
    .all(since, limit) as KernelLineRow[];
  // Records past history's per-minute limit are in a summary row, not one by one.
  const summed = db
    .prepare(
      "SELECT coalesce(sum(json_extract(data, '$.suppressed_in_history')), 0) " +
        "FROM events WHERE class = 'kernel' AND ts >= ?",
    )
    .pluck()
    .get(since) as number;
  return {
    incidents,
    incidentCount,
    lines,
    lineCount: lines.reduce((a, r) => a + r.n, 0) + summed,
  };
}

/** The heaviest I/O consumers (by bytes read and written) over the intervals since `since`. */
export interface TopIoConsumer {
  readonly pid: number;
  readonly comm: string;
  readonly unit: string | null;
  readonly intervals: number;
  readonly avg_write_bps: number;
  readonly max_write_bps: number;
  readonly avg_read_bps: number;
  readonly max_read_bps: number;
  /** ms since the epoch */
  readonly last: number;
}

export function topIo(db: Db, since: number, limit: number): TopIoConsumer[] {
  return db
    .prepare(
      "SELECT pid, comm, unit, count(*) AS intervals, avg(write_bps) AS avg_write_bps, " +
        "max(write_bps) AS max_write_bps, avg(read_bps) AS avg_read_bps, " +
        "max(read_bps) AS max_read_bps, max(ts) AS last " +
        "FROM io_top WHERE ts >= ? GROUP BY pid, comm, unit " +
        "ORDER BY sum(write_bps + read_bps) DESC LIMIT ?",
    )
    .all(since, limit) as TopIoConsumer[];
}
