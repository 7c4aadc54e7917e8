// The emergency ballast's decisions, pure. CockroachDB's EMERGENCY_BALLAST on the WAL filesystem:
// space reserved while there is plenty, given back the moment the disk runs short (before WAL
// compression has to act), taken again only once space has been back for a while.
//
//   size     the smaller of 1 % of the filesystem and 1 GiB ("auto"), or a configured size
//   release  used >= release_used_percent, or full within release_full_horizon (time-to-full is
//            not believed for one fill_window after the ballast grew: the fit sees it as filling)
//   create   only if used, counting the whole ballast, stays <= create_used_percent, and nothing
//            calls for a release; after a release only once that has held for recreate_after
//
// One decision per tick: release, grow by one step, hold, or wait (nothing to do, and why).

/** What one growth step reserves at most: never one big burst (64 MiB, then a pause). */
export const STEP_BYTES = 64 * 1024 ** 2;
/** The pause between two steps. */
export const STEP_PAUSE_MS = 1000;
const GiB = 1024 ** 3;
/** Sizes are whole filesystem blocks. */
const BLOCK = 4096;

export interface BallastLines {
  /** Release at or above this share of the filesystem used (percent). */
  readonly releaseUsedPercent: number;
  /** Release when the filesystem is full within this (ms) at the recent rate. */
  readonly releaseFullHorizonMs: number;
  /** Create only while used, counting the whole ballast, stays at or below this (percent). */
  readonly createUsedPercent: number;
  /** After a release, space must be back this long (ms) before the ballast is taken again. */
  readonly recreateAfterMs: number;
  /** How long time-to-full is ignored after the ballast grew (collectors.mounts.fill_window). */
  readonly fillWindowMs: number;
}

/** What the remediator remembers between ticks (and restarts: persisted in the history's state). */
export interface Memory {
  /** When the ballast last grew: time-to-full is ignored for one fill window after. */
  readonly grewAt: number | null;
  /** The last release, while the ballast has not been taken again. */
  readonly released: {
    readonly at: number;
    readonly by: "agent" | "operator";
    /** Why (what status says); the plan does not read it. */
    readonly reason?: string;
  } | null;
  /** Since when space has been back after a release (null: not back). */
  readonly spaceBackSince: number | null;
}

export const EMPTY_MEMORY: Memory = { grewAt: null, released: null, spaceBackSince: null };

export interface PlanInput {
  readonly now: number;
  /** The filesystem (statfs): total bytes, and the used share as the database sees it. */
  readonly sizeBytes: number;
  readonly usedRatio: number;
  /** Seconds until full at the recent rate; Infinity when not filling or not known. */
  readonly fullInSeconds: number;
  /** Whether a ballast file exists, and how many bytes it holds (allocated blocks). */
  readonly exists: boolean;
  readonly heldBytes: number;
  /** The size the ballast should have. */
  readonly target: number;
  readonly memory: Memory;
  readonly lines: BallastLines;
}

/**
 * One decision. `code` is stable (what an event says, so a 1 s tick does not make one each time a
 * figure moves); `reason` has the figures.
 */
export type Decision =
  | {
      readonly kind: "release";
      readonly code: "used" | "filling" | "unfinishable";
      readonly reason: string;
    }
  | {
      readonly kind: "grow";
      readonly code: "room";
      readonly bytes: number;
      readonly reason: string;
    }
  | { readonly kind: "hold"; readonly code: "held"; readonly reason: string }
  | {
      readonly kind: "wait";
      readonly code: "release_line" | "no_room" | "space_back" | "zero_size";
      readonly reason: string;
    };

export interface Plan {
  readonly decision: Decision;
  /** What to remember for the next tick. */
  readonly memory: Memory;
}

/** The ballast's size: "auto" is min(1 % of the filesystem, 1 GiB); whole blocks. */
export function targetBytes(size: "auto" | number, fsBytes: number): number {
  const want = size === "auto" ? Math.min(fsBytes * 0.01, GiB) : size;
  return Math.max(0, Math.floor(want / BLOCK) * BLOCK);
}

const pct = (r: number) => `${(r * 100).toFixed(1)}%`;
const hours = (s: number) => `${(s / 3600).toFixed(1)} h`;
const minutes = (ms: number) =>
  ms >= 3_600_000 ? `${(ms / 3_600_000).toFixed(1)} h` : `${Math.round(ms / 60_000)} min`;

/** Why the space calls for a release now, or null. */
export function releaseTrigger(p: PlanInput): { code: "used" | "filling"; reason: string } | null {
  const l = p.lines;
  if (p.usedRatio * 100 >= l.releaseUsedPercent)
    return {
      code: "used",
      reason: `filesystem ${pct(p.usedRatio)} used (>= release_used_percent ${l.releaseUsedPercent}%)`,
    };
  if (p.fullInSeconds * 1000 < l.releaseFullHorizonMs && !fillBlind(p))
    return {
      code: "filling",
      reason:
        `full in ${hours(p.fullInSeconds)} at the recent rate ` +
        `(< release_full_horizon ${hours(l.releaseFullHorizonMs / 1000)})`,
    };
  return null;
}

/** Time-to-full is not believed within a fill window of the ballast's own growth. */
export function fillBlind(p: Pick<PlanInput, "now" | "memory" | "lines">): boolean {
  const g = p.memory.grewAt;
  return g !== null && p.now - g < p.lines.fillWindowMs && p.now >= g;
}

/** The used share once the whole ballast is held (what is still missing counted as used). */
export function usedWithBallast(p: PlanInput): number {
  const missing = Math.max(0, p.target - p.heldBytes);
  return p.sizeBytes > 0 ? p.usedRatio + missing / p.sizeBytes : 1;
}

export function planBallast(p: PlanInput): Plan {
  const l = p.lines;
  const m = p.memory;
  const release = releaseTrigger(p);
  if (release !== null) {
    if (p.exists)
      return {
        decision: { kind: "release", code: release.code, reason: release.reason },
        memory: { ...m, spaceBackSince: null },
      };
    return {
      decision: {
        kind: "wait",
        code: "release_line",
        reason: `not taken while ${release.reason}`,
      },
      memory: { ...m, spaceBackSince: null },
    };
  }
  const after = usedWithBallast(p);
  const roomy = after * 100 <= l.createUsedPercent;
  if (p.exists && p.heldBytes >= p.target)
    return {
      decision: { kind: "hold", code: "held", reason: `held: ${p.heldBytes} bytes reserved` },
      memory: { ...m, spaceBackSince: null, released: null },
    };
  if (p.target <= 0)
    return {
      decision: { kind: "wait", code: "zero_size", reason: "the ballast's size is 0 here" },
      memory: m,
    };
  if (!roomy) {
    // A half-made ballast that can no longer be finished is given back: taking the rest would
    // push past the line, and removing it changes nothing the line counts (it counts the whole).
    const why =
      `${pct(after)} used with the whole ballast counted ` +
      `(> create_used_percent ${l.createUsedPercent}%)`;
    if (p.exists)
      return {
        decision: {
          kind: "release",
          code: "unfinishable",
          reason: `unfinished, and cannot be finished: ${why}`,
        },
        memory: { ...m, spaceBackSince: null },
      };
    return {
      decision: { kind: "wait", code: "no_room", reason: `not taken: ${why}` },
      memory: { ...m, spaceBackSince: null },
    };
  }
  const step = Math.min(STEP_BYTES, p.target - p.heldBytes);
  if (m.released !== null && !p.exists) {
    // Hysteresis: space must have been back, continuously, for recreate_after.
    const since = m.spaceBackSince ?? p.now;
    const back = { ...m, spaceBackSince: since };
    if (p.now - since < l.recreateAfterMs)
      return {
        decision: {
          kind: "wait",
          code: "space_back",
          reason:
            `released by ${m.released.by} at ${new Date(m.released.at).toISOString()}; space back ` +
            `(${pct(after)} used with it counted) for ${minutes(p.now - since)} of the ` +
            `${minutes(l.recreateAfterMs)} recreate_after asks`,
        },
        memory: back,
      };
  }
  return {
    decision: {
      kind: "grow",
      code: "room",
      bytes: step,
      reason:
        `${pct(after)} used with the whole ballast counted (<= create_used_percent ` +
        `${l.createUsedPercent}%)`,
    },
    memory: { grewAt: p.now, released: null, spaceBackSince: null },
  };
}
