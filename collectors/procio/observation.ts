// procio observation: the busiest processes and every unit doing I/O in one interval.
// Pure types: what the core, status, diagnose and remediators read; no implementation.
import type { TopIoRow } from "../../core/history/store.js";

export interface ProcessIo extends TopIoRow {
  readonly read_bytes: number;
  readonly write_bytes: number;
  /** A kernel thread (writeback, loop, jbd2): it works on someone else's behalf and cannot be paused. */
  readonly kthread: boolean;
}

export interface UnitIo {
  readonly unit: string;
  /**
   * Where the figures come from: the unit's cgroup io.stat (includes writeback done on its
   * behalf), or the sum of its processes.
   */
  readonly source: "io.stat" | "processes";
  readonly read_bps: number;
  readonly write_bps: number;
  /** Bytes in the interval (exact; the rates are these over the interval). */
  readonly read_bytes: number;
  readonly write_bytes: number;
  /** Per device "MAJ:MIN", from io.stat only. */
  readonly devices: Record<string, { read_bps: number; write_bps: number }>;
}

export interface ProcioObservation {
  readonly interval_seconds: number | null;
  /** Processes with storage I/O in the interval, busiest first, at most top_k. */
  readonly top: ProcessIo[];
  /** Every unit seen doing I/O, and every configured unit. */
  readonly units: UnitIo[];
  readonly processes: number;
  /** Processes whose io file could not be read (permissions): their I/O is invisible. */
  readonly unreadable: number;
}
