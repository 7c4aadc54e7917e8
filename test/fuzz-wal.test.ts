// Property-based fuzzing of the WAL segment-name parser (patternRegex/analyse) and the parser of
// the database's own Prometheus metrics (fast-check). On failure fast-check prints the seed and
// the shrunk counterexample.
import test from "ava";
import fc from "fast-check";
import {
  DB_METRICS_MAX_BYTES,
  MERKLE_MAX_FAMILIES,
  parseDbMetrics,
} from "../collectors/wal/dbmetrics.js";
import {
  analyse,
  type DirEntry,
  FINDING_KINDS,
  patternRegex,
} from "../collectors/wal/inventory.js";

const RUNS = 3000;

const KINDS = new Set<string>(FINDING_KINDS);

/** Pattern text around the one "*": regex metacharacters, digits, unicode, other stars. */
const patternPart = fc.oneof(
  fc.string({ maxLength: 12 }).map((s) => s.replace(/\*/g, "")),
  fc
    .array(
      fc.constantFrom(
        ".",
        "+",
        "?",
        "^",
        "$",
        "{",
        "}",
        "(",
        ")",
        "|",
        "[",
        "]",
        "\\",
        "-",
        "/",
        "1",
        "0",
        "a",
        "wal",
        "é",
        "💾",
        " ",
      ),
      { maxLength: 8 },
    )
    .map((a) => a.join("")),
);
const onePattern = fc
  .tuple(patternPart, patternPart)
  .map(([pre, post]) => ({ pre, post, pattern: `${pre}*${post}` }));

test("fuzz: patternRegex never throws, for any pattern text (stars beyond the first are literal)", (t) => {
  const anyPattern = fc.oneof(
    fc.string({ maxLength: 30 }),
    fc
      .array(fc.constantFrom("*", "**", ".", "(", "\\", "segment", "[", "{1}", "?"), {
        maxLength: 10,
      })
      .map((a) => a.join("")),
  );
  fc.assert(
    fc.property(anyPattern, fc.string({ maxLength: 30 }), (p, name) => {
      const re = patternRegex(p);
      const m = re.plain.exec(name) ?? re.gz.exec(name);
      return m === null || p.includes("*") === (m[1] !== undefined);
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

test(
  "fuzz: a name made from a one-star pattern and a number matches (plain, " +
    "and gz with .gz) and gives the number back",
  (t) => {
    fc.assert(
      fc.property(onePattern, fc.stringMatching(/^\d{1,18}$/), ({ pre, post, pattern }, digits) => {
        const re = patternRegex(pattern);
        const name = `${pre}${digits}${post}`;
        const p = re.plain.exec(name);
        const g = re.gz.exec(`${name}.gz`);
        return (
          p?.[1] === digits &&
          g?.[1] === digits &&
          re.gz.exec(name) === null &&
          re.plain.exec(`${name}.gz`) === null
        );
      }),
      { numRuns: RUNS },
    );
    t.pass();
  },
);

const entryType = fc.constantFrom<DirEntry["type"]>(
  "file",
  "file",
  "file",
  "symlink",
  "dir",
  "other",
);
// Sizes up to 2^40 so that 30 of them still add up exactly in any order.
const meta = fc.record({
  size: fc.oneof(fc.nat(1 << 26), fc.constant(0), fc.nat(2 ** 40)),
  mtimeMs: fc.nat(2 ** 42),
  mode: fc.constantFrom(0o100640, 0o100600, 0o100644),
  uid: fc.constantFrom(0, 1000),
  gid: fc.constantFrom(0, 1000),
  dev: fc.nat(2 ** 20),
  ino: fc.nat(2 ** 40),
  nlink: fc.constantFrom(1, 1, 2),
});

test(
  "fuzz: analyse over any listing: every segment-named regular file is inventoried once, totals add up, " +
    "one active (the highest), findings well-formed",
  (t) => {
    const listing = fc
      .tuple(
        onePattern,
        fc.integer({ min: 0, max: 18 }), // zero-pad width, fixed per directory as a database would write it
        fc.uniqueArray(fc.nat(10 ** 7), { maxLength: 30 }),
        fc.array(fc.tuple(fc.boolean(), entryType, meta), { minLength: 30, maxLength: 30 }),
        fc.array(fc.tuple(fc.string({ maxLength: 20 }), entryType, meta), { maxLength: 5 }),
      )
      .map(([pat, width, seqs, how, junk]) => {
        const entries: DirEntry[] = seqs.map((s, i) => {
          const [gz, type, m] = how[i] as [
            boolean,
            DirEntry["type"],
            typeof meta extends fc.Arbitrary<infer M> ? M : never,
          ];
          return {
            name: `${pat.pre}${String(s).padStart(width, "0")}${pat.post}${gz ? ".gz" : ""}`,
            type,
            ...m,
          };
        });
        for (const [name, type, m] of junk) entries.push({ name, type, ...m });
        return { pattern: pat.pattern, entries };
      });
    fc.assert(
      fc.property(
        listing,
        fc.oneof(fc.constant(0), fc.nat(1 << 26)),
        ({ pattern, entries }, expectedSize) => {
          const inv = analyse(entries, pattern, expectedSize);
          const re = patternRegex(pattern);
          const wanted = entries.filter(
            (e) => e.type === "file" && (re.plain.test(e.name) || re.gz.test(e.name)),
          );
          const names = inv.segments.map((s) => s.name);
          if (
            new Set(names).size !== names.length ||
            wanted.length !== names.length ||
            !wanted.every((e) => names.includes(e.name))
          )
            return false;
          const count =
            inv.totals.active.count + inv.totals.sealed.count + inv.totals.compressed.count;
          const bytesSum =
            inv.totals.active.bytes + inv.totals.sealed.bytes + inv.totals.compressed.bytes;
          if (
            count !== inv.segments.length ||
            bytesSum !== inv.segments.reduce((a, s) => a + s.size, 0)
          )
            return false;
          const seqs = inv.segments.map((s) => s.seq);
          if (!seqs.every((s) => Number.isSafeInteger(s) && s >= 0)) return false;
          const highest = seqs.length ? Math.max(...seqs) : null;
          if (inv.highestSeq !== highest) return false;
          const actives = inv.segments.filter((s) => s.state === "active");
          if (
            actives.length > 1 ||
            (actives[0] && actives[0].seq !== highest) ||
            inv.active !== (actives[0] ?? null)
          )
            return false;
          if (inv.segments.some((s) => s.state === "compressed" && !s.name.endsWith(".gz")))
            return false;
          // A plain segment is active exactly when it has the highest number; every other plain one is sealed.
          if (
            inv.segments.some(
              (s) => re.plain.test(s.name) && s.state !== (s.seq === highest ? "active" : "sealed"),
            )
          )
            return false;
          return inv.findings.every(
            (f) =>
              KINDS.has(f.kind) &&
              f.files.length > 0 &&
              f.files.length <= 20 &&
              f.message.length > 0,
          );
        },
      ),
      { numRuns: 1500 },
    );
    t.pass();
  },
);

test("fuzz: parseDbMetrics never throws on any text; no NaN anywhere in what it returns", (t) => {
  const name = fc.constantFrom(
    "stemedb_wal_fsync_duration_seconds",
    "stemedb_wal_fsync_duration_seconds_bucket",
    "stemedb_wal_fsync_duration_seconds_count",
    "stemedb_wal_fsync_errors_total",
    "stemedb_replication_lag_seconds",
    "stemedb_storage_operation_errors_total",
    "stemedb_merkle_sync_rounds_total",
    "stemedb_merkle_sync_pending_ranges",
    "stemedb_merkle_sync_duration_seconds_bucket",
    "stemedb_merkle_sync___proto__",
    "stemedb_merkle_sync_",
    "other_metric",
  );
  const label = fc.oneof(
    fc.constant(""),
    fc
      .tuple(
        fc.constantFrom("quantile", "le", "x"),
        fc.oneof(
          fc.constantFrom("0.99", "0.5", "+Inf", "-Inf", "NaN", "abc", "", "1e-05", "__proto__"),
          fc.string({ maxLength: 6 }).map((s) => s.replace(/["}]/g, "")),
        ),
      )
      .map(([k, v]) => `{${k}="${v}"}`),
  );
  const value = fc.oneof(
    fc.constantFrom("+Inf", "-Inf", "NaN", "Nan", "0", "-1", "1e308", "abc", "0x10", ""),
    fc.double().map(String),
    fc.nat().map(String),
  );
  const line = fc.tuple(name, label, value).map(([n, l, v]) => `${n}${l} ${v}`);
  const text = fc
    .array(fc.oneof(line, line, fc.string({ maxLength: 40 }), fc.constant("# HELP x y")), {
      maxLength: 12,
    })
    .map((ls) => ls.join("\n"));
  fc.assert(
    fc.property(text, (s) => {
      const r = parseDbMetrics(s);
      const nums = [...Object.values(r.quantiles), r.p99, r.count, r.errors];
      const figures = [
        r.count,
        r.errors,
        r.replication_lag_seconds,
        r.storage_operation_errors,
        ...Object.values(r.merkle_sync),
      ];
      return (
        nums.every((n) => n === null || (typeof n === "number" && !Number.isNaN(n))) &&
        // The new figures are finite numbers or null: JSON (agentctl, history) carries them as is.
        figures.every((n) => n === null || Number.isFinite(n)) &&
        Object.getPrototypeOf(r.merkle_sync) === Object.prototype &&
        !("" in r.merkle_sync)
      );
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

test(
  "fuzz: a histogram (lines in any order) gives as p99 the upper bound of the first bucket reaching " +
    "99%; a summary's own 0.99 wins",
  (t) => {
    const hist = fc
      .tuple(
        fc.uniqueArray(fc.double({ min: 1e-6, max: 100, noNaN: true }), {
          minLength: 1,
          maxLength: 10,
        }),
        fc.array(fc.nat(1000), { minLength: 11, maxLength: 11 }),
        fc.option(fc.double({ min: 0, max: 100, noNaN: true })),
      )
      .chain(([les, incs, q99]) => {
        const bounds = [...les.sort((a, b) => a - b), Infinity];
        let c = 0;
        const cum = bounds.map((_, i) => (c += incs[i] ?? 0));
        const lines = bounds.map(
          (b, i) =>
            `stemedb_wal_fsync_duration_seconds_bucket{le="${b === Infinity ? "+Inf" : String(b)}"} ${cum[i]}`,
        );
        if (q99 !== null) lines.push(`stemedb_wal_fsync_duration_seconds{quantile="0.99"} ${q99}`);
        return fc
          .shuffledSubarray(lines, { minLength: lines.length, maxLength: lines.length })
          .map((shuffled) => ({ text: shuffled.join("\n"), bounds, cum, q99 }));
      });
    fc.assert(
      fc.property(hist, ({ text, bounds, cum, q99 }) => {
        const r = parseDbMetrics(text);
        if (q99 !== null) return r.p99 === q99;
        const total = cum.at(-1) ?? 0;
        if (total === 0) return r.p99 === null;
        return r.p99 === bounds[cum.findIndex((x) => x >= 0.99 * total)];
      }),
      { numRuns: RUNS },
    );
    t.pass();
  },
);

test(
  "fuzz: the database's figures over any label sets: lag is the largest, counters are summed, " +
    "Merkle gauges are the largest, and at most MERKLE_MAX_FAMILIES families are kept",
  (t) => {
    const sample = fc.record({
      peer: fc.string({ maxLength: 5 }).map((s) => s.replace(/["}\\\n]/g, "")),
      lag: fc.double({ min: -10, max: 1e6, noNaN: true }),
      errors: fc.nat(1e6),
      rounds: fc.nat(1e6),
      pending: fc.nat(1e6),
    });
    const families = fc.uniqueArray(fc.stringMatching(/^[a-z][a-z_]{0,12}$/), { maxLength: 90 });
    fc.assert(
      fc.property(fc.array(sample, { minLength: 1, maxLength: 8 }), families, (ss, fams) => {
        const lines = ss.flatMap((x) => [
          `stemedb_replication_lag_seconds{peer="${x.peer}"} ${x.lag}`,
          `stemedb_storage_operation_errors_total{peer="${x.peer}"} ${x.errors}`,
          `stemedb_merkle_sync_rounds_total{peer="${x.peer}"} ${x.rounds}`,
          `stemedb_merkle_sync_pending_ranges{peer="${x.peer}"} ${x.pending}`,
        ]);
        for (const f of fams) lines.push(`stemedb_merkle_sync_x_${f} 1`);
        const r = parseDbMetrics(lines.join("\n"));
        const sum = (k: "errors" | "rounds") => ss.reduce((a, x) => a + x[k], 0);
        return (
          r.replication_lag_seconds === Math.max(...ss.map((x) => x.lag)) &&
          r.storage_operation_errors === sum("errors") &&
          r.merkle_sync["rounds_total"] === sum("rounds") &&
          r.merkle_sync["pending_ranges"] === Math.max(...ss.map((x) => x.pending)) &&
          Object.keys(r.merkle_sync).length === Math.min(MERKLE_MAX_FAMILIES, 2 + fams.length)
        );
      }),
      { numRuns: RUNS / 3 },
    );
    t.pass();
  },
);

test("the database's figures: absent is null, garbage and non-finite values count for nothing", (t) => {
  const r = parseDbMetrics(
    [
      "stemedb_replication_lag_seconds NaN",
      "stemedb_replication_lag_seconds +Inf",
      "stemedb_storage_operation_errors_total abc",
      "stemedb_merkle_sync___proto__ 5",
      'stemedb_merkle_sync_duration_seconds_bucket{le="1"} 3',
      'stemedb_merkle_sync_duration_seconds{quantile="0.99"} 9',
      "stemedb_merkle_sync_duration_seconds_sum 1.5",
      "stemedb_merkle_sync_duration_seconds_sum 2.5",
    ].join("\n"),
  );
  t.is(r.replication_lag_seconds, null);
  t.is(r.storage_operation_errors, null);
  // "__proto__" is a key like any other, never the object's prototype.
  t.deepEqual(Object.entries(r.merkle_sync), [
    ["__proto__", 5],
    ["duration_seconds_sum", 4],
  ]);
  t.is(Object.getPrototypeOf(r.merkle_sync), Object.prototype);
  // Text past the bound is not read; the line the bound cuts is dropped.
  const big = "x 1\n".repeat(DB_METRICS_MAX_BYTES / 4) + "stemedb_replication_lag_seconds 5\n";
  t.is(parseDbMetrics(big).replication_lag_seconds, null);
});

// Regressions found by the properties above (shrunk counterexamples).
test(
  "regression: stars after the first in a segment pattern are literal, " +
    'never a regex quantifier ("***" threw SyntaxError)',
  (t) => {
    t.notThrows(() => patternRegex("seg***"));
    t.is(patternRegex("**").plain.exec("")?.[0], undefined);
    t.is(patternRegex("a*b*").plain.exec("a12b*")?.[1], "12");
    t.is(patternRegex("a*b*").plain.exec("a12bbb"), null);
  },
);

test(
  "regression: a bucket's le is not read out of a quantile label, " +
    "and a non-numeric le is no bucket (p99 was NaN)",
  (t) => {
    t.is(
      parseDbMetrics('stemedb_wal_fsync_duration_seconds_bucket{quantile=":"} 5e-324').p99,
      null,
    );
    t.is(parseDbMetrics('stemedb_wal_fsync_duration_seconds_bucket{le="abc"} 5').p99, null);
    const r = parseDbMetrics(
      [
        'stemedb_wal_fsync_duration_seconds_bucket{instance="x",le="0.1"} 99',
        'stemedb_wal_fsync_duration_seconds_bucket{instance="x",le="+Inf"} 100',
      ].join("\n"),
    );
    t.is(r.p99, 0.1);
    t.deepEqual(
      parseDbMetrics('stemedb_wal_fsync_duration_seconds{xquantile="0.99"} 7').quantiles,
      {},
    );
  },
);
