// Counter history per drive, and what it says now: rising (grew within the window) or
// static. Pure: the collector persists the state and owns the clock.
//
// Why: a link-CRC count of 1 from three years ago is history; the same counter
// growing this week is a cable going bad now (smartd reports changes per check,
// Backblaze compares daily snapshots). The verdict needs "did it grow lately".

/** A rise counts as current for a week: longer than any weekly job that touches the disk. */
export const RISE_WINDOW_MS = 7 * 24 * 3_600_000;

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

/** Reads a stored state; anything malformed is no history (never a throw). */
export function readTrendState(text: string | undefined): TrendState | null {
  if (!text) return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  const o = v as Partial<TrendState> | null;
  if (!o || typeof o !== "object" || !finite(o.at) || typeof o.counters !== "object" || o.counters === null) return null;
  const pick = <T>(m: unknown, ok: (x: unknown) => x is T): Record<string, T> =>
    Object.fromEntries(Object.entries(typeof m === "object" && m !== null ? m : {}).filter(([, x]) => ok(x)));
  const isRise = (x: unknown): x is { at: number; delta: number } => typeof x === "object" && x !== null && finite((x as { at: unknown }).at) && finite((x as { delta: unknown }).delta);
  return { at: o.at, counters: pick(o.counters, finite), first: pick(o.first, finite), rises: pick(o.rises, isRise) };
}

/** The next state after a poll at `now`, and the counters that grew since the last poll. */
export function advanceTrend(prev: TrendState | null, counters: Readonly<Record<string, number>>, now: number): { state: TrendState; increases: Increase[] } {
  const first: Record<string, number> = {};
  const rises: Record<string, { at: number; delta: number }> = {};
  const increases: Increase[] = [];
  for (const [name, v] of Object.entries(counters)) {
    const before = prev?.counters[name];
    const since = prev?.first?.[name] ?? prev?.at;
    const rise = prev?.rises?.[name];
    if (before === undefined || since === undefined || v < before) {
      // New counter, or it went down (a reset or another drive): a new baseline.
      first[name] = now;
      continue;
    }
    first[name] = since;
    if (v > before) {
      rises[name] = { at: now, delta: v - before };
      increases.push({ name, previous: before, current: v, sinceMs: now - (prev?.at ?? now) });
    } else if (rise) rises[name] = rise;
  }
  return { state: { at: now, counters: { ...counters }, first, rises }, increases };
}

/** Rising or static, per counter, as of `now`. */
export function trendView(state: TrendState | null, now: number, windowMs = RISE_WINDOW_MS): Trends {
  const out: Record<string, TrendEntry> = {};
  if (!state) return out;
  for (const name of Object.keys(state.counters)) {
    const rise = state.rises?.[name];
    const since = state.first?.[name] ?? state.at;
    out[name] = { rising: rise !== undefined && now - rise.at <= windowMs, delta: rise?.delta ?? 0, watchedMs: Math.max(0, now - since) };
  }
  return out;
}
