// Property-based fuzzing of the smartctl --json parser and what consumes its report (classify,
// verdict). Structure-aware inputs are the captured fixtures with fields replaced by values of
// the wrong type, deleted, or given huge "_s" twins. On failure fast-check prints the seed and
// the shrunk counterexample.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import fc from "fast-check";
import { classify, COLLECT_STATES } from "../collectors/smart/classify.js";
import { decodeExitStatus, nvmeCriticalBits, parseScan, parseSmart, type SmartReport } from "../collectors/smart/parse.js";
import { judge, predictiveCounters } from "../collectors/smart/verdict.js";
import { SMART_FIXTURES } from "./helpers/fake-smartctl.js";

const RUNS = 2500;

const FIXTURES: unknown[] = readdirSync(SMART_FIXTURES)
  .filter((f) => f.endsWith(".json"))
  .map((f) => JSON.parse(readFileSync(join(SMART_FIXTURES, f), "utf8")) as unknown);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every path (keys and indexes) to a value inside a JSON tree. */
function paths(v: unknown, prefix: Array<string | number> = [], out: Array<Array<string | number>> = []): Array<Array<string | number>> {
  if (prefix.length > 0) out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...prefix, i], out));
  else if (typeof v === "object" && v !== null) for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out);
  return out;
}

const hugeDigits = fc.integer({ min: 16, max: 400 }).map((n) => "9".repeat(n));
/** Values of every JSON type, including the awkward ones. */
const wrong: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(null, true, false, 0, -1, -0, 1e308, -1e308, 2 ** 53 + 2, 0.5, "", "0", "NaN", "Infinity", "-1", [], {}, [1, 2], { a: 1 }),
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
const edits = fc.array(fc.record({ at: fc.nat(), kind: fc.constantFrom<Edit["kind"]>("replace", "replace", "delete", "twin"), value: wrong }), { minLength: 1, maxLength: 6 });

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
    if (e.kind === "replace") container[key] = e.value;
    else if (e.kind === "delete") {
      if (Array.isArray(container)) container.splice(key as number, 1);
      else delete container[key];
    } else if (!Array.isArray(container)) container[`${key}_s`] = typeof e.value === "string" ? e.value : "9".repeat(20 + ((e.at % 5) * 80));
  }
  return doc;
}

const fixtureText = fc.tuple(fc.nat(FIXTURES.length - 1), edits, fc.constantFrom("", "smartctl 6.6 2017-11-05 r4594 [x86_64-linux] (local build)\n", "\n\n"), fc.boolean()).map(([i, es, prefix, pretty]) => {
  const doc = mutate(FIXTURES[i], es);
  return prefix + (pretty ? JSON.stringify(doc, null, 2) : JSON.stringify(doc));
});

const junk = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("utf8")),
  fc.jsonValue({ maxDepth: 4 }).map((j) => JSON.stringify(j)),
  fc.anything({ maxDepth: 3, withNullPrototype: true }).map((a) => { try { return JSON.stringify(a) ?? ""; } catch { return "{"; } }),
  // A fixture cut short anywhere (smartctl killed mid-write).
  fc.tuple(fc.nat(FIXTURES.length - 1), fc.nat()).map(([i, n]) => { const s = JSON.stringify(FIXTURES[i]); return s.slice(0, n % s.length); }),
);

const numOrNull = (v: unknown) => v === null || (typeof v === "number" && Number.isFinite(v));
const isStr = (v: unknown) => typeof v === "string";
const readable = (s: string) => s.length > 0 && s.length < 300;

function wellTyped(r: SmartReport): boolean {
  const id = r.identity;
  const checks = [
    r.version === null || (r.version.length === 2 && r.version.every((n) => typeof n === "number")),
    numOrNull(r.exitStatus),
    r.messages.every((m) => isStr(m.string) && ["information", "warning", "error"].includes(m.severity)),
    r.device === null || ([r.device.name, r.device.type, r.device.infoName].every(isStr) && [null, "ATA", "NVMe", "SCSI"].includes(r.device.protocol)),
    r.lowPowerMode === null || isStr(r.lowPowerMode),
    [id.model, id.family, id.serial, id.firmware].every((v) => v === null || isStr(v)),
    numOrNull(id.capacityBytes) && numOrNull(id.rotationRate),
    r.passed === null || typeof r.passed === "boolean",
    numOrNull(r.temperature.current) && numOrNull(r.temperature.limit) && numOrNull(r.powerOnHours),
    r.ata === null || (numOrNull(r.ata.errorLogCount) && numOrNull(r.ata.selfTestErrors) && r.ata.attributes.every((a) =>
      numOrNull(a.id) && a.id !== null && isStr(a.name) && numOrNull(a.value) && numOrNull(a.worst) && numOrNull(a.thresh) && ["", "now", "past"].includes(a.whenFailed) && typeof a.prefailure === "boolean" && numOrNull(a.raw) && isStr(a.rawString))),
    r.nvme === null || (Number.isFinite(r.nvme.criticalWarning) && [r.nvme.availableSpare, r.nvme.availableSpareThreshold, r.nvme.percentageUsed, r.nvme.mediaErrors, r.nvme.numErrLogEntries].every(numOrNull)),
    r.scsi === null || [r.scsi.grownDefects, r.scsi.uncorrectedRead, r.scsi.uncorrectedWrite, r.scsi.uncorrectedVerify].every(numOrNull),
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
  if (!v.reasons.every((x) => ["fail", "warn", "info"].includes(x.level) && readable(x.code) && readable(x.message.slice(0, 299)))) return false;
  if ((v.verdict === "pass" || v.verdict === "unknown") && v.reasons.some((x) => x.level !== "info")) return false;
  return Object.values(predictiveCounters(r)).every((n) => typeof n === "number" && Number.isFinite(n));
}

const exitCode = fc.oneof(fc.constant(null), fc.nat(255), fc.integer());

test("fuzz: arbitrary text and arbitrary JSON never throw; the result is a report or { error: readable reason }", (t) => {
  fc.assert(fc.property(junk, exitCode, (text, exit) => pipeline(text, exit)), { numRuns: RUNS });
  t.pass();
});

test("fuzz: captured smartctl outputs with fields of the wrong type, deleted, or with huge _s twins: report numbers stay finite, classify/judge/counters never throw", (t) => {
  fc.assert(fc.property(fixtureText, exitCode, (text, exit) => pipeline(text, exit)), { numRuns: RUNS });
  t.pass();
});

test("fuzz: a report's numbers are exactly the fixture's when the fixture is untouched but reformatted or prefixed", (t) => {
  fc.assert(
    fc.property(fc.nat(FIXTURES.length - 1), fc.constantFrom("", "warning line\n"), fc.nat(4), (i, prefix, indent) => {
      const a = parseSmart(JSON.stringify(FIXTURES[i]));
      const b = parseSmart(prefix + JSON.stringify(FIXTURES[i], null, indent));
      return JSON.stringify(a) === JSON.stringify(b);
    }),
    { numRuns: 200 },
  );
  t.pass();
});

test("fuzz: parseScan never throws; entries have a non-empty name", (t) => {
  const scanLike = fc.array(fc.record({ name: wrong, type: wrong, protocol: wrong, open_error: wrong }, { requiredKeys: [] }), { maxLength: 5 }).map((devices) => JSON.stringify({ devices }));
  fc.assert(
    fc.property(fc.oneof(junk, scanLike), (text) => {
      const r = parseScan(text);
      if ("error" in r) return readable(r.error);
      return r.devices.every((d) => isStr(d.name) && d.name !== "" && isStr(d.type) && (d.protocol === null || isStr(d.protocol)) && (d.openError === null || isStr(d.openError)));
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
      return bits.every((b) => b.bit >= 0 && b.bit < 8 && readable(b.meaning)) && names.every(readable);
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

// Regression found by the properties above (shrunk: a fixture whose user_capacity got a 309-digit bytes_s twin).
test("regression: a KEY_s twin too large for a double falls back to KEY instead of giving Infinity", (t) => {
  const r = parseSmart(JSON.stringify({ smartctl: { version: [7, 3], exit_status: 0 }, user_capacity: { bytes: 2000398934016, bytes_s: "9".repeat(309) }, power_on_time: { hours_s: "9".repeat(400) } }));
  t.false("error" in r);
  if ("error" in r) return;
  t.is(r.identity.capacityBytes, 2000398934016);
  t.is(r.powerOnHours, null);
});
