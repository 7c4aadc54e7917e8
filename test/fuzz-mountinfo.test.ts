// Property-based fuzzing of the mountinfo parser (fast-check). On failure fast-check prints the
// seed and the shrunk counterexample.
import test from "ava";
import fc from "fast-check";
import {
  type MountInfo,
  mountFor,
  parseMountinfo,
  parseMountinfoLine,
  unescapeMountPath,
} from "../core/host/mountinfo.js";

const RUNS = 3000;

/** What the kernel does to paths in mountinfo (fs/proc_namespace.c: mangle " \t\n\\"). */
const escapeMountPath = (s: string) =>
  s.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);

const junk = fc.oneof(
  fc.string({ unit: "binary", maxLength: 400 }),
  fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b).toString("utf8")),
  fc
    .array(
      fc.constantFrom(" ", "-", "\n", "0", "8:1", "/", "\\040", "rw", "ext4", "shared:1", "\\"),
      { maxLength: 60 },
    )
    .map((a) => a.join("")),
  fc
    .string({ unit: "grapheme-ascii", minLength: 300, maxLength: 2000 })
    .map((s) => `1 1 ${s.replace(/\s/g, "x")} / / rw - ext4 x rw`),
);

const pathText = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc
    .array(
      fc.constantFrom("a", " ", "\t", "\n", "\\", "\\040", "\\134", "0", "7", "é", "💾", "-", "/"),
      { maxLength: 20 },
    )
    .map((a) => a.join("")),
);
const path = pathText.map((s) => `/${s}`);
const word = fc.stringMatching(/^[a-z0-9=:_.]{1,12}$/);
const id = fc.oneof(fc.nat(100000), fc.maxSafeNat());

interface Built {
  readonly line: string;
  readonly m: Omit<MountInfo, "mountOptions" | "superOptions"> & {
    mountOptions: string[];
    superOptions: string[];
  };
}

const validLine: fc.Arbitrary<Built> = fc
  .record({
    mountId: id,
    parentId: id,
    major: fc.nat(4095),
    minor: fc.nat(1 << 20),
    root: path,
    mountPoint: path,
    source: fc.oneof(path, word, fc.constant("none")),
    fsType: fc.stringMatching(/^[a-z0-9.]{1,10}$/),
    mountOptions: fc.array(word, { minLength: 1, maxLength: 5 }),
    optionalFields: fc.array(
      fc.stringMatching(/^(shared|master|propagate_from):\d{1,4}$|^unbindable$/),
      { maxLength: 3 },
    ),
    superOptions: fc.array(word, { minLength: 1, maxLength: 5 }),
  })
  .map((m) => ({
    m,
    line: [
      m.mountId,
      m.parentId,
      `${m.major}:${m.minor}`,
      escapeMountPath(m.root),
      escapeMountPath(m.mountPoint),
      m.mountOptions.join(","),
      ...m.optionalFields,
      "-",
      m.fsType,
      escapeMountPath(m.source),
      m.superOptions.join(","),
    ].join(" "),
  }));

const safeNat = (n: number) => Number.isSafeInteger(n) && n >= 0;
const wellTyped = (m: MountInfo) =>
  [m.mountId, m.parentId, m.major, m.minor].every(safeNat) &&
  [m.root, m.mountPoint, m.fsType, m.source].every((s) => typeof s === "string") &&
  [m.mountOptions, m.optionalFields, m.superOptions].every(
    (a) => Array.isArray(a) && a.every((s) => typeof s === "string"),
  );
const readable = (s: string) => s.length > 0 && s.length < 300 && !s.includes("\n");

test("fuzz: unescape inverts the kernel's escaping for any path (incl. literal backslash-digits)", (t) => {
  fc.assert(
    fc.property(pathText, (p) => unescapeMountPath(escapeMountPath(p)) === p),
    { numRuns: RUNS },
  );
  t.pass();
});

test("fuzz: arbitrary text never throws; mounts well-typed (ids safe integers), problems 'line N: reason'", (t) => {
  fc.assert(
    fc.property(
      fc
        .array(
          fc.oneof(
            junk,
            validLine.map((b) => b.line),
          ),
          { maxLength: 6 },
        )
        .map((l) => l.join("\n")),
      (text) => {
        const r = parseMountinfo(text);
        return (
          r.mounts.every(wellTyped) && r.problems.every((p) => /^line \d+: /.test(p) && readable(p))
        );
      },
    ),
    { numRuns: RUNS },
  );
  t.pass();
});

test("fuzz: a valid line (escaped unicode paths, optional fields) parses back to the fields it was built from", (t) => {
  fc.assert(
    fc.property(validLine, ({ line, m }) => {
      const r = parseMountinfoLine(line);
      if (typeof r === "string") return false;
      const same = (a: readonly string[], b: readonly string[]) =>
        a.length === b.length && a.every((x, i) => x === b[i]);
      return (
        r.mountId === m.mountId &&
        r.parentId === m.parentId &&
        r.major === m.major &&
        r.minor === m.minor &&
        r.root === m.root &&
        r.mountPoint === m.mountPoint &&
        r.fsType === m.fsType &&
        r.source === m.source &&
        same(r.mountOptions, m.mountOptions) &&
        same(r.optionalFields, m.optionalFields) &&
        same(r.superOptions, m.superOptions)
      );
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

test("fuzz: broken lines (bad/huge ids, no separator, truncated) are reasons, never records with bad numbers", (t) => {
  const bad = fc.oneof(
    fc.constantFrom("-1", "x", "", "1.5", "NaN", "8-1", "8:", ":1", "0x1"),
    fc.integer({ min: 16, max: 400 }).map((n) => "9".repeat(n)), // beyond 2^53, up to beyond Number.MAX_VALUE
  );
  const mutated = fc
    .tuple(
      validLine,
      fc.constantFrom("id", "parent", "devno", "major", "nosep", "truncate"),
      bad,
      fc.nat(),
    )
    .map(([b, kind, v, n]) => {
      const tok = b.line.split(" ");
      if (kind === "id") tok[0] = v;
      else if (kind === "parent") tok[1] = v;
      else if (kind === "devno") tok[2] = v;
      else if (kind === "major") tok[2] = `${v}:${b.m.minor}`;
      else if (kind === "nosep") return tok.filter((x) => x !== "-").join(" ");
      else return tok.slice(0, Math.min(tok.indexOf("-") + 3, 6 + (n % 3))).join(" ");
      return tok.join(" ");
    });
  fc.assert(
    fc.property(mutated, (line) => {
      const r = parseMountinfoLine(line);
      return typeof r === "string" ? readable(r) : false;
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

test("fuzz: mountFor picks the longest containing mount point, or none", (t) => {
  const mp = fc.oneof(
    fc.constant("/"),
    fc
      .array(fc.constantFrom("a", "b", "ab", "a b"), { minLength: 1, maxLength: 4 })
      .map((p) => `/${p.join("/")}`),
  );
  fc.assert(
    fc.property(fc.array(mp, { maxLength: 6 }), mp, (points, p) => {
      const mounts = points.map((mountPoint, i) => ({
        mountId: i,
        parentId: 0,
        major: 0,
        minor: 0,
        root: "/",
        mountPoint,
        mountOptions: [],
        optionalFields: [],
        fsType: "x",
        source: "x",
        superOptions: [],
      }));
      const inside = (m: string) => p === m || m === "/" || p.startsWith(`${m}/`);
      const best = mountFor(p, mounts);
      const candidates = mounts.filter((m) => inside(m.mountPoint));
      if (candidates.length === 0) return best === undefined;
      return (
        best !== undefined &&
        inside(best.mountPoint) &&
        candidates.every((c) => c.mountPoint.length <= best.mountPoint.length)
      );
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

// Regressions found by the properties above (shrunk counterexamples).
test(
  "regression: ids past 2^53 or past Number.MAX_VALUE are reasons, " +
    "not records with rounded or Infinity ids",
  (t) => {
    t.regex(parseMountinfoLine("9999999999999999 0 0:0 / / = - a / :") as string, /out of range/);
    t.regex(
      parseMountinfoLine(`${"9".repeat(400)} 1 8:1 / / rw - ext4 /dev/sda1 rw`) as string,
      /out of range/,
    );
    t.regex(
      parseMountinfoLine(`1 1 8:${"9".repeat(400)} / / rw - ext4 /dev/sda1 rw`) as string,
      /out of range/,
    );
  },
);

test("regression: a huge malformed device number is quoted briefly in the reason", (t) => {
  const r = parseMountinfoLine(`1 1 ${"x".repeat(5000)} / / rw - ext4 /dev/sda1 rw`);
  t.true(typeof r === "string" && r.length < 100);
});
