// Counter history per drive, and what it says now: rising (grew within the window) or
// static. Pure: the collector persists the state and owns the clock.
//
// Why: a link-CRC count of 1 from three years ago is history; the same counter
// growing this week is a cable going bad now (smartd reports changes per check,
// Backblaze compares daily snapshots). The verdict needs "did it grow lately".

/** A rise counts as current for a week: longer than any weekly job that touches the disk. */
export const RISE_WINDOW_MS = 7 * 24 * 3_600_000;

/** How far after `now` a stored rise may be stamped and still count (clock steps back). */
export const RISE_CLOCK_SLACK_MS = 3_600_000;

export interface TrendState {
  /** Time of the last poll, and its counters (the original baseline format). */
  readonly at: number;
  readonly counters: Readonly<Record<string, number>>;
  /** When each counter was first seen (at its current baseline). */
  readonly first?: Readonly<Record<string, number>>;
  /** The last rise of each counter: when it was seen and by how much. */
  readonly rises?: Readonly<Record<string, { readonly at: number; readonly delta: number }>>;
}

export interface TrendEntry {
  /** Grew within the window. */
  readonly rising: boolean;
  /** The last rise (0: none seen). */
  readonly delta: number;
  /** How long this counter has been watched, in ms. */
  readonly watchedMs: number;
}

export type Trends = Readonly<Record<string, TrendEntry>>;

export interface Increase {
  readonly name: string;
  readonly previous: number;
  readonly current: number;
  readonly sinceMs: number;
}

const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const nonNegative = (v: unknown): v is number => finite(v) && v >= 0;
/** An own entry of a stored map: "constructor" or "__proto__" is a name, never Object.prototype's. */
const own = <T>(m: Readonly<Record<string, T>> | undefined, k: string): T | undefined =>
  m !== undefined && Object.hasOwn(m, k) ? m[k] : undefined;

/** Sets an own, enumerable entry (plain assignment of "__proto__" would change the prototype). */
function put<T>(m: Record<string, T>, k: string, v: T): void {
  Object.defineProperty(m, k, { value: v, enumerable: true, writable: true, configurable: true });
}

/** A map from stored JSON: only own entries whose value passes `ok`. */
function pick<T>(
  m: unknown,
  ok: (x: unknown) => x is T,
  copy: (x: T) => T = (x) => x,
): Record<string, T> {
  const out: Record<string, T> = {};
  if (typeof m !== "object" || m === null || Array.isArray(m)) return out;
  for (const [k, x] of Object.entries(m)) if (ok(x)) put(out, k, copy(x));
  return out;
}

/**
 * Reads a stored state; anything malformed is no history, i.e. a fresh baseline (never a throw).
 * Entries that cannot be right are dropped one by one: non-numeric or negative counters, rises
 * of zero or less, times that are not finite.
 */
export function readTrendState(text: string | undefined): TrendState | null {
  if (typeof text !== "string" || text === "") return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  if (
    !finite(o["at"]) ||
    typeof o["counters"] !== "object" ||
    o["counters"] === null ||
    Array.isArray(o["counters"])
  )
    return null;
  const isRise = (x: unknown): x is { at: number; delta: number } => {
    if (typeof x !== "object" || x === null) return false;
    const r = x as { at?: unknown; delta?: unknown };
    return finite(r.at) && finite(r.delta) && r.delta > 0;
  };
  const rises = pick(o["rises"], isRise, (r) => ({ at: r.at, delta: r.delta }));
  return {
    at: o["at"],
    counters: pick(o["counters"], nonNegative),
    first: pick(o["first"], finite),
    rises,
  };
}

/** The next state after a poll at `now`, and the counters that grew since the last poll. */
export function advanceTrend(
  prev: TrendState | null,
  counters: Readonly<Record<string, number>>,
  now: number,
): { state: TrendState; increases: Increase[] } {
  const first: Record<string, number> = {};
  const rises: Record<string, { at: number; delta: number }> = {};
  const kept: Record<string, number> = {};
  const increases: Increase[] = [];
  for (const [name, v] of Object.entries(counters)) {
    if (!finite(v)) continue;
    put(kept, name, v);
    const before = own(prev?.counters, name);
    // Times after `now` (the clock was stepped back, or a bad state) are clamped to now.
    const seen = own(prev?.first, name) ?? prev?.at;
    const since = seen === undefined ? undefined : Math.min(seen, now);
    const rise = own(prev?.rises, name);
    if (before === undefined || since === undefined || v < before) {
      // New counter, or it went down (a reset or another drive): a new baseline.
      put(first, name, now);
      continue;
    }
    put(first, name, since);
    if (v > before) {
      put(rises, name, { at: now, delta: v - before });
      increases.push({ name, previous: before, current: v, sinceMs: now - (prev?.at ?? now) });
    } else if (rise && rise.at <= now + RISE_CLOCK_SLACK_MS) put(rises, name, rise);
  }
  return { state: { at: now, counters: kept, first, rises }, increases };
}

/** Rising or static, per counter, as of `now`. Every number in the result is finite and >= 0. */
export function trendView(
  state: TrendState | null,
  now: number,
  windowMs = RISE_WINDOW_MS,
): Trends {
  const out: Record<string, TrendEntry> = {};
  if (!state) return out;
  for (const name of Object.keys(state.counters)) {
    const rise = own(state.rises, name);
    const since = own(state.first, name) ?? state.at;
    // A rise stamped a little after `now` (the clock stepped back) still counts; one from
    // further ahead is a bad state, not news.
    const age = rise ? now - rise.at : NaN;
    const rising = age >= -RISE_CLOCK_SLACK_MS && age <= windowMs;
    const delta = rise && finite(rise.delta) && rise.delta > 0 ? rise.delta : 0;
    const watched = now - since;
    put(out, name, { rising, delta, watchedMs: finite(watched) && watched > 0 ? watched : 0 });
  }
  return out;
}
