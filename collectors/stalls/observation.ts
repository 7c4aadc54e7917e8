// stalls observation: what is in flight now, by source, with its age. Pure types.
import type { DeviceAge, WriteCall } from "./parse.js";

/** A database thread in uninterruptible sleep inside a write or sync call on a WAL file. */
export interface DbThreadStall {
  readonly pid: number;
  readonly tid: number;
  readonly comm: string;
  readonly call: WriteCall;
  /** The file's name in the WAL directory. */
  readonly file: string;
  /** Seen in that call on that file at every sample for this long (a lower bound). */
  readonly age_seconds: number;
}

export interface StallsObservation {
  readonly db: {
    /** The WAL directory as matched (its real path); null when it does not exist. */
    readonly wal_dir: string | null;
    readonly threads: readonly DbThreadStall[];
    /** Why some threads could not be looked at (then stalls are unknown, not absent); null: all seen. */
    readonly unknown: string | null;
    readonly processes: number;
    readonly tasks_scanned: number;
  };
  /**
   * Devices with a request in flight, oldest first: the eBPF tier's exact age while it runs,
   * else (or when larger) diskstats' "in flight and nothing completed since".
   */
  readonly devices: readonly DeviceAge[];
}
