// What collectors ask the judge. judge/ sits above collectors/ (it judges their observations),
// so a collector cannot import it: the app hands the judge's answers down through this interface.
import type { EventSeverity } from "../core/history/store.js";
import type { CounterKind } from "./errcounters/observation.js";
import type { FindingKind } from "./wal/inventory.js";

export interface CollectorJudge {
  /** A WAL finding's event severity. */
  findingSeverity(kind: FindingKind): EventSeverity;
  /** Whether a process (by comm) is the database itself. */
  isStemedbDatabase(comm: string): boolean;
  /** Whether the WAL's filesystem is filling fast enough to be a WAL finding. */
  walFilesystemFilling(used_ratio: number, full_in_seconds: number): boolean;
  /** A rise of one of the kernel's error counters: its event's severity. */
  counterRiseSeverity(counter: CounterKind): EventSeverity;
  /** A counter that rose with no kernel-log line for it: the log is incomplete. */
  logMissingSeverity(counter: CounterKind): EventSeverity;
}
