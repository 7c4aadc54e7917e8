// What one smartctl run means for the device: ok (health data), standby (skipped, asleep),
// unsupported (no SMART here: virtual disk, unknown type), error (open/identify failed, bad
// output). Pure. Unresponsive (timed out) is decided by the caller, who owns the clock.
import type { SmartReport } from "./parse.js";

export type CollectState = "ok" | "standby" | "unsupported" | "unresponsive" | "error";
export const COLLECT_STATES: readonly CollectState[] = [
  "ok",
  "standby",
  "unsupported",
  "unresponsive",
  "error",
];

export function classify(
  r: SmartReport,
  processExit: number | null,
): { state: CollectState; detail: string | null } {
  const exit = r.exitStatus ?? processExit ?? 0;
  const firstError = r.messages.find((m) => m.severity === "error")?.string ?? null;
  if (r.lowPowerMode !== null)
    return { state: "standby", detail: `disk in ${r.lowPowerMode} mode; not woken` };
  if (exit & 1) {
    if (
      r.messages.some((m) =>
        /Unable to detect device type|Unknown device type|not supported/i.test(m.string),
      )
    )
      return { state: "unsupported", detail: firstError };
    return { state: "error", detail: firstError ?? "smartctl refused its command line" };
  }
  if (exit & 2)
    return {
      state: "error",
      detail: firstError ?? "device open or identify failed (smartctl gave no reason)",
    };
  return { state: "ok", detail: null };
}
