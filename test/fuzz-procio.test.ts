// Property-based fuzzing of /proc/<pid>/io, /proc/<pid>/cgroup and cgroup io.stat parsers
// (fast-check). On failure fast-check prints the seed and the shrunk counterexample.
import test from "ava";
import fc from "fast-check";
import { parseCgroupUnit, parseIoStat, parseProcIo } from "../collectors/procio/parse.js";

const RUNS = 3000;

const junk = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("utf8")),
  fc
    .array(
      fc.constantFrom(
        "read_bytes",
        "write_bytes",
        ":",
        " ",
        "\n",
        "=",
        "8:0",
        "rbytes",
        "-1",
        "1e400",
        "0",
        "::",
        "/",
        ".service",
      ),
      { maxLength: 40 },
    )
    .map((a) => a.join("")),
);
const safeNat = (n: number) => Number.isSafeInteger(n) && n >= 0;
const counter = fc.oneof(fc.nat(), fc.maxSafeNat());
const badNumber = fc.oneof(
  fc.constantFrom("-1", "1e400", "Infinity", "NaN", "0x10", "1.5", "", "-0"),
  fc.integer({ min: 16, max: 400 }).map((n) => "9".repeat(n)),
);

test("fuzz: parseProcIo never throws; a result has safe non-negative integers, else a reason", (t) => {
  fc.assert(
    fc.property(junk, (text) => {
      const r = parseProcIo(text);
      return typeof r === "string"
        ? r.length > 0
        : safeNat(r.readBytes) && safeNat(r.writeBytes) && safeNat(r.cancelledWriteBytes);
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

test("fuzz: a /proc/<pid>/io built from counters parses back to them; a huge value is a reason", (t) => {
  const io = fc.record({
    rchar: counter,
    wchar: counter,
    syscr: counter,
    syscw: counter,
    read_bytes: counter,
    write_bytes: counter,
    cancelled_write_bytes: counter,
  });
  fc.assert(
    fc.property(
      io,
      fc.option(fc.constantFrom("read_bytes", "write_bytes", "cancelled_write_bytes")),
      fc.integer({ min: 16, max: 400 }),
      (v, broken, width) => {
        const text =
          Object.entries(v)
            .map(([k, n]) => `${k}: ${k === broken ? "9".repeat(width) : n}`)
            .join("\n") + "\n";
        const r = parseProcIo(text);
        if (broken !== null && !Number.isSafeInteger(Number("9".repeat(width))))
          return typeof r === "string";
        return (
          typeof r === "object" &&
          r.readBytes === v.read_bytes &&
          r.writeBytes === v.write_bytes &&
          r.cancelledWriteBytes === v.cancelled_write_bytes
        );
      },
    ),
    { numRuns: RUNS },
  );
  t.pass();
});

test("fuzz: parseCgroupUnit never throws; a unit is one path component with a unit suffix", (t) => {
  const comp = fc.oneof(
    fc.constantFrom(
      "system.slice",
      "user.slice",
      "backup.service",
      "session-1.scope",
      "a.socket",
      "x.mount",
      "",
      ".service",
    ),
    fc.string({ maxLength: 10 }),
  );
  const cg = fc
    .array(
      fc.tuple(
        fc.constantFrom("0", "1", "12", ""),
        fc.constantFrom("", "name=systemd", "cpu,cpuacct", ":"),
        fc.array(comp, { maxLength: 4 }),
      ),
      { maxLength: 4 },
    )
    .map((ls) => ls.map(([id, c, p]) => `${id}:${c}:/${p.join("/")}`).join("\n"));
  fc.assert(
    fc.property(fc.oneof(junk, cg), (text) => {
      const r = parseCgroupUnit(text);
      return (
        (r.unit === null ||
          (/\.(service|scope|socket|mount|swap|timer)$/.test(r.unit) && !r.unit.includes("/"))) &&
        (r.path === null || typeof r.path === "string")
      );
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

test("fuzz: parseIoStat never throws; values are safe non-negative integers; a built io.stat parses back", (t) => {
  const entry = fc.record({
    rbytes: counter,
    wbytes: counter,
    rios: counter,
    wios: counter,
    dbytes: counter,
    dios: counter,
  });
  const dev = fc.tuple(fc.nat(300), fc.nat(300)).map(([a, b]) => `${a}:${b}`);
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.tuple(dev, entry), { selector: ([d]) => d, maxLength: 4 }),
      (devs) => {
        const text = devs
          .map(
            ([d, e]) =>
              `${d} ${Object.entries(e)
                .map(([k, v]) => `${k}=${v}`)
                .join(" ")}`,
          )
          .join("\n");
        const r = parseIoStat(text);
        return (
          r.size === devs.length &&
          devs.every(([d, e]) => JSON.stringify(r.get(d)) === JSON.stringify(e))
        );
      },
    ),
    { numRuns: RUNS },
  );
  const broken = fc
    .tuple(dev, fc.constantFrom("rbytes", "wbytes", "rios", "wios", "dbytes", "dios"), badNumber)
    .map(([d, k, v]) => `${d} ${k}=${v} rbytes=1`);
  fc.assert(
    fc.property(fc.oneof(junk, broken), (text) => {
      for (const e of parseIoStat(text).values())
        if (!Object.values(e).every(safeNat)) return false;
      return true;
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

// Regressions found by the properties above (shrunk counterexamples).
test("regression: /proc/<pid>/io with a counter past 2^53 is a reason, not a rounded or Infinity value", (t) => {
  t.is(parseProcIo("read_bytes: 9999999999999999\nwrite_bytes: 0\n"), "read_bytes out of range");
  t.is(parseProcIo(`read_bytes: 0\nwrite_bytes: ${"9".repeat(400)}\n`), "write_bytes out of range");
  t.deepEqual(parseProcIo(`rchar: ${"9".repeat(400)}\nread_bytes: 1\nwrite_bytes: 2\n`), {
    readBytes: 1,
    writeBytes: 2,
    cancelledWriteBytes: 0,
  });
});

test(
  "regression: io.stat values that are not unsigned safe integers are ignored (read as 0), " +
    "never negative or huge",
  (t) => {
    t.deepEqual(parseIoStat("0:0 wbytes=9999999999999999 rbytes=1").get("0:0"), {
      rbytes: 1,
      wbytes: 0,
      rios: 0,
      wios: 0,
      dbytes: 0,
      dios: 0,
    });
    t.deepEqual(parseIoStat("8:0 rbytes=-5 wbytes=1e3 rios=0x10 wios= dios=7").get("8:0"), {
      rbytes: 0,
      wbytes: 0,
      rios: 0,
      wios: 0,
      dbytes: 0,
      dios: 7,
    });
  },
);
