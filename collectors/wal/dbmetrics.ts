// The database's own view of WAL fsync, from its Prometheus endpoint (optional). Pure parser.
// Reads stemedb_wal_fsync_duration_seconds (summary quantiles, or a histogram's buckets) and
// stemedb_wal_fsync_errors_total from the text exposition format.

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

const LINE = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/;

export function parseDbMetrics(text: string): DbWalMetrics {
  const quantiles: Record<string, number> = {};
  const buckets: Array<[number, number]> = [];
  let count: number | null = null;
  let errors: number | null = null;
  for (const raw of text.split("\n")) {
    if (raw.startsWith("#")) continue;
    const m = LINE.exec(raw.trim());
    if (!m) continue;
    const [, name, labels = "", v] = m;
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
    } else if (name === "stemedb_wal_fsync_duration_seconds_count") count = value;
    else if (name === "stemedb_wal_fsync_errors_total") errors = (errors ?? 0) + value;
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
    replication_lag_seconds: null,
    merkle_sync: {},
    storage_operation_errors: null,
  };
}
