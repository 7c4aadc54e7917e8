// Property-based fuzzing of the configuration: duration/size strings, TOML text -> config, and
// printConfig -> load (fast-check). On failure fast-check prints the seed and the shrunk
// counterexample.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import fc from "fast-check";
import { stringify } from "smol-toml";
import { loadConfig, printConfig } from "../core/config/load.js";
import { formatDuration, formatSize, parseDuration, parseSize } from "../core/config/units.js";
import { tempDir } from "./helpers/agent-process.js";

const RUNS = 4000;
const LOAD_RUNS = 1500;
const TEN_YEARS = 10 * 365 * 86_400_000;
const NO_DEFAULT = "/nonexistent/agent.toml";

const { dir, cleanup } = tempDir("sa-fuzz-config-");
test.after.always(cleanup);
const FILE = join(dir, "agent.toml");
function load(text: string) {
  writeFileSync(FILE, text);
  return loadConfig({ file: FILE, env: {}, defaultFile: NO_DEFAULT });
}

const unitText = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc
    .array(
      fc.constantFrom(
        "0",
        "1",
        "9",
        ".",
        "5",
        "ms",
        "s",
        "m",
        "h",
        "d",
        "KiB",
        "MiB",
        "GiB",
        "TiB",
        "kB",
        "MB",
        "B",
        " ",
        "-",
        "e",
        "\t",
        "\u00a0",
        "１",
      ),
      { maxLength: 10 },
    )
    .map((a) => a.join("")),
  fc.integer({ min: 16, max: 400 }).map((n) => `${"9".repeat(n)}d`),
);

test(
  "fuzz: parseDuration/parseSize never throw; a value is a safe non-negative integer in range, " +
    "else a reason naming the input",
  (t) => {
    fc.assert(
      fc.property(unitText, (s) => {
        const d = parseDuration(s);
        const z = parseSize(s);
        const okD = d.ok
          ? Number.isSafeInteger(d.value) && d.value >= 0 && d.value <= TEN_YEARS
          : d.reason.includes(JSON.stringify(s));
        const okZ = z.ok
          ? Number.isSafeInteger(z.value) && z.value >= 0
          : z.reason.includes(JSON.stringify(s));
        return okD && okZ;
      }),
      { numRuns: RUNS },
    );
    t.pass();
  },
);

test("fuzz: formatDuration -> parseDuration and formatSize -> parseSize are identities", (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: TEN_YEARS }), (n) => {
      const r = parseDuration(formatDuration(n));
      return r.ok && r.value === n;
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(
      fc.oneof(
        fc.nat(1 << 20),
        fc.maxSafeNat(),
        fc.nat(1 << 20).map((n) => n * 1024 ** 2),
      ),
      (n) => {
        const r = parseSize(formatSize(n));
        return r.ok && r.value === n;
      },
    ),
    { numRuns: RUNS },
  );
  t.pass();
});

test("fuzz: a duration written as parts ('1h30m', '2.5s', '7d') is the sum of its parts", (t) => {
  const part = fc.tuple(
    fc.nat(1000),
    fc.constantFrom(["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000], ["ms", 1]),
  );
  fc.assert(
    fc.property(fc.array(part, { minLength: 1, maxLength: 4 }), (parts) => {
      const total = parts.reduce((a, [n, [, f]]) => a + n * f, 0);
      const r = parseDuration(parts.map(([n, [u]]) => `${n}${u}`).join(""));
      return total > TEN_YEARS ? !r.ok : r.ok && r.value === total;
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

const oneLineProblems = (r: ReturnType<typeof load>) =>
  r.ok ||
  (r.problems.length > 0 &&
    r.problems.every((p) => p.startsWith(`${FILE}:`) && !p.includes("\n") && p.length < 1000));

test("fuzz: any text as agent.toml: loadConfig never throws; failures are one-line problems naming the file", (t) => {
  const tomlish = fc
    .array(
      fc.constantFrom(
        "[agent]",
        "[collectors.smart]",
        "[[x]]",
        "a = 1",
        'listen = "x"',
        "=",
        "[",
        '"',
        "'''",
        "\n",
        " ",
        "#",
        "__proto__ = 1",
        "[__proto__]",
        "interval = 1979-05-27",
        "x = [1, [2]]",
        "t = { a = 1 }",
        "\\u0000",
      ),
      { maxLength: 12 },
    )
    .map((a) => a.join(""));
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: "binary", maxLength: 200 }), tomlish), (text) =>
      oneLineProblems(load(text)),
    ),
    { numRuns: LOAD_RUNS },
  );
  t.pass();
});

/** Every key the schema knows, by table; plus a few it does not. */
const KEYS: Record<string, string[]> = {
  agent: [
    "listen",
    "state_dir",
    "control_socket",
    "socket_group",
    "log_level",
    "log_format",
    "bogus",
  ],
  host: ["proc_path", "sys_path", "dev_path", "kmsg_path"],
  stemedb: ["data_dir", "service", "metrics_url"],
  wal: [
    "dir",
    "segment_pattern",
    "stall_after",
    "expected_segment_size",
    "verify_command",
    "check_compressed",
  ],
  history: [
    "raw_retention",
    "minute_retention",
    "hour_retention",
    "event_retention",
    "top_io_retention",
    "flush_interval",
    "max_pending_rows",
  ],
  "collectors.diskstats": ["enabled", "interval", "timeout", "jitter", "include", "exclude"],
  "collectors.fsync_probe": ["enabled", "interval", "dirs", "block_size"],
  "collectors.smart": ["smartctl", "devices", "timeout"],
  "collectors.mounts": ["paths", "fill_window", "fill_min_span"],
  "collectors.kmsg": ["facilities", "interval"],
  "collectors.procio": ["units", "top_k"],
  "remediators.wal_compress": [
    "mode",
    "keep_uncompressed",
    "min_age",
    "trigger_used_percent",
    "level",
    "max_bytes_per_second",
    "full_horizon",
    "cooldown",
    "breaker_after",
  ],
  "remediators.ballast": [
    "mode",
    "size",
    "release_used_percent",
    "release_full_horizon",
    "create_used_percent",
    "recreate_after",
  ],
  "remediators.backup_pause": [
    "mode",
    "units",
    "fsync_p99_threshold",
    "for",
    "resume_below",
    "max_pause",
    "daily_budget",
    "systemctl",
  ],
  __proto__: ["x"],
};
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom(
    "10s",
    "0",
    "64MiB",
    "-1s",
    "1e3s",
    "/abs",
    "./rel",
    "rel",
    "",
    "segment.*.wal",
    "a**",
    "(",
    "[",
    "\n(",
    "on",
    "kern",
    "http://x:1/m",
    "ftp://x",
    "backup.service",
    "99999999999999999999d",
  ),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.date({ noInvalidDate: true }),
  fc.array(fc.oneof(fc.string({ maxLength: 6 }), fc.integer()), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 2 }),
);
const structured = fc
  .array(fc.tuple(fc.constantFrom(...Object.keys(KEYS)), fc.nat(), anyValue), { maxLength: 8 })
  .map((kvs) => {
    const doc: Record<string, Record<string, unknown>> = {};
    for (const [table, i, v] of kvs) {
      const keys = KEYS[table] as string[];
      let node = doc as Record<string, unknown>;
      for (const part of table.split(".")) {
        if (!Object.hasOwn(node, part))
          Object.defineProperty(node, part, {
            value: {},
            enumerable: true,
            writable: true,
            configurable: true,
          });
        node = node[part] as Record<string, unknown>;
      }
      Object.defineProperty(node, keys[i % keys.length] as string, {
        value: v,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return stringify(doc);
  });

test(
  "fuzz: known keys with values of every TOML type: loadConfig never throws; " +
    "failures are one-line problems naming the file",
  (t) => {
    fc.assert(
      fc.property(structured, (text) => oneLineProblems(load(text))),
      { numRuns: LOAD_RUNS },
    );
    t.pass();
  },
);

/** A valid, non-default configuration: values from the documented domains. */
const dur = (min: number, max: number) => fc.integer({ min, max }).map(formatDuration);
const absPathArb = fc
  .array(fc.stringMatching(/^[\w.\- é💾]{1,8}$/u), { minLength: 1, maxLength: 3 })
  .map((p) => `/${p.join("/")}`);
const validToml = fc
  .record(
    {
      agent: fc.record(
        {
          listen: fc
            .tuple(fc.constantFrom("127.0.0.1", "[::1]", "", "0.0.0.0"), fc.nat(65535))
            .map(([h, p]) => `${h}:${p}`),
          state_dir: absPathArb,
          control_socket: absPathArb,
          log_level: fc.constantFrom("trace", "debug", "info", "warn", "error", "fatal"),
        },
        { requiredKeys: [] },
      ),
      wal: fc.record(
        {
          dir: absPathArb,
          segment_pattern: fc
            .tuple(fc.stringMatching(/^[\w.]{0,6}$/), fc.stringMatching(/^[\w.]{0,6}$/))
            .map(([a, b]) => `${a}*${b}`),
          stall_after: dur(0, 86_400_000),
          expected_segment_size: fc.nat(2 ** 40).map(formatSize),
          verify_command: fc.string({ maxLength: 20 }),
          check_compressed: fc.boolean(),
        },
        { requiredKeys: [] },
      ),
      collectors: fc.record(
        {
          diskstats: fc.record(
            {
              enabled: fc.boolean(),
              interval: dur(1, 3_600_000),
              jitter: dur(0, 60_000),
              include: fc.constantFrom("", "^sd", "nvme\\d+n\\d+$"),
            },
            { requiredKeys: [] },
          ),
          fsync_probe: fc.record(
            {
              dirs: fc.array(absPathArb, { maxLength: 3 }),
              block_size: fc.integer({ min: 9, max: 16 }).map((e) => formatSize(2 ** e)),
            },
            { requiredKeys: [] },
          ),
          smart: fc.record(
            {
              devices: fc.array(fc.stringMatching(/^\/dev\/[a-z0-9]{1,6}$/), { maxLength: 3 }),
              timeout: dur(1, 600_000),
            },
            { requiredKeys: [] },
          ),
          kmsg: fc.record(
            {
              facilities: fc.uniqueArray(fc.constantFrom("kern", "user", "daemon", "local7"), {
                minLength: 1,
                maxLength: 3,
              }),
            },
            { requiredKeys: [] },
          ),
          procio: fc.record(
            {
              top_k: fc.integer({ min: 1, max: 100 }),
              units: fc.array(fc.stringMatching(/^[a-z-]{1,8}\.service$/), { maxLength: 3 }),
            },
            { requiredKeys: [] },
          ),
        },
        { requiredKeys: [] },
      ),
      remediators: fc.record(
        {
          wal_compress: fc.record(
            {
              mode: fc.constantFrom("off", "dry-run", "on"),
              keep_uncompressed: fc.integer({ min: 1, max: 1000 }),
              // The ballast gives space back first (release_used_percent 75 by default).
              trigger_used_percent: fc.double({
                min: 75,
                max: 100,
                minExcluded: true,
                noNaN: true,
              }),
              level: fc.integer({ min: 1, max: 9 }),
              max_bytes_per_second: fc.nat(2 ** 36).map(formatSize),
            },
            { requiredKeys: [] },
          ),
          backup_pause: fc
            .tuple(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 1, max: 10_000 }))
            .map(([low, gap]) => ({
              resume_below: formatDuration(low),
              fsync_p99_threshold: formatDuration(low + gap),
            })),
        },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: [] },
  )
  .map((doc) => stringify(doc));

test("fuzz: a valid configuration loads; printConfig of it loads back to the same configuration", (t) => {
  fc.assert(
    fc.property(validToml, (text) => {
      const a = load(text);
      if (!a.ok) throw new Error(`valid config refused: ${a.problems.join("; ")}\n${text}`);
      const printed = printConfig(a.loaded.config);
      const b = load(printed);
      if (!b.ok)
        throw new Error(`printConfig output refused: ${b.problems.join("; ")}\n${printed}`);
      t.deepEqual(b.loaded.config, a.loaded.config);
      return JSON.stringify(b.loaded.config) === JSON.stringify(a.loaded.config);
    }),
    { numRuns: LOAD_RUNS },
  );
});

// Regression found by the properties above (shrunk counterexample).
test("regression: an invalid regular expression containing a newline is still a one-line problem", (t) => {
  const r = load('[collectors.diskstats]\ninclude = "\\n("\n');
  t.false(r.ok);
  if (r.ok) return;
  t.is(r.problems.length, 1);
  t.false(r.problems[0]?.includes("\n"));
  t.regex(
    r.problems[0] ?? "",
    /collectors\.diskstats\.include: invalid regular expression: .*\\n\(.*Unterminated group/,
  );
});
