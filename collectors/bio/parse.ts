// Pure parts of the bio collector: the kernel's rwbs string, the log-linear latency buckets the
// bpftrace script counts in, and bpftrace's JSON output (`-f json`), one line at a time.

export type BioOp = "read" | "write" | "flush" | "discard" | "other";

export interface Rwbs {
  readonly op: BioOp;
  /** REQ_PREFLUSH: a cache flush before the data. */
  readonly preflush: boolean;
  /** REQ_FUA: the data written through the device's cache. */
  readonly fua: boolean;
  /** REQ_SYNC: someone waits for it (O_DIRECT, fsync, reads). */
  readonly sync: boolean;
  readonly meta: boolean;
  readonly readahead: boolean;
}

const OPS: Record<string, BioOp> = { R: "read", W: "write", F: "flush", D: "discard", N: "other" };

/**
 * rwbs as the kernel's blk_fill_rwbs() writes it: an optional 'F' (preflush), the operation
 * (W, R, D, DE for secure erase, F for a flush, N for anything else), then the flags F (FUA),
 * A (readahead), S (sync), M (metadata). Null for text that is not of that shape.
 */
export function parseRwbs(text: string): Rwbs | null {
  const m = /^(F?)(DE|[WRDFN])(F?)(A?)(S?)(M?)$/.exec(text);
  if (!m) return null;
  const op = OPS[(m[2] as string)[0] as string] as BioOp;
  return {
    op,
    preflush: m[1] === "F",
    fua: m[3] === "F",
    readahead: m[4] === "A",
    sync: m[5] === "S",
    meta: m[6] === "M",
  };
}

/**
 * The script's bucket of a latency of `us` microseconds: 0 below 8 us, then four per power of
 * two (the top two bits after the leading one), BUCKET_OVER from 2^25 us (33.5 s) up.
 * The same arithmetic as the bpftrace script's, for tests and for quantiles.
 */
export function bucketIndex(us: number): number {
  if (us < 8) return 0;
  const m = Math.floor(Math.log2(us));
  if (m >= 25) return BUCKET_OVER;
  return (m - 3) * 4 + (Math.floor(us / 2 ** (m - 2)) & 3) + 1;
}

export const BUCKET_OVER = (25 - 3) * 4 + 1;

/** The exclusive upper edge of a bucket, in microseconds (Infinity for BUCKET_OVER). */
export function bucketUpper(index: number): number {
  if (index <= 0) return 8;
  if (index >= BUCKET_OVER) return Infinity;
  const m = 3 + Math.floor((index - 1) / 4);
  const sub = (index - 1) % 4;
  return (5 + sub) * 2 ** (m - 2);
}

/**
 * Exported `le` bounds in seconds: two per power of two (2^m and 1.5 * 2^m microseconds) from
 * 16 us to 2^24 us (16.8 s), each the upper edge of a script bucket, so a cumulative count at
 * each is exact. 41 bounds plus +Inf: a p99.9 anywhere from 100 us to 10 s falls in a bucket no
 * wider than half its lower edge.
 */
export const EXPORT_BOUNDS_US: readonly number[] = (() => {
  const out: number[] = [];
  for (let m = 4; m <= 24; m++) {
    out.push(2 ** m);
    if (m < 24) out.push(3 * 2 ** (m - 1));
  }
  return out;
})();

/** Sparse counts per script bucket (index -> count), as the script's @h map holds them. */
export type Buckets = ReadonlyMap<number, number>;

/** Cumulative counts at each exported bound, then the total (the +Inf bucket). */
export function exportBuckets(b: Buckets): number[] {
  const out = EXPORT_BOUNDS_US.map(() => 0);
  let total = 0;
  for (const [i, n] of b) {
    total += n;
    const upper = bucketUpper(i);
    // A bucket counts at every bound at or above its upper edge.
    for (let k = 0; k < EXPORT_BOUNDS_US.length; k++)
      if (upper <= (EXPORT_BOUNDS_US[k] as number)) out[k] = (out[k] as number) + n;
  }
  out.push(total);
  return out;
}

/**
 * The q-quantile (0 < q <= 1) of bucketed latencies in seconds: the upper edge of the bucket it
 * falls in (an over-estimate by at most the bucket's width, a quarter of a power of two); null
 * without samples, Infinity when it falls past 33.5 s.
 */
export function quantile(b: Buckets, q: number): number | null {
  let total = 0;
  for (const n of b.values()) total += n;
  if (total === 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (const i of [...b.keys()].sort((x, y) => x - y)) {
    seen += b.get(i) as number;
    if (seen >= rank) return bucketUpper(i) / 1e6;
  }
  return null;
}

/** One bpftrace output line, classified. */
export type BpftraceLine =
  | { readonly kind: "map"; readonly name: string; readonly value: number | Map<string, number> }
  | { readonly kind: "attached"; readonly probes: number }
  | { readonly kind: "other" }
  | { readonly kind: "bad"; readonly reason: string };

/**
 * One line of `bpftrace -f json`: {"type": "map", "data": {"@name": value}} with value a number
 * (a scalar map) or an object of "key1,key2,...": number. Anything else the script does not
 * produce is "other" (ignored) or "bad" (counted). Values must be non-negative safe integers.
 */
export function parseLine(line: string): BpftraceLine {
  if (line.trim() === "") return { kind: "other" };
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { kind: "bad", reason: "not JSON" };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    return { kind: "bad", reason: "not an object" };
  const { type, data } = v as { type?: unknown; data?: unknown };
  if (type === "attached_probes") {
    const probes = (data as { probes?: unknown } | null)?.probes;
    return typeof probes === "number" ? { kind: "attached", probes } : { kind: "other" };
  }
  if (type !== "map") return { kind: "other" };
  if (typeof data !== "object" || data === null) return { kind: "bad", reason: "map without data" };
  const entries = Object.entries(data);
  if (entries.length !== 1) return { kind: "bad", reason: "map line with more than one map" };
  const [name, value] = entries[0] as [string, unknown];
  if (!/^@\w{1,32}$/.test(name)) return { kind: "bad", reason: "bad map name" };
  if (typeof value === "number") {
    return isCount(value)
      ? { kind: "map", name: name.slice(1), value }
      : { kind: "bad", reason: `${name}: not a count` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { kind: "bad", reason: `${name}: neither a number nor keyed values` };
  const out = new Map<string, number>();
  for (const [k, n] of Object.entries(value as Record<string, unknown>)) {
    if (typeof n !== "number" || !isCount(n))
      return { kind: "bad", reason: `${name}: not a count` };
    out.set(k, n);
  }
  return { kind: "map", name: name.slice(1), value: out };
}

const isCount = (n: number) => Number.isSafeInteger(n) && n >= 0;

/** A map key "a,b,c" split into exactly `n` parts, or null. */
export function keyParts(key: string, n: number): string[] | null {
  const p = key.split(",");
  return p.length === n ? p : null;
}

/** A decimal integer field of a key (dev_t, sector, bucket, cgroup id), or null. */
export function intField(s: string | undefined): number | null {
  if (s === undefined || !/^\d{1,20}$/.test(s)) return null;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : null;
}

/** The kernel's dev_t inside the block tracepoints (MINORBITS 20) as "major:minor". */
export function devName(dev: number): string {
  return `${Math.floor(dev / 2 ** 20)}:${dev % 2 ** 20}`;
}

/** The script's operation codes (in-flight map keys). */
export const OP_CODES: Record<number, BioOp> = {
  1: "read",
  2: "write",
  3: "flush",
  4: "discard",
  5: "other",
};

/** One device x operation x sync histogram, cumulative. */
export interface Histo {
  readonly device: string;
  readonly op: BioOp;
  readonly sync: boolean;
  readonly buckets: Map<number, number>;
  /** Microseconds. */
  sum: number;
}

/** Per cgroup figures of one tick (the script clears them after printing). */
export interface CgroupTick {
  readonly read_bytes: number;
  readonly write_bytes: number;
  readonly ios: number;
  readonly latency_us: number;
  /** Octave histogram: index i counts latencies in script buckets 4i .. 4i+3. */
  readonly octaves: Map<number, number>;
}

/** What one tick of the script says, in the agent's terms. */
export interface Tick {
  /** The script's clock (CLOCK_MONOTONIC, microseconds) when it printed. */
  readonly now_us: number;
  readonly histos: Map<string, Histo>;
  readonly cgroups: Map<number, CgroupTick>;
  /** Requests in flight: device, operation, issue (or insert) time in microseconds. */
  readonly inflight: Array<{ device: string; op: BioOp; since_us: number }>;
  readonly done: number;
  readonly unmatched: number;
  readonly flushSeq: number;
  /** Keys of the maps that did not parse (counted, skipped). */
  readonly badKeys: number;
}

/** Builds a Tick from the maps of one print round (name -> value), validating every key. */
export function buildTick(maps: ReadonlyMap<string, number | Map<string, number>>): Tick | null {
  const now = maps.get("now");
  if (typeof now !== "number") return null;
  let badKeys = 0;
  const keyed = (name: string): Map<string, number> => {
    const v = maps.get(name);
    return v instanceof Map ? v : new Map<string, number>();
  };
  const scalar = (name: string): number => {
    const v = maps.get(name);
    return typeof v === "number" ? v : 0;
  };
  const histos = new Map<string, Histo>();
  const histo = (device: string, rwbs: Rwbs): Histo => {
    const id = `${device} ${rwbs.op} ${rwbs.sync}`;
    let h = histos.get(id);
    if (!h) {
      h = { device, op: rwbs.op, sync: rwbs.sync, buckets: new Map(), sum: 0 };
      histos.set(id, h);
    }
    return h;
  };
  for (const [k, n] of keyed("h")) {
    const p = keyParts(k, 3);
    const dev = intField(p?.[0]);
    const rwbs = p ? parseRwbs(p[1] as string) : null;
    const i = intField(p?.[2]);
    if (dev === null || rwbs === null || i === null || i > BUCKET_OVER) {
      badKeys++;
      continue;
    }
    const h = histo(devName(dev), rwbs);
    h.buckets.set(i, (h.buckets.get(i) ?? 0) + n);
  }
  for (const [k, n] of keyed("sum")) {
    const p = keyParts(k, 2);
    const dev = intField(p?.[0]);
    const rwbs = p ? parseRwbs(p[1] as string) : null;
    if (dev === null || rwbs === null) {
      badKeys++;
      continue;
    }
    histo(devName(dev), rwbs).sum += n;
  }
  const cgroups = new Map<number, CgroupTick>();
  const cg = (id: number) => {
    let c = cgroups.get(id);
    if (!c) {
      c = { read_bytes: 0, write_bytes: 0, ios: 0, latency_us: 0, octaves: new Map() };
      cgroups.set(id, c);
    }
    return c as { -readonly [K in keyof CgroupTick]: CgroupTick[K] };
  };
  const perCgroup = (
    name: "ub" | "un" | "ul",
    add: (c: ReturnType<typeof cg>, r: Rwbs, n: number) => void,
  ) => {
    for (const [k, n] of keyed(name)) {
      const p = keyParts(k, 2);
      const id = intField(p?.[0]);
      const rwbs = p ? parseRwbs(p[1] as string) : null;
      if (id === null || rwbs === null) {
        badKeys++;
        continue;
      }
      add(cg(id), rwbs, n);
    }
  };
  perCgroup("ub", (c, r, n) => {
    if (r.op === "read") c.read_bytes += n;
    else if (r.op === "write") c.write_bytes += n;
  });
  perCgroup("un", (c, _r, n) => (c.ios += n));
  perCgroup("ul", (c, _r, n) => (c.latency_us += n));
  for (const [k, n] of keyed("uh")) {
    const p = keyParts(k, 2);
    const id = intField(p?.[0]);
    const o = intField(p?.[1]);
    if (id === null || o === null || o > BUCKET_OVER >> 2) {
      badKeys++;
      continue;
    }
    const c = cg(id);
    c.octaves.set(o, (c.octaves.get(o) ?? 0) + n);
  }
  const inflight: Tick["inflight"] = [];
  for (const [k, since] of keyed("start")) {
    const p = keyParts(k, 3);
    const dev = intField(p?.[0]);
    const op = OP_CODES[intField(p?.[2]) ?? 0];
    if (dev === null || intField(p?.[1]) === null || op === undefined) {
      badKeys++;
      continue;
    }
    inflight.push({ device: devName(dev), op, since_us: since });
  }
  return {
    now_us: now,
    histos,
    cgroups,
    inflight,
    done: scalar("done"),
    unmatched: scalar("unmatched"),
    flushSeq: scalar("seq"),
    badKeys,
  };
}

/** The oldest request in flight per device, oldest first. */
export function oldestInflight(
  t: Pick<Tick, "inflight" | "now_us">,
): Array<{ device: string; op: BioOp; age_seconds: number }> {
  const best = new Map<string, { op: BioOp; since_us: number }>();
  for (const r of t.inflight) {
    const b = best.get(r.device);
    if (!b || r.since_us < b.since_us) best.set(r.device, r);
  }
  return [...best]
    .map(([device, r]) => ({
      device,
      op: r.op,
      age_seconds: Math.max(0, t.now_us - r.since_us) / 1e6,
    }))
    .sort((a, b) => b.age_seconds - a.age_seconds || a.device.localeCompare(b.device));
}

/** Octave-histogram quantile in seconds (upper edge of the octave), null without samples. */
export function octaveQuantile(octaves: ReadonlyMap<number, number>, q: number): number | null {
  const fine = new Map<number, number>();
  // The last script bucket of each octave carries its upper edge.
  for (const [o, n] of octaves) fine.set(Math.min(BUCKET_OVER, 4 * o + 3), n);
  return quantile(fine, q);
}
