// Property-based fuzzing of the smartctl --json parser and what consumes its report (classify,
// verdict). Structure-aware inputs are the captured fixtures with fields replaced by values of
// the wrong type, deleted, or given huge "_s" twins. On failure fast-check prints the seed and
// the shrunk counterexample.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import fc from "fast-check";
import { classify, COLLECT_STATES } from "../collectors/smart/classify.js";
import {
  decodeExitStatus,
  nvmeCriticalBits,
  parseScan,
  parseSmart,
  type SmartReport,
} from "../collectors/smart/parse.js";
import {
  advanceTrend,
  readTrendState,
  RISE_WINDOW_MS,
  type TrendState,
  trendView,
} from "../collectors/smart/trend.js";
import { judge, predictiveCounters, span } from "../collectors/smart/verdict.js";
import { SMART_FIXTURES } from "./helpers/fake-smartctl.js";

/** FUZZ_RUNS=100000 for a long run. */
const RUNS = Number(process.env["FUZZ_RUNS"] ?? 2500);

const FIXTURES: unknown[] = readdirSync(SMART_FIXTURES)
  .filter((f) => f.endsWith(".json"))
  .map((f) => JSON.parse(readFileSync(join(SMART_FIXTURES, f), "utf8")) as unknown);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every path (keys and indexes) to a value inside a JSON tree. */
function paths(
  v: unknown,
  prefix: Array<string | number> = [],
  out: Array<Array<string | number>> = [],
): Array<Array<string | number>> {
  if (prefix.length > 0) out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...prefix, i], out));
  else if (typeof v === "object" && v !== null)
    for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out);
  return out;
}

const hugeDigits = fc.integer({ min: 16, max: 400 }).map((n) => "9".repeat(n));
/** Values of every JSON type, including the awkward ones. */
const wrong: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(
    null,
    true,
    false,
    0,
    -1,
    -0,
    1e308,
    -1e308,
    2 ** 53 + 2,
    0.5,
    "",
    "0",
    "NaN",
    "Infinity",
    "-1",
    [],
    {},
    [1, 2],
    { a: 1 },
  ),
  fc.integer().map((n): Json => n),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n): Json => n),
  hugeDigits.map((s): Json => s),
  fc.string({ maxLength: 20 }).map((s): Json => s),
  fc.jsonValue({ maxDepth: 2 }).map((j) => j as Json),
);

interface Edit {
  readonly at: number;
  readonly kind: "replace" | "delete" | "twin";
  readonly value: Json;
}
const edits = fc.array(
  fc.record({
    at: fc.nat(),
    kind: fc.constantFrom<Edit["kind"]>("replace", "replace", "delete", "twin"),
    value: wrong,
  }),
  { minLength: 1, maxLength: 6 },
);

function mutate(base: unknown, es: readonly Edit[]): unknown {
  const doc = structuredClone(base) as Record<string, unknown>;
  for (const e of es) {
    const all = paths(doc);
    if (all.length === 0) break;
    const p = all[e.at % all.length] as Array<string | number>;
    let parent: unknown = doc;
    for (const k of p.slice(0, -1)) parent = (parent as Record<string | number, unknown>)[k];
    const key = p.at(-1) as string | number;
    const container = parent as Record<string | number, unknown>;
    // A copy: one generated value may be shared by two edits, and the second could put it inside itself.
    if (e.kind === "replace") container[key] = structuredClone(e.value);
    else if (e.kind === "delete") {
      if (Array.isArray(container)) container.splice(key as number, 1);
      else delete container[key];
    } else if (!Array.isArray(container))
      container[`${key}_s`] =
        typeof e.value === "string" ? e.value : "9".repeat(20 + (e.at % 5) * 80);
  }
  return doc;
}

const fixtureText = fc
  .tuple(
    fc.nat(FIXTURES.length - 1),
    edits,
    fc.constantFrom("", "smartctl 6.6 2017-11-05 r4594 [x86_64-linux] (local build)\n", "\n\n"),
    fc.boolean(),
  )
  .map(([i, es, prefix, pretty]) => {
    const doc = mutate(FIXTURES[i], es);
    return prefix + (pretty ? JSON.stringify(doc, null, 2) : JSON.stringify(doc));
  });

const junk = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("utf8")),
  fc.jsonValue({ maxDepth: 4 }).map((j) => JSON.stringify(j)),
  fc.anything({ maxDepth: 3, withNullPrototype: true }).map((a) => {
    try {
      return JSON.stringify(a) ?? "";
    } catch {
      return "{";
    }
  }),
  // A fixture cut short anywhere (smartctl killed mid-write).
  fc.tuple(fc.nat(FIXTURES.length - 1), fc.nat()).map(([i, n]) => {
    const s = JSON.stringify(FIXTURES[i]);
    return s.slice(0, n % s.length);
  }),
);

const numOrNull = (v: unknown) => v === null || (typeof v === "number" && Number.isFinite(v));
const isStr = (v: unknown) => typeof v === "string";
const readable = (s: string) => s.length > 0 && s.length < 300;

function wellTyped(r: SmartReport): boolean {
  const id = r.identity;
  const checks = [
    r.version === null || (r.version.length === 2 && r.version.every((n) => typeof n === "number")),
    numOrNull(r.exitStatus),
    r.messages.every(
      (m) => isStr(m.string) && ["information", "warning", "error"].includes(m.severity),
    ),
    r.device === null ||
      ([r.device.name, r.device.type, r.device.infoName].every(isStr) &&
        [null, "ATA", "NVMe", "SCSI"].includes(r.device.protocol)),
    r.lowPowerMode === null || isStr(r.lowPowerMode),
    [id.model, id.family, id.serial, id.firmware].every((v) => v === null || isStr(v)),
    numOrNull(id.capacityBytes) && numOrNull(id.rotationRate),
    r.passed === null || typeof r.passed === "boolean",
    numOrNull(r.temperature.current) && numOrNull(r.temperature.limit) && numOrNull(r.powerOnHours),
    r.ata === null ||
      (numOrNull(r.ata.errorLogCount) &&
        numOrNull(r.ata.selfTestErrors) &&
        r.ata.attributes.every(
          (a) =>
            numOrNull(a.id) &&
            a.id !== null &&
            isStr(a.name) &&
            numOrNull(a.value) &&
            numOrNull(a.worst) &&
            numOrNull(a.thresh) &&
            ["", "now", "past"].includes(a.whenFailed) &&
            typeof a.prefailure === "boolean" &&
            numOrNull(a.raw) &&
            isStr(a.rawString),
        )),
    r.nvme === null ||
      (Number.isFinite(r.nvme.criticalWarning) &&
        [
          r.nvme.availableSpare,
          r.nvme.availableSpareThreshold,
          r.nvme.percentageUsed,
          r.nvme.mediaErrors,
          r.nvme.numErrLogEntries,
        ].every(numOrNull)),
    r.scsi === null ||
      [
        r.scsi.grownDefects,
        r.scsi.uncorrectedRead,
        r.scsi.uncorrectedWrite,
        r.scsi.uncorrectedVerify,
      ].every(numOrNull),
  ];
  return checks.every(Boolean);
}

/** parse -> classify -> judge -> counters: no throw anywhere, every output well-typed. */
function pipeline(text: string, exit: number | null): boolean {
  const r = parseSmart(text);
  if ("error" in r) return isStr(r.error) && readable(r.error);
  if (!wellTyped(r)) return false;
  const c = classify(r, exit);
  if (!COLLECT_STATES.includes(c.state) || !(c.detail === null || isStr(c.detail))) return false;
  const v = judge(r);
  if (!["pass", "warn", "fail", "unknown"].includes(v.verdict)) return false;
  if (
    !v.reasons.every(
      (x) =>
        ["fail", "warn", "info"].includes(x.level) &&
        readable(x.code) &&
        readable(x.message.slice(0, 299)),
    )
  )
    return false;
  if (
    (v.verdict === "pass" || v.verdict === "unknown") &&
    v.reasons.some((x) => x.level !== "info")
  )
    return false;
  return Object.values(predictiveCounters(r)).every(
    (n) => typeof n === "number" && Number.isFinite(n),
  );
}

const exitCode = fc.oneof(fc.constant(null), fc.nat(255), fc.integer());

test(
  "fuzz: arbitrary text and arbitrary JSON never throw; the result is a report or { error: " +
    "readable reason }",
  (t) => {
    fc.assert(
      fc.property(junk, exitCode, (text, exit) => pipeline(text, exit)),
      { numRuns: RUNS },
    );
    t.pass();
  },
);

test(
  "fuzz: captured smartctl outputs with fields of the wrong type, deleted, or with huge _s twins: " +
    "report numbers stay finite, classify/judge/counters never throw",
  (t) => {
    fc.assert(
      fc.property(fixtureText, exitCode, (text, exit) => pipeline(text, exit)),
      { numRuns: RUNS },
    );
    t.pass();
  },
);

test(
  "fuzz: a report's numbers are exactly the fixture's when the fixture is untouched but reformatted or " +
    "prefixed",
  (t) => {
    fc.assert(
      fc.property(
        fc.nat(FIXTURES.length - 1),
        fc.constantFrom("", "warning line\n"),
        fc.nat(4),
        (i, prefix, indent) => {
          const a = parseSmart(JSON.stringify(FIXTURES[i]));
          const b = parseSmart(prefix + JSON.stringify(FIXTURES[i], null, indent));
          return JSON.stringify(a) === JSON.stringify(b);
        },
      ),
      { numRuns: 200 },
    );
    t.pass();
  },
);

test("fuzz: parseScan never throws; entries have a non-empty name", (t) => {
  const scanLike = fc
    .array(
      fc.record(
        { name: wrong, type: wrong, protocol: wrong, open_error: wrong },
        { requiredKeys: [] },
      ),
      { maxLength: 5 },
    )
    .map((devices) => JSON.stringify({ devices }));
  fc.assert(
    fc.property(fc.oneof(junk, scanLike), (text) => {
      const r = parseScan(text);
      if ("error" in r) return readable(r.error);
      return r.devices.every(
        (d) =>
          isStr(d.name) &&
          d.name !== "" &&
          isStr(d.type) &&
          (d.protocol === null || isStr(d.protocol)) &&
          (d.openError === null || isStr(d.openError)),
      );
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

test("fuzz: decodeExitStatus and nvmeCriticalBits take any number", (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.integer(), fc.double()), (n) => {
      const bits = decodeExitStatus(n);
      const names = nvmeCriticalBits(n);
      return (
        bits.every((b) => b.bit >= 0 && b.bit < 8 && readable(b.meaning)) && names.every(readable)
      );
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

// Regression found by the properties above (shrunk: a fixture whose user_capacity got a 309-digit bytes_s twin).
test("regression: a KEY_s twin too large for a double falls back to KEY instead of giving Infinity", (t) => {
  const r = parseSmart(
    JSON.stringify({
      smartctl: { version: [7, 3], exit_status: 0 },
      user_capacity: { bytes: 2000398934016, bytes_s: "9".repeat(309) },
      power_on_time: { hours_s: "9".repeat(400) },
    }),
  );
  t.false("error" in r);
  if ("error" in r) return;
  t.is(r.identity.capacityBytes, 2000398934016);
  t.is(r.powerOnHours, null);
});

// ---- Persisted trend state (history's state table) and the verdict over arbitrary trends ----

/** Counter names, including the ones an object inherits. */
const counterName = fc.oneof(
  fc.constantFrom(
    "udma_crc_errors",
    "command_timeouts",
    "reallocated_sectors",
    "media_errors",
    "error_log_entries",
    "percentage_used",
    "__proto__",
    "constructor",
    "toString",
    "hasOwnProperty",
    "valueOf",
    "",
  ),
  fc.string({ maxLength: 12 }),
);
const anyNum: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(
    0,
    -1,
    1,
    1e308,
    -1e308,
    2 ** 53 + 2,
    0.5,
    1_700_000_000_000,
    9e15,
    -9e15,
    "5",
    null,
    true,
    [],
    {},
  ),
  fc.integer().map((n): Json => n),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n): Json => n),
);
const mapOf = (v: fc.Arbitrary<Json>): fc.Arbitrary<Json> =>
  fc.oneof(
    fc.dictionary(counterName, v, { maxKeys: 5 }).map((d): Json => d as Json),
    wrong,
  );
const riseLike: fc.Arbitrary<Json> = fc.oneof(
  fc.record({ at: anyNum, delta: anyNum }, { requiredKeys: [] }).map((r): Json => r as Json),
  wrong,
);
/** Shaped like a stored state, with any field of any type. */
const stateLike = fc
  .record(
    { at: anyNum, counters: mapOf(anyNum), first: mapOf(anyNum), rises: mapOf(riseLike) },
    { requiredKeys: [] },
  )
  .map((o) => JSON.stringify(o));
/** A real state written by advanceTrend, then damaged like the smartctl fixtures above. */
const realState = fc
  .tuple(
    fc.dictionary(
      fc.constantFrom("udma_crc_errors", "command_timeouts", "media_errors"),
      fc.nat(1000),
      { maxKeys: 3 },
    ),
    fc.nat(1000),
    edits,
  )
  .map(([c, grow, es]) => {
    const t0 = 1_700_000_000_000;
    const s0 = advanceTrend(null, c, t0).state;
    const s1 = advanceTrend(
      s0,
      Object.fromEntries(Object.entries(c).map(([k, v]) => [k, v + grow])),
      t0 + 60_000,
    ).state;
    return JSON.stringify(mutate(JSON.parse(JSON.stringify(s1)), es));
  });
const storedText = fc.oneof(
  junk,
  stateLike,
  realState,
  fc.constantFrom(
    "",
    "null",
    "[]",
    "{}",
    '{"at":1}',
    '{"at":1,"counters":[]}',
    '{"at":1,"counters":{"__proto__":{"udma_crc_errors":1}}}',
    '{"at":1,"counters":{"udma_crc_errors":1},"rises":{"__proto__":{"at":1,"delta":1,"udma_crc_errors' +
      '":{"at":1,"delta":5}}}}',
  ),
);
const nowArb = fc.oneof(
  fc.integer({ min: 0, max: 4_000_000_000_000 }),
  fc.constantFrom(0, 1_700_000_000_000),
);
const windowArb = fc.oneof(
  fc.constant(RISE_WINDOW_MS),
  fc.integer({ min: 1000, max: 400 * 86_400_000 }),
);

const finiteNum = (n: unknown) => typeof n === "number" && Number.isFinite(n);
function wellFormedState(s: TrendState): boolean {
  const own = <T>(m: Readonly<Record<string, T>> | undefined): Array<[string, T]> =>
    Object.entries(m ?? {});
  return (
    finiteNum(s.at) &&
    own(s.counters).every(([, v]) => finiteNum(v) && v >= 0) &&
    own(s.first).every(([, v]) => finiteNum(v)) &&
    own(s.rises).every(([, r]) => finiteNum(r.at) && finiteNum(r.delta) && r.delta > 0) &&
    Object.getPrototypeOf(s.counters) === Object.prototype &&
    Object.getPrototypeOf(s.rises ?? {}) === Object.prototype
  );
}

test(
  "fuzz: the stored trend state reader never throws; what it returns is well-formed or null, " +
    "and null is a fresh baseline",
  (t) => {
    fc.assert(
      fc.property(
        storedText,
        fc.dictionary(counterName, fc.nat(10_000), { maxKeys: 4 }),
        nowArb,
        windowArb,
        (text, counters, now, win) => {
          const st = readTrendState(text);
          if (st !== null && !wellFormedState(st)) return false;
          const { state, increases } = advanceTrend(st, counters, now);
          if (!wellFormedState(state)) return false;
          if (st === null) {
            // No history: every counter starts its baseline now; nothing rose, nothing is rising.
            if (increases.length > 0 || Object.keys(state.rises ?? {}).length > 0) return false;
            if (!Object.values(state.first ?? {}).every((v) => v === now)) return false;
          }
          for (const i of increases)
            if (!(i.current > i.previous && finiteNum(i.sinceMs))) return false;
          const view = trendView(state, now, win);
          for (const [k, e] of Object.entries(view)) {
            if (!Object.hasOwn(state.counters, k)) return false;
            if (
              typeof e.rising !== "boolean" ||
              !finiteNum(e.delta) ||
              e.delta < 0 ||
              !finiteNum(e.watchedMs) ||
              e.watchedMs < 0
            )
              return false;
            // Rising only with a rise of at least something, and a rise just seen is rising.
            if (e.rising && e.delta <= 0) return false;
          }
          for (const i of increases)
            if (!view[i.name]?.rising || view[i.name]?.delta !== i.current - i.previous)
              return false;
          // The state written back reads back the same.
          return JSON.stringify(readTrendState(JSON.stringify(state))) === JSON.stringify(state);
        },
      ),
      { numRuns: RUNS },
    );
    t.pass();
  },
);

test(
  "regression: inherited names in a stored state are not counters or rises (a '__proto__' entry cannot " +
    "plant a phantom rise)",
  (t) => {
    const st = readTrendState(
      '{"at":1000,"counters":{"udma_crc_errors":1,"constructor":2},"first":{},"rises":{"__proto__":{"at' +
        '":1000,"delta":1,"udma_crc_errors":{"at":1000,"delta":5}}}}',
    );
    t.not(st, null);
    const v = trendView(st, 2000);
    t.false(v["udma_crc_errors"]?.rising);
    t.is(v["udma_crc_errors"]?.delta, 0);
    t.deepEqual(Object.keys(v).sort(), ["constructor", "udma_crc_errors"]);
    t.is(
      v["constructor"]?.watchedMs,
      1000,
      "first of 'constructor' is the state's time, not Object.prototype.constructor",
    );
    // A rise stamped far in the future (bad state or a clock set back by days) is not rising.
    t.false(
      trendView(
        readTrendState(
          '{"at":1000,"counters":{"udma_crc_errors":3},"rises":{"udma_crc_errors":{"at":9e15,"delta":2}}}',
        ),
        2000,
      )["udma_crc_errors"]?.rising,
    );
    // Negative or zero rises and negative counters are dropped, not believed.
    const bad = readTrendState(
      '{"at":1000,"counters":{"a":-1,"b":2},"rises":{"b":{"at":1000,"delta":-3}}}',
    );
    t.deepEqual(bad?.counters, { b: 2 });
    t.deepEqual(bad?.rises, {});
  },
);

const trendEntry = fc.record(
  {
    rising: fc.oneof(fc.boolean(), wrong),
    delta: fc.oneof(anyNum, fc.constantFrom(NaN, Infinity, -Infinity) as fc.Arbitrary<Json>),
    watchedMs: fc.oneof(anyNum, fc.constantFrom(NaN, Infinity, -Infinity) as fc.Arbitrary<Json>),
  },
  { requiredKeys: [] },
);
const trendsArb = fc.dictionary(counterName, fc.oneof(trendEntry, wrong as fc.Arbitrary<unknown>), {
  maxKeys: 8,
});
const REPORTS: SmartReport[] = FIXTURES.flatMap((f) => {
  const r = parseSmart(JSON.stringify(f));
  return "error" in r ? [] : [r];
});

test(
  "fuzz: the verdict over arbitrary trend inputs and windows is one of the known values, " +
    "and no reason says NaN, Infinity or undefined",
  (t) => {
    const windowAny = fc.oneof(
      fc.constant(undefined),
      fc.double(),
      fc.integer(),
      fc.constantFrom(NaN, Infinity, -1, 0),
    );
    fc.assert(
      fc.property(fc.nat(REPORTS.length - 1), trendsArb, windowAny, (i, trends, win) => {
        const r = REPORTS[i] as SmartReport;
        const v = judge(r, trends as never, win === undefined ? {} : { growthWindowMs: win });
        if (!["pass", "warn", "fail", "unknown"].includes(v.verdict)) return false;
        if (
          !v.reasons.every(
            (x) =>
              ["fail", "warn", "info"].includes(x.level) &&
              readable(x.code) &&
              !/NaN|Infinity|undefined|\[object/.test(x.message),
          )
        )
          return false;
        // A rising reason always names a real rise.
        if (
          v.reasons.some(
            (x) =>
              /rose by (\d+(\.\d+)?)/.test(x.message) &&
              !(Number(/rose by ([\d.e+-]+)/.exec(x.message)?.[1]) > 0),
          )
        )
          return false;
        // Trends never make a drive worse than "warn", nor better than the trend-free verdict's fails.
        const base = judge(r);
        if (base.verdict === "fail" && v.verdict !== "fail") return false;
        return !(v.verdict === "fail" && base.verdict !== "fail");
      }),
      { numRuns: RUNS },
    );
    t.pass();
  },
);

test("fuzz: stored text -> trend -> verdict, end to end, never throws and never says NaN", (t) => {
  fc.assert(
    fc.property(fc.nat(REPORTS.length - 1), storedText, nowArb, windowArb, (i, text, now, win) => {
      const r = REPORTS[i] as SmartReport;
      const { state } = advanceTrend(readTrendState(text), predictiveCounters(r), now);
      const v = judge(r, trendView(state, now, win), { growthWindowMs: win });
      return (
        ["pass", "warn", "fail", "unknown"].includes(v.verdict) &&
        v.reasons.every((x) => !/NaN|Infinity|undefined/.test(x.message))
      );
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

test("span: any number reads as a duration", (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.double(), fc.integer()), (n) => /^\d+ (s|min|h|d)$/.test(span(n))),
    { numRuns: RUNS },
  );
  t.is(span(7 * 86_400_000), "7 d");
  t.is(span(12_000), "12 s");
  t.is(span(NaN), "0 s");
});

// Regressions found by the properties above (shrunk counterexamples).
test(
  "regression: a trend that says rising with no delta is no rise (was 'rose by 0'); " +
    "a huge span has no exponent (was '1e+24 d')",
  (t) => {
    const crc = REPORTS.find((r) => r.ata?.attributes.some((a) => a.id === 199 && a.raw > 0));
    if (!crc) return t.fail("no fixture with a CRC count");
    const m =
      judge(crc, { udma_crc_errors: { rising: true } } as never).reasons.find(
        (x) => x.code === "attribute_199",
      )?.message ?? "";
    t.notRegex(m, /rose by/);
    t.regex(m, /static rule/);
    t.regex(span(8.64e28), /^\d{21} d$/);
  },
);
