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
 * produce is "other" (ignored) or "bad" (counted). Values must be safe integers (the in-flight
 * sums may read -1 for a moment: their per-CPU parts are read one after the other).
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

const isCount = (n: number) => Number.isSafeInteger(n);

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

export interface InflightSlot {
  readonly device: string;
  readonly op: BioOp;
  readonly slot: number;
  /** Requests started in it and not completed (never below 0). */
  readonly count: number;
  /** The latest start time in it, in slots since boot (null: not printed yet). */
  readonly startSlot: number | null;
}

/** What one tick of the script says, in the agent's terms. */
export interface Tick {
  /** The script's clock (CLOCK_MONOTONIC, microseconds) when it printed. */
  readonly now_us: number;
  readonly histos: Map<string, Histo>;
  readonly cgroups: Map<number, CgroupTick>;
  /** Requests in flight per device, operation and start slot (script.ts SLOT_US wide). */
  readonly inflight: InflightSlot[];
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
    if (dev === null || rwbs === null || i === null || i > BUCKET_OVER || n < 0) {
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
    if (dev === null || rwbs === null || n < 0) {
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
      if (id === null || rwbs === null || n < 0) {
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
    if (id === null || o === null || o > BUCKET_OVER >> 2 || n < 0) {
      badKeys++;
      continue;
    }
    const c = cg(id);
    c.octaves.set(o, (c.octaves.get(o) ?? 0) + n);
  }
  const slotOf = new Map<string, number>();
  for (const [k, n] of keyed("slot")) {
    const p = keyParts(k, 3);
    if (
      p === null ||
      intField(p[0]) === null ||
      intField(p[1]) === null ||
      intField(p[2]) === null ||
      n < 0
    ) {
      badKeys++;
      continue;
    }
    slotOf.set(k, n);
  }
  const inflight: InflightSlot[] = [];
  for (const [k, n] of keyed("infl")) {
    const p = keyParts(k, 3);
    const dev = intField(p?.[0]);
    const op = OP_CODES[intField(p?.[1]) ?? 0];
    const slot = intField(p?.[2]);
    if (dev === null || op === undefined || slot === null) {
      badKeys++;
      continue;
    }
    if (n > 0)
      inflight.push({ device: devName(dev), op, slot, count: n, startSlot: slotOf.get(k) ?? null });
  }
  return {
    now_us: now,
    histos,
    cgroups,
    inflight,
    done: Math.max(0, scalar("done")),
    unmatched: scalar("unmatched"),
    flushSeq: scalar("seq"),
    badKeys,
  };
}

/**
 * Per in-flight slot ("device op slot"): when its requests started, carried from round to round
 * (a slot holding requests at every round keeps the start it had when it began to: its @slot time
 * moves on when the ring comes round to it while an old request still sits in it), and how many
 * of its count are known leaks. bpftrace 0.17's sums are not atomic across CPUs: under load an
 * update is now and then lost (tens in a million), and a lost -1 would hold a slot forever. The
 * kernel's own count (/sys/block/<dev>/inflight) settles it: whatever a device's slots hold
 * while the kernel says nothing is in flight there is a leak, subtracted from then on.
 */
export type SlotState = ReadonlyMap<string, { readonly start: number; readonly leaked: number }>;

/**
 * The oldest request in flight per device, oldest first, and the state to carry to the next
 * round. `idle`: devices ("major:minor") the kernel says have nothing in flight. The age is a
 * lower bound: from the end of the slot the request started in.
 */
export function oldestInflight(
  t: Pick<Tick, "inflight" | "now_us">,
  before: SlotState,
  slotUs: number,
  idle: ReadonlySet<string> = new Set(),
): {
  ages: Array<{ device: string; op: BioOp; age_seconds: number }>;
  state: Map<string, { start: number; leaked: number }>;
  leaked: number;
} {
  const state = new Map<string, { start: number; leaked: number }>();
  const best = new Map<string, { op: BioOp; start: number }>();
  let leaked = 0;
  for (const r of t.inflight) {
    const id = `${r.device} ${r.op} ${r.slot}`;
    const prev = before.get(id);
    // Leaks: all of it on an idle device, else what was known (never more than the count).
    const known = idle.has(r.device) ? r.count : Math.min(prev?.leaked ?? 0, r.count);
    leaked += known;
    if (r.count - known <= 0 || r.startSlot === null) {
      state.set(id, { start: Infinity, leaked: known });
      continue;
    }
    const start = Math.min(prev?.start ?? Infinity, r.startSlot);
    state.set(id, { start, leaked: known });
    const b = best.get(r.device);
    if (!b || start < b.start) best.set(r.device, { op: r.op, start });
  }
  const ages = [...best]
    .map(([device, r]) => ({
      device,
      op: r.op,
      age_seconds: Math.max(0, t.now_us - (r.start + 1) * slotUs) / 1e6,
    }))
    .sort((a, b) => b.age_seconds - a.age_seconds || a.device.localeCompare(b.device));
  return { ages, state, leaked };
}

/** Octave-histogram quantile in seconds (upper edge of the octave), null without samples. */
export function octaveQuantile(octaves: ReadonlyMap<number, number>, q: number): number | null {
  const fine = new Map<number, number>();
  // The last script bucket of each octave carries its upper edge.
  for (const [o, n] of octaves) fine.set(Math.min(BUCKET_OVER, 4 * o + 3), n);
  return quantile(fine, q);
}
