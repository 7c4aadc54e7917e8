// Read-only history queries behind agentctl history, events and top-io.
import type { Config } from "../../core/config/schema.js";
import { parseDuration } from "../../core/config/units.js";
import { BadRequest } from "../control/server.js";
import type { HistoryStore } from "../../core/history/store.js";

export interface Bucket {
  readonly ts: number;
  readonly count: number;
  readonly min: number;
  readonly max: number;
  readonly avg: number;
  readonly p99: number;
}

export interface HistoryAnswer {
  readonly metric: string;
  readonly since_seconds: number;
  readonly resolution: "raw" | "minute" | "hour";
  readonly series: Array<{ readonly labels: Record<string, string>; readonly buckets: Bucket[] }>;
  readonly available_metrics?: string[];
}

export function sinceMs(q: string | null, fallback: string): number {
  const r = parseDuration(q ?? fallback);
  if (!r.ok) throw new BadRequest(`--since: ${r.reason}`);
  return r.value;
}

const MAX_BUCKETS = 60;

export function historyQuery(
  h: HistoryStore,
  c: Config,
  metric: string,
  device: string | null,
  since: number,
  now = Date.now(),
): HistoryAnswer {
  const db = h.database;
  const available = db
    .prepare("SELECT DISTINCT metric FROM series ORDER BY metric")
    .pluck()
    .all() as string[];
  const all = db.prepare("SELECT id, labels FROM series WHERE metric = ?").all(metric) as Array<{
    id: number;
    labels: string;
  }>;
  const series = all
    .map((s) => ({ id: s.id, labels: JSON.parse(s.labels) as Record<string, string> }))
    .filter((s) => device === null || Object.values(s.labels).includes(device));
  const resolution =
    since <= c.history.raw_retention
      ? "raw"
      : since <= c.history.minute_retention
        ? "minute"
        : "hour";
  const from = now - since;
  const width = Math.max(
    resolution === "raw" ? 1000 : resolution === "minute" ? 60_000 : 3_600_000,
    Math.ceil(since / MAX_BUCKETS),
  );
  const out = series.map((s) => {
    type Row = { ts: number; min: number; max: number; sum: number; count: number; p99: number };
    const raw = (after: number) =>
      db
        .prepare(
          "SELECT ts, value AS min, value AS max, value AS sum, 1 AS count, value AS p99 FROM samples WHERE series_id = ? AND ts >= ? ORDER BY ts",
        )
        .all(s.id, after) as Row[];
    let rows: Row[];
    if (resolution === "raw") rows = raw(from);
    else {
      const res = resolution === "minute" ? 60 : 3600;
      rows = db
        .prepare(
          "SELECT ts, min, max, sum, count, p99 FROM rollups WHERE series_id = ? AND resolution = ? AND ts >= ? ORDER BY ts",
        )
        .all(s.id, res, from) as Row[];
      // The period not yet rolled up (the current minute or hour) comes from the raw samples.
      const covered = (rows.at(-1)?.ts ?? from - res * 1000) + res * 1000;
      rows.push(...raw(Math.max(from, covered)));
    }
    const buckets = new Map<
      number,
      { count: number; min: number; max: number; sum: number; p99s: number[] }
    >();
    for (const r of rows) {
      const b = r.ts - (r.ts % width);
      const cur = buckets.get(b) ?? { count: 0, min: Infinity, max: -Infinity, sum: 0, p99s: [] };
      cur.count += r.count;
      cur.min = Math.min(cur.min, r.min);
      cur.max = Math.max(cur.max, r.max);
      cur.sum += r.sum;
      cur.p99s.push(r.p99);
      buckets.set(b, cur);
    }
    return {
      labels: s.labels,
      buckets: [...buckets].map(([ts, b]) => {
        const sorted = b.p99s.sort((x, y) => x - y);
        // Raw buckets: the p99 of the values; rollups: the highest minute p99 (an upper bound).
        const p99 =
          resolution === "raw"
            ? (sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)] ?? 0)
            : (sorted.at(-1) ?? 0);
        return { ts, count: b.count, min: b.min, max: b.max, avg: b.sum / b.count, p99 };
      }),
    };
  });
  return {
    metric,
    since_seconds: since / 1000,
    resolution,
    series: out,
    ...(out.length === 0 ? { available_metrics: available } : {}),
  };
}

export interface EventRow {
  readonly ts: string;
  readonly class: string;
  readonly kind: string;
  readonly severity: string;
  readonly subject: string | null;
  readonly message: string;
}

export function eventsQuery(
  h: HistoryStore,
  since: number,
  cls: string | null,
  limit: number,
  now = Date.now(),
): EventRow[] {
  const rows = h.database
    .prepare(
      `SELECT ts, class, kind, severity, subject, message FROM events WHERE ts >= ? ${cls ? "AND class = ?" : ""} ORDER BY ts DESC, id DESC LIMIT ?`,
    )
    .all(...[now - since, ...(cls ? [cls] : []), limit]) as Array<
    Omit<EventRow, "ts"> & { ts: number }
  >;
  return rows.map((r) => ({ ...r, ts: new Date(r.ts).toISOString() }));
}

export interface TopIoRow {
  readonly pid: number;
  readonly comm: string;
  readonly unit: string | null;
  readonly intervals: number;
  readonly avg_write_bps: number;
  readonly max_write_bps: number;
  readonly avg_read_bps: number;
  readonly max_read_bps: number;
  readonly last_seen: string;
}

export function topIoQuery(
  h: HistoryStore,
  since: number,
  limit: number,
  now = Date.now(),
): TopIoRow[] {
  const rows = h.database
    .prepare(
      `SELECT pid, comm, unit, count(*) AS intervals, avg(write_bps) AS avg_write_bps, max(write_bps) AS max_write_bps, avg(read_bps) AS avg_read_bps, max(read_bps) AS max_read_bps, max(ts) AS last
      FROM io_top WHERE ts >= ? GROUP BY pid, comm, unit ORDER BY sum(write_bps + read_bps) DESC LIMIT ?`,
    )
    .all(now - since, limit) as Array<Omit<TopIoRow, "last_seen"> & { last: number }>;
  return rows.map(({ last, ...r }) => ({ ...r, last_seen: new Date(last).toISOString() }));
}
