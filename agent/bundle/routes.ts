// What the agent serves for `agentctl bundle`, on the root-only admin socket only: a bundle holds
// the configuration and the history, so who may take one is decided by who may open that socket.
// Everything here is bounded: the history comes in pages of at most PAGE_ROWS points (the caller
// asks for the next one, so the event loop is free between pages), the journal and the
// database's metrics by a row count and a byte count.
import { stringify as stringifyToml } from "smol-toml";
import { z } from "zod";
import { type Config, configSchema } from "../../core/config/schema.js";
import { fetchable, fetchError } from "../../core/url.js";
import type { HistoryStore } from "../../core/history/store.js";
import { BadRequest, type RouteHandler } from "../control/server.js";
import { sinceMs } from "../status/queries.js";
import { decodeCursor, toWire } from "./csv.js";
import { REDACTION_RULES, redactUrl, redactValue } from "./redact.js";

/**
 * Points per history page: about 4 ms of SQLite and 0.3 ms of JSON in the agent on a busy 2-core
 * VM (5 000 took 20 ms, and formatting them as CSV 24 ms more: that is agentctl's job now).
 */
export const PAGE_ROWS = 1000;
/** The database's /metrics answer is cut at this size. */
export const DB_METRICS_MAX_BYTES = 8 * 1024 * 1024;
const DB_METRICS_TIMEOUT_MS = 5000;
const JOURNAL_ROWS = 1000;

/** The raw output of one smartctl run the agent made, as kept by the smart collector. */
export interface SmartRaw {
  readonly device: string;
  readonly name: string;
  /** "last" (the latest poll) or "last-awake" (the latest poll with health data, if older). */
  readonly which: "last" | "last-awake";
  readonly collected_at: string;
  readonly json: string;
}

/** What the routes read from the running agent (each call answers from its current state). */
export interface BundleSource {
  config(): Config;
  configFile(): string | null;
  readonly history: HistoryStore;
  metricsText(): Promise<string>;
  smart(): SmartRaw[];
}

/** What `agentctl bundle` needs to know before it collects (also shown by --list). */
export interface BundlePlan {
  readonly schema: 1;
  readonly max_bytes: number;
  readonly database_unit: string;
  /** stemedb.metrics_url with credentials and query removed; null when not configured. */
  readonly database_metrics_url: string | null;
  readonly database_metrics_max_bytes: number;
  readonly history_page_rows: number;
  readonly redaction: readonly string[];
}

export function bundleRoutes(src: BundleSource): Map<string, RouteHandler> {
  return new Map<string, RouteHandler>([
    ["GET /v1/bundle/plan", () => plan(src.config())],
    ["GET /v1/bundle/config", () => redactedConfig(src.config(), src.configFile())],
    [
      "GET /v1/bundle/history",
      (u) => {
        // Rows buffered for the next flush are written first, so the CSV ends at "now".
        if (u.searchParams.get("after") === null) src.history.flush();
        return historyPage(src.history, src.config(), u);
      },
    ],
    ["GET /v1/bundle/journal", () => ({ journal: src.history.journalRecent(JOURNAL_ROWS) })],
    ["GET /v1/bundle/smart", () => ({ reports: src.smart() })],
    ["GET /v1/bundle/metrics", async () => ({ text: await src.metricsText() })],
    ["GET /v1/bundle/database-metrics", () => databaseMetrics(src.config().stemedb.metrics_url)],
  ]);
}

export function plan(c: Config): BundlePlan {
  const url = c.stemedb.metrics_url;
  return {
    schema: 1,
    max_bytes: c.bundle.max_bytes,
    database_unit: c.stemedb.service,
    database_metrics_url: url === "" ? null : redactUrl(url).text,
    database_metrics_max_bytes: DB_METRICS_MAX_BYTES,
    history_page_rows: PAGE_ROWS,
    redaction: REDACTION_RULES,
  };
}

/** The effective configuration as TOML (what --print-config prints), secrets replaced. */
export function redactedConfig(
  c: Config,
  file: string | null,
): { file: string | null; toml: string; redacted: string[] } {
  const { value, redacted } = redactValue(z.encode(configSchema, c));
  return { file, toml: stringifyToml(value), redacted };
}

function historyPage(h: HistoryStore, c: Config, u: URL) {
  const since = sinceMs(u.searchParams.get("since"), "1h");
  const after = decodeCursor(u.searchParams.get("after"));
  if (after === undefined) throw new BadRequest("after: not a page cursor from an earlier answer");
  // The window is fixed by the first page's `now` and travels with the cursor's caller.
  const to = Number(u.searchParams.get("now") ?? Date.now());
  if (!Number.isSafeInteger(to)) throw new BadRequest("now: not a time in ms");
  const from = to - since;
  const minute = 60_000;
  // Raw samples where still kept (minute-aligned, so no minute is both summarised and raw).
  const rawFrom = Math.max(from, Math.ceil((to - c.history.raw_retention) / minute) * minute);
  return toWire(to, h.exportPage({ from, rawFrom }, after, PAGE_ROWS));
}

/**
 * The database's own /metrics, fetched by the agent (it is what scrapes it, and it holds the
 * URL's credentials): untrusted, so bounded in time and size, no redirects followed.
 */
export async function databaseMetrics(url: string): Promise<{
  url: string | null;
  ok: boolean;
  status: number | null;
  text: string;
  truncated: boolean;
  error: string | null;
}> {
  const shown = url === "" ? null : redactUrl(url).text;
  if (url === "")
    return {
      url: null,
      ok: false,
      status: null,
      text: "",
      truncated: false,
      error: "stemedb.metrics_url is not configured",
    };
  try {
    const { target, headers } = fetchable(url);
    const res = await fetch(target, {
      headers,
      signal: AbortSignal.timeout(DB_METRICS_TIMEOUT_MS),
      redirect: "error",
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let truncated = false;
    if (res.body) {
      // Leaving the loop cancels the body: the rest is never read.
      for await (const value of res.body as unknown as AsyncIterable<Uint8Array>) {
        const room = DB_METRICS_MAX_BYTES - size;
        chunks.push(Buffer.from(value.subarray(0, Math.max(0, room))));
        size += Math.min(value.length, Math.max(0, room));
        if (value.length > room) {
          truncated = true;
          break;
        }
      }
    }
    return {
      url: shown,
      ok: res.ok,
      status: res.status,
      text: Buffer.concat(chunks).toString("utf8"),
      truncated,
      error: res.ok ? null : `HTTP ${res.status}`,
    };
  } catch (e) {
    const why = fetchError(url, e);
    return { url: shown, ok: false, status: null, text: "", truncated: false, error: why };
  }
}
