// Duration and size strings as written in agent.toml ("500ms", "1h30m", "64MiB").
// Pure functions: they return a value or a reason, never throw.

/** Milliseconds. Branded so a raw number cannot be passed where a duration is meant. */
export type Duration = number & { readonly __unit: "ms" };
/** Bytes. */
export type Size = number & { readonly __unit: "bytes" };

export const ms = (n: number): Duration => n as Duration;
export const bytes = (n: number): Size => n as Size;

const DURATION_UNITS: ReadonlyArray<readonly [string, number]> = [
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1_000],
  ["ms", 1],
];
const DURATION_FACTOR = new Map<string, number>(DURATION_UNITS);
const DURATION_RE = /^(?:\d+(?:\.\d+)?(?:ms|d|h|m|s))+$/;
const DURATION_PART_RE = /(\d+(?:\.\d+)?)(ms|d|h|m|s)/g;

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

export function parseDuration(text: string): Parsed<Duration> {
  const s = text.trim();
  if (s === "0") return { ok: true, value: ms(0) };
  if (!DURATION_RE.test(s)) {
    return {
      ok: false,
      reason:
        `invalid duration ${JSON.stringify(text)}: use a number with a unit, e.g. "500ms", "10s", ` +
        `"10m", "1h30m", "7d"`,
    };
  }
  let total = 0;
  for (const m of s.matchAll(DURATION_PART_RE)) {
    total += Number(m[1]) * (DURATION_FACTOR.get(m[2] ?? "") ?? NaN);
  }
  if (!Number.isFinite(total) || total > 10 * 365 * 86_400_000) {
    return {
      ok: false,
      reason: `duration ${JSON.stringify(text)} is out of range (at most 10 years)`,
    };
  }
  return { ok: true, value: ms(Math.round(total)) };
}

/** Shortest exact rendering: 600000 -> "10m", 5400000 -> "1h30m", 1500 -> "1s500ms". */
export function formatDuration(d: number): string {
  if (d === 0) return "0s";
  let rest = Math.round(d);
  let out = "";
  for (const [unit, factor] of DURATION_UNITS) {
    const n = Math.floor(rest / factor);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * factor;
    }
  }
  return out;
}

const SIZE_FACTOR = new Map<string, number>([
  ["", 1],
  ["B", 1],
  ["KiB", 1024],
  ["MiB", 1024 ** 2],
  ["GiB", 1024 ** 3],
  ["TiB", 1024 ** 4],
  ["kB", 1000],
  ["KB", 1000],
  ["MB", 1000 ** 2],
  ["GB", 1000 ** 3],
  ["TB", 1000 ** 4],
]);
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/;

export function parseSize(text: string): Parsed<Size> {
  const m = SIZE_RE.exec(text.trim());
  const factor = m ? SIZE_FACTOR.get(m[2] ?? "") : undefined;
  if (!m || factor === undefined) {
    return {
      ok: false,
      reason: `invalid size ${JSON.stringify(text)}: use a number with a unit, e.g. "512KiB", "64MiB", "2GiB", "10MB"`,
    };
  }
  const value = Math.round(Number(m[1]) * factor);
  if (!Number.isSafeInteger(value))
    return { ok: false, reason: `size ${JSON.stringify(text)} is out of range` };
  return { ok: true, value: bytes(value) };
}

/** Exact binary rendering when possible: 67108864 -> "64MiB", 1000 -> "1000B". */
export function formatSize(b: number): string {
  for (const unit of ["TiB", "GiB", "MiB", "KiB"]) {
    const f = SIZE_FACTOR.get(unit) ?? 1;
    if (b >= f && b % f === 0) return `${b / f}${unit}`;
  }
  return `${b}B`;
}

/** Bounds of bundle.max_bytes and `agentctl bundle --max-size` (here: agentctl reads no schema). */
export const MIN_BUNDLE_BYTES = 256 * 1024;
export const MAX_BUNDLE_BYTES = 1024 * 1024 * 1024;
