// The history watchdog's thread. better-sqlite3 writes on the main thread: a write stuck in the
// kernel (a frozen or dead filesystem) blocks the event loop, the scheduler and /metrics, so
// nothing there can say so. This thread can: four times a second it reads the start time the
// store put in shared memory and, while a write is in flight past the slow threshold, logs it
// (the same JSON lines as the agent's log, written straight to fd 1: a worker's process.stdout
// goes through the blocked main thread).
import { writeSync } from "node:fs";
import { workerData } from "node:worker_threads";
import { OP, OPS, START, type WatchdogData } from "./watchdog-protocol.js";

const d = workerData as WatchdogData;
const slots = new BigInt64Array(d.shared);
const POLL_MS = 250;
/** While stuck, a line at the slow threshold, at the stall threshold, then this often. */
const REPEAT_SECONDS = 10;

let current = 0n;
/** The age at which the write in flight is logged next. */
let next = d.slow_seconds;

function line(level: number, msg: string, fields: Record<string, unknown>): void {
  const rec = { level, time: new Date().toISOString(), service: "stemedb-agent", ...fields, msg };
  try {
    writeSync(1, `${JSON.stringify(rec)}\n`);
  } catch {
    // stdout gone: nothing else to tell
  }
}

setInterval(() => {
  const start = Atomics.load(slots, START);
  if (start !== current) {
    current = start;
    next = d.slow_seconds;
  }
  if (start === 0n) return;
  const seconds = (Date.now() - Number(start)) / 1000;
  if (seconds < next) return;
  next = seconds < d.stall_seconds ? d.stall_seconds : seconds + REPEAT_SECONDS;
  const op = OPS[Number(Atomics.load(slots, OP))] ?? "write";
  const level = seconds >= d.stall_seconds ? "stall" : "slow";
  line(
    level === "stall" ? 50 : 40,
    `history: ${op} in flight for ${seconds.toFixed(1)} s (${level}); the main thread waits in it`,
    { watchdog: "history", op, path: d.path, seconds, stall_level: level },
  );
}, POLL_MS);
