// The bundle's history CSV, pure: one line per stored point (RFC 4180 quoting), and the page
// cursor as it travels in a query string.
import type { ExportCursor, ExportPage, ExportSeries } from "../../core/history/export.js";

export const CSV_HEADER = "time,metric,labels,resolution,value,min,max,p99,count\n";

function field(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** {"device":"sda","mountpoint":"/"} -> device=sda;mountpoint=/ (the stored text if it is not an object). */
export function labelText(json: string): string {
  try {
    const o = JSON.parse(json) as unknown;
    if (typeof o === "object" && o !== null && !Array.isArray(o))
      return Object.entries(o)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(";");
  } catch {
    // a damaged row is exported as stored
  }
  return json;
}

/** A page as it travels from the agent: points as number arrays, their series once. */
export interface WirePage {
  readonly now: number;
  readonly series: ExportSeries[];
  /** [series, ts, resolution, value, min, max, p99, count] */
  readonly points: number[][];
  readonly next: string | null;
}

/** The agent's side: no formatting (agentctl does that, at idle priority), just the numbers. */
export function toWire(now: number, p: ExportPage): WirePage {
  return {
    now,
    series: p.series,
    points: p.rows.map((r) => [
      r.series,
      r.ts,
      r.resolution,
      r.value,
      r.min,
      r.max,
      r.p99,
      r.count,
    ]),
    next: encodeCursor(p.next),
  };
}

/** Raw samples leave min, max and p99 empty: they are the value itself. */
export function csvLines(page: Pick<WirePage, "series" | "points">): string {
  const names = new Map(
    page.series.map((s) => [s.id, `${field(s.metric)},${field(labelText(s.labels))}`]),
  );
  let out = "";
  for (const [series, ts, res, value, min, max, p99, count] of page.points) {
    const raw = res === 0;
    out +=
      `${new Date(ts ?? 0).toISOString()},${names.get(series ?? -1) ?? "?,?"},` +
      `${raw ? "raw" : "1m"},${value},${raw ? "" : min},${raw ? "" : max},` +
      `${raw ? "" : p99},${count}\n`;
  }
  return out;
}

export function encodeCursor(c: ExportCursor | null): string | null {
  return c === null ? null : `${c.series}:${c.ts}`;
}

/** null for the first page; undefined when the text is not a cursor. */
export function decodeCursor(text: string | null): ExportCursor | null | undefined {
  if (text === null || text === "") return null;
  const m = /^(\d{1,15}):(-?\d{1,16})$/.exec(text);
  if (!m) return undefined;
  return { series: Number(m[1]), ts: Number(m[2]) };
}
