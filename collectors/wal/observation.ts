// wal observation: the WAL directory's segments, findings, filesystem and the database's own WAL figures.
// Pure types: what the core, status, diagnose and remediators read; no implementation.
import type { DbWalMetrics } from "./dbmetrics.js";
import type { SegmentState, WalFinding } from "./inventory.js";

export interface WalObservation {
  readonly dir: string;
  readonly scanned: boolean;
  readonly segments: Record<SegmentState, { count: number; bytes: number }>;
  readonly active: {
    name: string;
    size: number;
    write_age_seconds: number;
    bytes_per_second: number | null;
  } | null;
  readonly oldest_age_seconds: number | null;
  readonly newest_age_seconds: number | null;
  readonly rotations: number;
  /** Rotations first seen by this observation (wal_rotations_total counts them). */
  readonly new_rotations: number;
  readonly rotations_per_hour: number | null;
  readonly expected_segment_size: number | null;
  readonly findings: WalFinding[];
  readonly filesystem: { used_ratio: number; avail_bytes: number; full_in_seconds: number } | null;
  readonly database: (DbWalMetrics & { ok: true }) | { ok: false; error: string } | null;
  readonly scan_seconds: number;
}
