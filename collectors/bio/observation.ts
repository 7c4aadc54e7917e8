// bio observation: per-I/O latency from the block layer's tracepoints (bpftrace), or why the
// agent is on the diskstats tier instead. Pure types.
import type { BioOp } from "./parse.js";

export type { BioOp };

/** Why the eBPF tier is not running; the diskstats collector's averages are all there is. */
export type BioFallback =
  | { readonly kind: "unavailable"; readonly reason: string }
  | { readonly kind: "starting"; readonly reason: string }
  | { readonly kind: "restarting"; readonly reason: string; readonly retry_in_seconds: number };

export interface BioHistogram {
  /** Kernel name ("sda", "nvme0n1", "loop3"), or "major:minor" when sysfs has none. */
  readonly device: string;
  readonly op: BioOp;
  readonly sync: boolean;
  /** Requests completed since the agent started measuring (carried across bpftrace restarts). */
  readonly count: number;
  readonly sum_seconds: number;
  /** Cumulative counts at parse.ts EXPORT_BOUNDS_US, then the total. */
  readonly cumulative: readonly number[];
  /** Over the last interval (null: no requests): upper edges of the fine buckets. */
  readonly p99_seconds: number | null;
  readonly p999_seconds: number | null;
  readonly interval_count: number;
}

export interface BioUnit {
  /** systemd unit (or cgroup path, "unknown", "other" for those beyond top_k). */
  readonly unit: string;
  /** In the last interval. */
  readonly read_bytes: number;
  readonly write_bytes: number;
  readonly ios: number;
  readonly mean_latency_seconds: number | null;
  /** Upper edge of the power-of-two bucket holding the p99. */
  readonly p99_seconds: number | null;
}

export interface BioInflight {
  /** As in histograms. */
  readonly device: string;
  readonly op: BioOp;
  readonly age_seconds: number;
}

export interface BioCounters {
  /** Completions without a recorded start (issued before attach, map full, a key collision). */
  readonly unmatched: number;
  /** Completions counted but missing from the histogram map (the map was full). */
  readonly dropped: number;
  /**
   * In-flight counts the kernel's own says are not there (a lost update of bpftrace 0.17's
   * non-atomic sums), at the last round: left out of the oldest request in flight.
   */
  readonly inflight_leaked: number;
  /** Completions whose submitter was not recorded (map full, no start probe for it). */
  readonly unattributed: number;
  /** bpftrace output lines that did not parse, or were too long. */
  readonly bad_lines: number;
  /** Map keys that did not parse. */
  readonly bad_keys: number;
  /** bpftrace processes that ended on their own. */
  readonly exits: number;
}

interface BioFigures {
  readonly queue_time: boolean;
  /** Seconds since the previous observation (null: the first). */
  readonly interval_seconds: number | null;
  /** Cumulative since the agent started measuring: kept (not reset) while on the diskstats tier. */
  readonly histograms: readonly BioHistogram[];
  /** Top units by bytes in the interval, then "other"; empty on the diskstats tier. */
  readonly units: readonly BioUnit[];
  /** The oldest request in flight per device that has requests in flight, oldest first. */
  readonly inflight: readonly BioInflight[];
  readonly counters: BioCounters;
  /** Whether the cgroup walk hit its bound (some units may read as "unknown"). */
  readonly cgroups_truncated: boolean;
}

export type BioObservation = BioFigures &
  (
    | { readonly tier: "ebpf" }
    /** The eBPF tier is not running: the diskstats collector's averages are all there is. */
    | { readonly tier: "diskstats"; readonly fallback: BioFallback }
  );
