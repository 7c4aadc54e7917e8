// diskstats observation: per-device counters and the iostat -x figures of one interval, and
// which devices hold the WAL and data directories.
// Pure types: what the core, status, diagnose and remediators read; no implementation.
import type { PathDevices } from "../blockdev/resolve.js";
import type { Iostat } from "./iostat.js";
import type { DiskCounters } from "./parse.js";

export interface DiskObservation {
  readonly device: string;
  readonly major: number;
  readonly minor: number;
  readonly counters: DiskCounters;
  /** Figures of the interval since the previous sample; null on the first sample or after a reset. */
  readonly iostat: Iostat | null;
}

export type Role = "wal" | "data";

export interface RoleMapping extends PathDevices {
  readonly role: Role;
}

export interface DiskstatsObservation {
  readonly interval_seconds: number | null;
  readonly devices: DiskObservation[];
  /** Which devices hold the WAL and data directories (refreshed every minute). */
  readonly roles: RoleMapping[];
  readonly problems: string[];
}
