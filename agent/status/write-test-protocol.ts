// What the WAL write test's main side and its worker thread share.

/** The test's directory (root's, 0700) beside the WAL directory or in the state directory. */
export const TEST_DIR = ".stemedb-agent-write-test";
/** The runbook's file name: `dd … of=wal/test.dat`. */
export const TEST_FILE = "test.dat";
/** One write: the runbook's `bs=1M`. */
export const BLOCK = 1024 * 1024;

export interface WriteTestRequest {
  readonly walDir: string;
  readonly stateDir: string;
  /** `[diagnose] write_test_dir`; "" lets the worker choose. */
  readonly dir: string;
  readonly size: number;
  readonly deadlineMs: number;
}

export type WriteTestReply =
  | {
      readonly ok: true;
      readonly path: string;
      readonly bytes: number;
      readonly seconds: number;
      readonly writes: number;
      readonly p50_seconds: number;
      readonly p99_seconds: number;
      readonly max_seconds: number;
      readonly stopped_at_deadline: boolean;
    }
  | { readonly ok: false; readonly code: string; readonly message: string };
