import { pino } from "pino";
import type { Logger } from "../../agent/log.js";

/** A real logger that writes nowhere (tests assert on behaviour and metrics, not log text). */
export const quietLog: Logger = pino({ level: "silent" });

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** True while a process with this pid exists (and is not a zombie we reaped). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
