// The database's own figures, from its Prometheus endpoint (optional). Pure parser of untrusted
// text: bounded (text, names, keys), never throws, never returns NaN. Reads
// - stemedb_wal_fsync_duration_seconds (summary quantiles, or a histogram's buckets) and
//   stemedb_wal_fsync_errors_total;
// - stemedb_replication_lag_seconds, the largest over its label sets (one per peer);
// - every stemedb_merkle_sync_* family by the name after that prefix: cumulative series
//   (_total, _count, _sum) summed over labels, gauges the largest, buckets and quantiles skipped;
// - stemedb_storage_operation_errors_total summed over labels.

export interface DbWalMetrics {
  /** quantile -> seconds, from a summary. */
  readonly quantiles: Record<string, number>;
  /** p99 in seconds: the summary's, else estimated from histogram buckets. */
  readonly p99: number | null;
  readonly count: number | null;
  readonly errors: number | null;
  /** stemedb_replication_lag_seconds (the largest when labelled per peer); null when absent. */
  readonly replication_lag_seconds: number | null;
  /** stemedb_merkle_sync_* by name without that prefix, summed over labels (max for gauges). */
  readonly merkle_sync: Readonly<Record<string, number>>;
  /** stemedb_storage_operation_errors_total, summed over labels; null when absent. */
  readonly storage_operation_errors: number | null;
}

/** Past this much text the rest is not read (a real endpoint is a few hundred kB at most). */
export const DB_METRICS_MAX_BYTES = 4 * 1024 * 1024;
/** At most this many stemedb_merkle_sync_* families are kept (the endpoint names them, not us). */
export const MERKLE_MAX_FAMILIES = 64;

const LINE = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/;
const MERKLE = "stemedb_merkle_sync_";
/** Names longer than this are nobody's metric: skipped, not kept as a key. */
const MAX_NAME = 200;

export function parseDbMetrics(input: string): DbWalMetrics {
  const text = bounded(input);
  const quantiles: Record<string, number> = {};
  const buckets: Array<[number, number]> = [];
  let count: number | null = null;
  let errors: number | null = null;
  let lag: number | null = null;
  let storageErrors: number | null = null;
  // A Map, not an object: a key is the endpoint's text ("__proto__" is a valid metric suffix).
  const merkle = new Map<string, number>();
  for (const raw of text.split("\n")) {
    if (raw.startsWith("#")) continue;
    const m = LINE.exec(raw.trim());
    if (!m) continue;
    const [, name = "", labels = "", v] = m;
    if (name.length > MAX_NAME) continue;
    const value = Number(v === "+Inf" ? Infinity : v);
    if (!Number.isFinite(value) && v !== "+Inf") continue;
    if (name === "stemedb_wal_fsync_duration_seconds") {
      const q = /[{,\s]quantile="([^"]+)"/.exec(labels)?.[1];
      if (q !== undefined) quantiles[q] = value;
    } else if (name === "stemedb_wal_fsync_duration_seconds_bucket") {
      // Anchored: `quantile="..."` ends in `le="` too. A bound that is not a number is no bucket.
      const le = /[{,\s]le="([^"]+)"/.exec(labels)?.[1];
      const bound = le === "+Inf" ? Infinity : Number(le);
      if (le !== undefined && le.trim() !== "" && !Number.isNaN(bound))
        buckets.push([bound, value]);
    } else if (!Number.isFinite(value)) {
      continue; // +Inf is a bucket bound's count above, never a figure below
    } else if (name === "stemedb_wal_fsync_duration_seconds_count") count = value;
    else if (name === "stemedb_wal_fsync_errors_total") errors = finite((errors ?? 0) + value);
    else if (name === "stemedb_replication_lag_seconds") lag = Math.max(lag ?? -Infinity, value);
    else if (name === "stemedb_storage_operation_errors_total")
      storageErrors = finite((storageErrors ?? 0) + value);
    else if (name.startsWith(MERKLE) && name.length > MERKLE.length) {
      const key = name.slice(MERKLE.length);
      if (/_bucket$/.test(key) || /[{,\s]quantile="/.test(labels)) continue;
      const prev = merkle.get(key);
      if (prev === undefined && merkle.size >= MERKLE_MAX_FAMILIES) continue;
      merkle.set(
        key,
        prev === undefined
          ? value
          : /_(total|count|sum)$/.test(key)
            ? finite(prev + value)
            : Math.max(prev, value),
      );
    }
  }
  let p99 = quantiles["0.99"] ?? null;
  if (p99 === null && buckets.length > 0) {
    buckets.sort((a, b) => a[0] - b[0]);
    const total = buckets.at(-1)?.[1] ?? 0;
    if (total > 0) p99 = buckets.find(([, c]) => c >= 0.99 * total)?.[0] ?? null; // upper bound of the p99 bucket
  }
  return {
    quantiles,
    p99,
    count,
    errors,
    replication_lag_seconds: lag,
    merkle_sync: Object.fromEntries(merkle),
    storage_operation_errors: storageErrors,
  };
}

/** Two huge finite values can add up to Infinity: keep the largest finite number instead. */
function finite(n: number): number {
  return Number.isFinite(n) ? n : Number.MAX_VALUE;
}

/** The text up to the last whole line within DB_METRICS_MAX_BYTES characters. */
function bounded(text: string): string {
  if (text.length <= DB_METRICS_MAX_BYTES) return text;
  const cut = text.lastIndexOf("\n", DB_METRICS_MAX_BYTES);
  return cut < 0 ? "" : text.slice(0, cut);
}
