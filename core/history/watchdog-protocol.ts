// What the history store and its watchdog thread share: one SharedArrayBuffer of four slots.

/** Slot indexes of the BigInt64Array over the shared buffer. */
export const START = 0; // Date.now() when the write in progress began; 0 when none
export const OP = 1; // which write (an index into OPS)
export const SLOTS = 2;

/** The store's writes that can block in the kernel, by index. */
export const OPS = ["flush", "maintenance", "journal", "state"] as const;
export type HistoryOp = (typeof OPS)[number];

export interface WatchdogData {
  readonly shared: SharedArrayBuffer;
  readonly path: string;
  readonly slow_seconds: number;
  readonly stall_seconds: number;
}
