// Property-based fuzzing of the /proc/diskstats parser (fast-check). fast-check picks a seed per
// run and prints it with the shrunk counterexample on failure; replay with { seed, path }.
import test from "ava";
import fc from "fast-check";
import { type DiskCounters, parseDiskstats, parseLine } from "../collectors/diskstats/parse.js";

const RUNS = 3000;

/** Text that is not diskstats: any UTF-16, raw bytes decoded two ways, whitespace and digit soup. */
const junk = fc.oneof(
  fc.string({ unit: "binary", maxLength: 400 }),
  fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b).toString("utf8")),
  fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b).toString("latin1")),
  fc
    .array(
      fc.constantFrom(" ", "\t", "\n", "\r", "0", "1", "9", "-", ".", "sda", "e", "NaN", "\u00a0"),
      { maxLength: 80 },
    )
    .map((a) => a.join("")),
  fc.string({ unit: "grapheme", minLength: 1000, maxLength: 1100 }),
);

// Names as the kernel prints them, "/" included (cciss/c0d0): the record holds sysfs's "!".
const deviceName = fc.stringMatching(/^[\w.:!@+-]{1,60}(?:\/[\w.:!@+-]{1,60})?$/);
const counter = fc.oneof(fc.nat(1000), fc.nat(), fc.maxSafeNat());
const sep = fc
  .array(fc.constantFrom(" ", "\t"), { minLength: 1, maxLength: 3 })
  .map((a) => a.join(""));

interface Built {
  readonly line: string;
  readonly device: string;
  readonly nums: number[];
}

/** A line the kernel could print: 14, 18 or 20 tokens, any whitespace between them. */
const validLine: fc.Arbitrary<Built> = fc
  .tuple(
    fc.constantFrom(11, 15, 17),
    deviceName,
    fc.array(counter, { minLength: 19, maxLength: 19 }),
    fc.array(sep, { minLength: 20, maxLength: 20 }),
    fc.constantFrom("", " ", "   "),
  )
  .map(([fields, device, all, seps, lead]) => {
    const nums = all.slice(0, fields + 2);
    const toks = [String(nums[0]), String(nums[1]), device, ...nums.slice(2).map(String)];
    const line = lead + toks.map((tk, i) => (i === 0 ? tk : `${seps[i] ?? " "}${tk}`)).join("");
    return { line, device, nums };
  });

function expectCounters(d: DiskCounters, b: Built): boolean {
  const n = b.nums;
  const got = [
    d.major,
    d.minor,
    d.reads,
    d.readsMerged,
    d.sectorsRead,
    d.readMs,
    d.writes,
    d.writesMerged,
    d.sectorsWritten,
    d.writeMs,
    d.inFlight,
    d.ioMs,
    d.weightedMs,
  ];
  if (d.device !== b.device.replace(/\//g, "!") || d.fields !== n.length - 2) return false;
  if (got.some((v, i) => v !== n[i])) return false;
  if (n.length >= 17) {
    if (
      !d.discard ||
      d.discard.completed !== n[13] ||
      d.discard.merged !== n[14] ||
      d.discard.sectors !== n[15] ||
      d.discard.ms !== n[16]
    )
      return false;
  } else if (d.discard !== undefined) return false;
  if (n.length === 19) {
    if (!d.flush || d.flush.completed !== n[17] || d.flush.ms !== n[18]) return false;
  } else if (d.flush !== undefined) return false;
  return true;
}

function wellTyped(d: DiskCounters): boolean {
  const all = [
    d.major,
    d.minor,
    d.reads,
    d.readsMerged,
    d.sectorsRead,
    d.readMs,
    d.writes,
    d.writesMerged,
    d.sectorsWritten,
    d.writeMs,
    d.inFlight,
    d.ioMs,
    d.weightedMs,
  ];
  if (d.discard) all.push(d.discard.completed, d.discard.merged, d.discard.sectors, d.discard.ms);
  if (d.flush) all.push(d.flush.completed, d.flush.ms);
  return (
    all.every((v) => Number.isSafeInteger(v) && v >= 0) &&
    [11, 15, 17].includes(d.fields) &&
    /^[\w.:!@+-]{1,128}$/.test(d.device)
  );
}

const readable = (s: string) => s.length > 0 && s.length < 300 && !s.includes("\n");

test("fuzz: arbitrary text never throws; records are well-typed, every problem is 'line N: reason'", (t) => {
  fc.assert(
    fc.property(
      fc
        .array(
          fc.oneof(
            junk,
            validLine.map((b) => b.line),
          ),
          { maxLength: 8 },
        )
        .map((ls) => ls.join("\n")),
      (text) => {
        const r = parseDiskstats(text);
        const nonEmpty = text.split("\n").filter((l) => l.trim() !== "").length;
        if (r.disks.length + r.problems.length > nonEmpty) return false;
        return (
          r.disks.every(wellTyped) && r.problems.every((p) => /^line \d+: /.test(p) && readable(p))
        );
      },
    ),
    { numRuns: RUNS },
  );
  t.pass();
});

test("fuzz: a valid line parses to exactly the counters it was built from", (t) => {
  fc.assert(
    fc.property(validLine, (b) => {
      const d = parseLine(b.line);
      return typeof d === "object" && d !== null && expectCounters(d, b);
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

/** Tokens that are never a valid counter. */
const badCounter = fc.oneof(
  fc.constantFrom(
    "-1",
    "-0",
    "NaN",
    "Infinity",
    "1e3",
    "0x10",
    "1.5",
    "+1",
    "１２",
    "\u0661",
    "99999999999999999999",
    "9007199254740993",
    "123456789012345678901",
  ),
  fc.integer({ min: -(2 ** 53), max: -1 }).map(String),
  fc.bigInt({ min: 2n ** 53n + 1n, max: 10n ** 40n }).map(String),
  fc
    .string({ unit: "grapheme", minLength: 1, maxLength: 10 })
    .filter((s) => !/^\d+$/.test(s) && !/\s/.test(s)),
);

test(
  "fuzz: a valid line with one field broken (bad number, wrong count, bad device, " +
    "too long) is a reason, never a record",
  (t) => {
    const mutated = fc
      .tuple(
        validLine,
        fc.nat(),
        fc.constantFrom("number", "drop", "extra", "device", "long"),
        badCounter,
      )
      .map(([b, i, kind, bad]) => {
        const toks = b.line.trim().split(/\s+/);
        const k = i % toks.length;
        switch (kind) {
          case "number":
            toks[k === 2 ? 3 : k] = bad;
            break;
          case "drop":
            toks.splice(k, 1);
            if (toks.length === 7) toks.pop(); // 7 tokens is the valid old partition form
            break;
          case "extra":
            toks.splice(k, 0, "0");
            break;
          case "device":
            // Not "x/y": the kernel prints such names (cciss/c0d0). A leading "/" it never prints.
            toks[2] = bad === "" ? "a b" : `/${bad}`;
            break;
          case "long":
            toks[3] = "0".repeat(1100);
            break;
        }
        return toks.join(" ");
      });
    fc.assert(
      fc.property(mutated, (line) => {
        const r = parseLine(line);
        return typeof r === "string" && readable(r);
      }),
      { numRuns: RUNS },
    );
    t.pass();
  },
);
