// What status, diagnose and agentctl show of the emergency ballast, pure: the remediator's view of
// itself (its state()), the status line, diagnose's storage-errors step, agentctl ballast's text.
import type { Verdict } from "../../judge/index.js";
import type { Mode, RemediatorSummary } from "../framework.js";

/** absent: none (not wanted, or no room); creating: partly reserved; released: given back, waiting. */
export const BALLAST_STATES = ["absent", "creating", "held", "released", "refused"] as const;
export type BallastStateName = (typeof BALLAST_STATES)[number];

export interface BallastView {
  readonly state: BallastStateName;
  /** Where it is, or would be (null when no place can be chosen). */
  readonly path: string | null;
  /** Bytes it holds on the disk (allocated), and the size it should have. */
  readonly bytes: number;
  readonly target_bytes: number;
  /** The last release, while the ballast has not been taken again. */
  readonly released: {
    readonly at: string;
    readonly by: "agent" | "operator";
    readonly reason: string;
  } | null;
  /** Why it cannot be kept here (place, filesystem), or null. */
  readonly refused: string | null;
  /** What the plan says now (with the figures). */
  readonly next: string;
  /** The WAL filesystem as the plan saw it; full_in_seconds null when not filling or not known. */
  readonly filesystem: {
    readonly size_bytes: number;
    readonly used_ratio: number;
    readonly full_in_seconds: number | null;
  } | null;
  readonly lines: {
    readonly release_used_percent: number;
    readonly release_full_horizon_seconds: number;
    readonly create_used_percent: number;
    readonly recreate_after_seconds: number;
  };
}

export interface BallastState extends RemediatorSummary {
  readonly ballast: BallastView;
}

export function size(b: number): string {
  if (b >= 1024 ** 3) return `${(b / 1024 ** 3).toFixed(1)} GiB`;
  if (b >= 1024 ** 2) return `${(b / 1024 ** 2).toFixed(1)} MiB`;
  return `${Math.round(b / 1024)} KiB`;
}

const hhmm = (iso: string) => `${iso.slice(11, 16)}Z`;
const hours = (s: number) => (s % 3600 === 0 ? `${s / 3600} h` : `${(s / 3600).toFixed(1)} h`);

/** "at 75% used or full within 48 h": when the agent gives it back. */
export const releaseLines = (v: BallastView): string =>
  `at ${v.lines.release_used_percent}% used or full within ` +
  hours(v.lines.release_full_horizon_seconds);

/** status: one line (and details) for the ballast. */
export function ballastStatus(
  v: BallastView,
  mode: Mode,
): { verdict: Verdict; summary: string; details: string[] } {
  const where = v.path ?? "(no place)";
  const details = [`${v.next}`, ...(v.path ? [`place: ${v.path}`] : [])];
  const held = `${size(v.bytes)} held at ${where}`;
  if (mode === "off")
    return {
      verdict: "ok",
      summary:
        v.bytes > 0
          ? `off; ${held} from before (agentctl ballast release frees it)`
          : "off: no emergency ballast is kept",
      details,
    };
  if (v.state === "refused")
    return {
      verdict: mode === "on" ? "warn" : "ok",
      summary: `${mode === "dry-run" ? "dry-run: " : ""}cannot be kept: ${v.refused ?? "refused"}`,
      details,
    };
  if (mode === "dry-run")
    return {
      verdict: "ok",
      summary: v.bytes > 0 ? `dry-run; ${held}: ${v.next}` : `dry-run: ${v.next}`,
      details,
    };
  switch (v.state) {
    case "held":
      return {
        verdict: "ok",
        summary: `${held}, given back ${releaseLines(v)}`,
        details,
      };
    case "creating":
      return {
        verdict: "ok",
        summary: `taking ${size(v.bytes)} of ${size(v.target_bytes)} at ${where}`,
        details,
      };
    case "released":
      return {
        verdict: "warn",
        summary:
          `given back by ${v.released?.by ?? "?"} at ${hhmm(v.released?.at ?? "")}` +
          `${v.released?.reason ? ` (${v.released.reason})` : ""}; taken again after ` +
          `${hours(v.lines.recreate_after_seconds)} of space back`,
        details,
      };
    default:
      return { verdict: "ok", summary: `none held: ${v.next}`, details };
  }
}

/**
 * diagnose, storage-errors.md: "the emergency ballast": what is held, and when the disk is full
 * (`full`: the WAL filesystem is warn or crit), the command that frees it at once.
 */
export function ballastStep(
  v: BallastView | null,
  mode: Mode | null,
  full: boolean,
): { verdict: Verdict | "info"; evidence: string; action: string | null } {
  if (v === null || mode === null)
    return { verdict: "unknown", evidence: "the ballast remediator is not running", action: null };
  const at = v.path ? ` at ${v.path}` : "";
  if (v.bytes > 0)
    return {
      verdict: full ? "warn" : "ok",
      evidence:
        `${size(v.bytes)} held${at} (ballast ${mode}; ` +
        `${mode === "on" ? `given back ${releaseLines(v)}` : "the agent does not give it back"})`,
      action: full ? `agentctl ballast release (root) frees ${size(v.bytes)} at once` : null,
    };
  if (v.state === "released")
    return {
      verdict: "ok",
      evidence:
        `given back by ${v.released?.by ?? "?"} at ${v.released?.at.slice(0, 19) ?? "?"}Z` +
        `${v.released?.reason ? ` (${v.released.reason})` : ""}; none held now`,
      action: null,
    };
  return {
    verdict: "info",
    evidence:
      v.state === "refused"
        ? `none: it cannot be kept here (${v.refused ?? "refused"})`
        : `none held (ballast ${mode}): ${v.next}`,
    action: null,
  };
}

/** agentctl ballast: the state, where, how much, the lines, the plan. */
export function renderBallastText(s: BallastState): string {
  const v = s.ballast;
  const out: string[] = [];
  const breaker = s.breaker_open ? ", CIRCUIT BREAKER OPEN" : "";
  out.push(
    `ballast: mode ${s.mode}${breaker}; ${v.state}, ${size(v.bytes)} of ${size(v.target_bytes)}` +
      `${v.path ? ` at ${v.path}` : ""}`,
  );
  if (v.refused) out.push(`refused: ${v.refused}`);
  if (v.released)
    out.push(`released: by ${v.released.by} at ${v.released.at} (${v.released.reason})`);
  const fs = v.filesystem;
  if (fs)
    out.push(
      `WAL filesystem: ${(fs.used_ratio * 100).toFixed(1)}% used of ${size(fs.size_bytes)}, ` +
        (fs.full_in_seconds === null
          ? "not filling"
          : `full in ${hours(Math.round(fs.full_in_seconds))}`),
    );
  out.push(
    `given back ${releaseLines(v)}; taken at or below ${v.lines.create_used_percent}% used ` +
      `(the whole ballast counted), after a release once space is back for ` +
      hours(v.lines.recreate_after_seconds),
  );
  out.push(`next: ${v.next}`);
  out.push(`last decision: ${s.last_decision}`);
  return `${out.join("\n")}\n`;
}
