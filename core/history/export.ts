// Every stored point since a time, for the diagnostic bundle's history CSV. Read one page at a
// time, each page a few index seeks (series by series, keyset on the primary key), so a caller
// that asks page after page never holds the agent's event loop for long, however large the file.
import { prepared, type Db } from "./open.js";

/** A series the points of a page belong to. */
export interface ExportSeries {
  readonly id: number;
  readonly metric: string;
  /** Canonical JSON object, as stored. */
  readonly labels: string;
}

/** One exported point: a raw sample (resolution 0) or a per-minute summary (resolution 60). */
export interface ExportRow {
  readonly series: number;
  /** ms since the epoch: the sample's time, or the minute's start. */
  readonly ts: number;
  readonly resolution: 0 | 60;
  /** The sample, or the minute's average. */
  readonly value: number;
  readonly min: number;
  readonly max: number;
  readonly p99: number;
  readonly count: number;
}

/** Where the next page starts: after this point of this series. */
export interface ExportCursor {
  readonly series: number;
  readonly ts: number;
}

export interface ExportWindow {
  /** First time exported (ms). */
  readonly from: number;
  /** Before this, minute summaries; from it on, raw samples (minute-aligned, >= from). */
  readonly rawFrom: number;
}

const SERIES = "SELECT id, metric, labels FROM series WHERE id >= ? ORDER BY id";
const ROLLUPS =
  "SELECT ts, sum / count AS value, min, max, p99, count FROM rollups " +
  "WHERE series_id = ? AND resolution = 60 AND ts > ? AND ts >= ? AND ts < ? ORDER BY ts LIMIT ?";
const RAW =
  "SELECT ts, value, value AS min, value AS max, value AS p99, 1 AS count FROM samples " +
  "WHERE series_id = ? AND ts > ? AND ts >= ? ORDER BY ts LIMIT ?";

type Point = Omit<ExportRow, "series" | "resolution">;

export interface ExportPage {
  /** The series the rows belong to. */
  readonly series: ExportSeries[];
  readonly rows: ExportRow[];
  /** Where the next page starts; null after the last. */
  readonly next: ExportCursor | null;
}

/** Up to `limit` rows after `after` (null: from the start), and the cursor of the next page. */
export function exportPage(
  db: Db,
  w: ExportWindow,
  after: ExportCursor | null,
  limit: number,
): ExportPage {
  const rows: ExportRow[] = [];
  const used: ExportSeries[] = [];
  const all = prepared(db, SERIES).all(after?.series ?? 0) as ExportSeries[];
  for (const s of all) {
    const t = s.id === after?.series ? after.ts : Number.MIN_SAFE_INTEGER;
    const before = rows.length;
    const take = (sql: string, resolution: 0 | 60, args: number[]) => {
      const pts = prepared(db, sql).all(s.id, ...args, limit - rows.length) as Point[];
      for (const p of pts) rows.push({ series: s.id, resolution, ...p });
    };
    if (t < w.rawFrom) take(ROLLUPS, 60, [t, w.from, w.rawFrom]);
    if (rows.length < limit) take(RAW, 0, [t, w.rawFrom]);
    if (rows.length > before) used.push(s);
    if (rows.length >= limit) {
      const last = rows[rows.length - 1] as ExportRow;
      return { series: used, rows, next: { series: s.id, ts: last.ts } };
    }
  }
  return { series: used, rows, next: null };
}
