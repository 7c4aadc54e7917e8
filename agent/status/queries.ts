// Read-only history queries behind agentctl history, events and top-io.
import type { Config } from "../../core/config/schema.js";
import { parseDuration } from "../../core/config/units.js";
import { BadRequest } from "../control/server.js";
import type { TopIoConsumer } from "../../core/history/queries.js";
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
  const series = h.seriesSummaries(
    metric,
    resolution,
    from,
    (labels) => device === null || Object.values(labels).includes(device),
  );
  const out = series.map((s) => {
    const buckets = new Map<
      number,
      { count: number; min: number; max: number; sum: number; p99s: number[] }
    >();
    for (const r of s.rows) {
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
    ...(out.length === 0 ? { available_metrics: h.metricNames() } : {}),
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
  const rows = h.events({ since: now - since, class: cls, limit });
  return rows.map((r) => ({ ...r, ts: new Date(r.ts).toISOString() }));
}

/** One consumer in agentctl top-io's answer. */
export interface TopIoSummary extends Omit<TopIoConsumer, "last"> {
  readonly last_seen: string;
}

export function topIoQuery(
  h: HistoryStore,
  since: number,
  limit: number,
  now = Date.now(),
): TopIoSummary[] {
  return h
    .topIoConsumers(now - since, limit)
    .map(({ last, ...r }) => ({ ...r, last_seen: new Date(last).toISOString() }));
}
