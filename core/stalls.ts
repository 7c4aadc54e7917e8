// Operations seen while they last, pebble's disk-health check (vfs/disk_health.go): each source
// reports the age of what is in flight now (a probe, a history write, a database thread in D on
// a WAL file, a device's oldest request); an episode is "slow" from one age and "stall" from a
// second, detected while it lasts and cleared, with its duration, when it ends. Pure: the
// detector holds only the conditions (core/conditions.ts); the metrics are defined once here so
// every source exports the same names.
import type { Registry } from "prom-client";
import { Conditions } from "./conditions.js";
import type { EventInput } from "./history/store.js";
import { counter, gauge } from "./metrics/define.js";
import type { Config } from "./config/schema.js";

/** Who reports in-flight ages; the `source` label. */
export type StallSource = "probe" | "history" | "db" | "device";

export interface StallLimits {
  /** An operation in flight this long is slow (seconds). */
  readonly slow_seconds: number;
  /** ... and this long, a stall (seconds); above slow_seconds. */
  readonly stall_seconds: number;
}

/** The [stalls] defaults: 5 s and 20 s (judge/thresholds.ts says why; a test keeps them equal). */
export const DEFAULT_STALL_LIMITS: StallLimits = { slow_seconds: 5, stall_seconds: 20 };

/** The [stalls] thresholds in seconds, as every source judges its in-flight operations. */
export function stallLimits(c: Pick<Config, "stalls">): StallLimits {
  return { slow_seconds: c.stalls.slow_after / 1000, stall_seconds: c.stalls.stall_after / 1000 };
}

export type StallLevel = "slow" | "stall";

/** One operation in flight: what it is (a bounded key) and how long it has been in flight. */
export interface InFlight {
  readonly key: string;
  readonly age_seconds: number;
  /** What it is, for the event and status (the WAL file, the syscall); never a label. */
  readonly detail?: string | undefined;
}

export type StallChange =
  | {
      readonly kind: "detected";
      readonly key: string;
      readonly level: StallLevel;
      readonly age_seconds: number;
      readonly detail: string | undefined;
    }
  | {
      readonly kind: "cleared";
      readonly key: string;
      /** The highest level the episode reached. */
      readonly level: StallLevel;
      /** Exact when the source knows it (a probe that returned), else the last age seen. */
      readonly duration_seconds: number;
      readonly detail: string | undefined;
    };

export const levelOf = (age: number, l: StallLimits): StallLevel | null =>
  age >= l.stall_seconds ? "stall" : age >= l.slow_seconds ? "slow" : null;

interface Episode {
  readonly level: StallLevel;
  readonly age: number;
  readonly detail: string | undefined;
}

/**
 * The episodes of one source. update() takes everything in flight now: an operation crossing a
 * threshold is detected (once per level), one that is gone is cleared with the last age seen;
 * end() clears one whose real duration is known.
 */
export class StallDetector {
  private readonly levels = new Conditions<string, StallLevel>();
  private readonly episodes = new Map<string, Episode>();

  constructor(private limits: StallLimits) {}

  setLimits(l: StallLimits): void {
    this.limits = l;
  }

  update(inFlight: readonly InFlight[]): StallChange[] {
    const out: StallChange[] = [];
    const seen = new Set<string>();
    for (const f of inFlight) {
      seen.add(f.key);
      let was = this.episodes.get(f.key);
      // Younger than last time: that operation ended and this is another one under the same key.
      if (was && f.age_seconds < was.age) {
        const c = this.end(f.key);
        if (c) out.push(c);
        was = undefined;
      }
      const level = levelOf(f.age_seconds, this.limits);
      if (level === null) {
        // Not slow (yet): an episode already detected goes on at its level until it ends.
        if (was) this.episodes.set(f.key, { ...was, age: f.age_seconds, detail: f.detail });
        continue;
      }
      // A level never goes back down while the operation lasts.
      const top: StallLevel = was?.level === "stall" ? "stall" : level;
      this.episodes.set(f.key, { level: top, age: f.age_seconds, detail: f.detail });
      if (this.levels.set(f.key, top))
        out.push({
          kind: "detected",
          key: f.key,
          level: top,
          age_seconds: f.age_seconds,
          detail: f.detail,
        });
    }
    for (const key of [...this.episodes.keys()])
      if (!seen.has(key)) {
        const c = this.end(key);
        if (c) out.push(c);
      }
    return out;
  }

  /** The operation `key` is over; `seconds`: its real duration when known. */
  end(key: string, seconds?: number): StallChange | null {
    const e = this.episodes.get(key);
    if (!e) return null;
    this.episodes.delete(key);
    this.levels.delete(key);
    return {
      kind: "cleared",
      key,
      level: e.level,
      duration_seconds: Math.max(seconds ?? 0, e.age),
      detail: e.detail,
    };
  }

  /** Episodes going on now. */
  ongoing(): Array<{ key: string; level: StallLevel; age_seconds: number }> {
    return [...this.episodes].map(([key, e]) => ({ key, level: e.level, age_seconds: e.age }));
  }
}

/** The metrics every source shares (defined once, whoever asks first). */
export function stallMetrics(registry: Registry) {
  return {
    ongoing: gauge(registry, {
      name: "stemedb_agent_stall_ongoing_seconds",
      help:
        "Age of the oldest operation in flight per source (probe, db, device) and target (mount " +
        "point, WAL directory, device); 0 when none is in flight.",
      labelNames: ["source", "target"],
    }),
    episodes: counter(registry, {
      name: "stemedb_agent_stall_episodes_total",
      help:
        "Operations that reached the slow or the stall threshold while in flight, by source and level " +
        "(history: counted when the write returns).",
      labelNames: ["source", "level"],
    }),
    unknown: gauge(registry, {
      name: "stemedb_agent_stall_unknown",
      help:
        "1 when a source could not look (e.g. a database thread's /proc syscall not readable): its " +
        "stalls are unknown, not absent.",
      labelNames: ["source"],
    }),
  };
}

export type StallMetrics = ReturnType<typeof stallMetrics>;

const NAMES: Record<StallSource, string> = {
  probe: "fsync probe",
  history: "history write",
  db: "database write",
  device: "device I/O",
};

/** The event of one change: kind storage.<source>_<slow|stall>[_cleared]. */
export function stallEvent(source: StallSource, subject: string, c: StallChange): EventInput {
  const what = `${NAMES[source]} ${c.detail ? `(${c.detail}) ` : ""}on ${subject}`;
  if (c.kind === "detected")
    return {
      class: "disk",
      kind: `stall.${source}.${c.level}`,
      severity: c.level === "stall" ? "crit" : "warn",
      subject,
      message: `${what} in flight for ${c.age_seconds.toFixed(1)} s (${c.level})`,
      data: { key: c.key, age_seconds: c.age_seconds, detail: c.detail ?? null },
    };
  return {
    class: "disk",
    kind: `stall.${source}.cleared`,
    severity: "info",
    subject,
    message: `${what} done after ${c.duration_seconds.toFixed(1)} s (was ${c.level})`,
    data: {
      key: c.key,
      level: c.level,
      duration_seconds: c.duration_seconds,
      detail: c.detail ?? null,
    },
  };
}
