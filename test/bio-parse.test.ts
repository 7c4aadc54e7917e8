// The bio collector's pure parts: rwbs as the kernel writes it, the log-linear buckets (against
// a BigInt copy of the script's shift ladder), the exported bounds, quantiles, bpftrace's JSON
// lines with garbage among them, the script's generated text, cgroup paths to units, the
// pre-bucketed histogram through promtool; and the collector's reading of a stand-in bpftrace
// that prints garbage, an overlong line and then a good round, then dies.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import fc from "fast-check";
import { Registry } from "prom-client";
import { unitOfCgroupPath } from "../collectors/bio/cgroups.js";
import { bioEvidence } from "../collectors/bio/evidence.js";
import { BioCollector } from "../collectors/bio/collector.js";
import type { BioCounters, BioObservation } from "../collectors/bio/observation.js";
import {
  BUCKET_OVER,
  bucketIndex,
  bucketUpper,
  buildTick,
  EXPORT_BOUNDS_US,
  exportBuckets,
  oldestInflight,
  parseLine,
  parseRwbs,
  quantile,
} from "../collectors/bio/parse.js";
import { bioScript } from "../collectors/bio/script.js";
import { bioSinks } from "../collectors/bio/sink.js";
import { hasCommand, tempDir } from "./helpers/agent-process.js";
import { REPO_ROOT } from "./helpers/container.js";
import { quietLog, sleep } from "./helpers/quiet.js";

/** A round in which nothing was lost or left unparsed. */
const NOTHING_LOST: BioCounters = {
  unmatched: 0,
  dropped: 0,
  unattributed: 0,
  bad_lines: 0,
  bad_keys: 0,
  exits: 0,
  inflight_leaked: 0,
};

test("rwbs: every form blk_fill_rwbs writes, and nothing else", (t) => {
  const cases: Array<[string, string, Partial<Record<string, boolean>>]> = [
    ["R", "read", { sync: false }],
    ["RS", "read", { sync: true }],
    ["RA", "read", { readahead: true, sync: false }],
    ["RM", "read", { meta: true }],
    ["W", "write", { sync: false }],
    ["WS", "write", { sync: true }],
    ["WFS", "write", { fua: true, sync: true, preflush: false }],
    ["FWS", "write", { preflush: true, fua: false, sync: true }],
    ["FWFSM", "write", { preflush: true, fua: true, sync: true, meta: true }],
    ["FF", "flush", { preflush: true, fua: false }],
    ["F", "flush", { preflush: false }],
    ["D", "discard", {}],
    ["DS", "discard", { sync: true }],
    ["DE", "discard", {}],
    ["N", "other", {}],
  ];
  for (const [text, op, flags] of cases) {
    const r = parseRwbs(text);
    t.is(`${r?.op}`, op, text);
    if (Object.keys(flags).length > 0) t.like(r, flags, text);
  }
  for (const bad of ["", "X", "WSS", "SW", "ws", "W,S", "FFFF", "RSX", "W\u0000S"])
    t.is(parseRwbs(bad), null, JSON.stringify(bad));
});

/** The script's arithmetic, in integers: the msb by a ladder of shifts, then two bits below it. */
function scriptIndex(us: bigint): number {
  if (us < 8n) return 0;
  let v = us;
  let m = 0n;
  for (const s of [16n, 8n, 4n, 2n]) {
    if (v >= 1n << s) {
      m += s;
      v >>= s;
    }
  }
  if (v >= 2n) m += 1n;
  return m >= 25n ? 89 : Number((m - 3n) * 4n + ((us >> (m - 2n)) & 3n) + 1n);
}

test("buckets: the TypeScript index is the script's, and each value lies within its bucket's edges", (t) => {
  t.is(BUCKET_OVER, 89);
  fc.assert(
    fc.property(
      fc.oneof(fc.integer({ min: 0, max: 2 ** 26 }), fc.integer({ min: 0, max: 4096 })),
      (us) => {
        const i = bucketIndex(us);
        t.is(i, scriptIndex(BigInt(us)));
        const lower = i === 0 ? 0 : bucketUpper(i - 1);
        return lower <= us && us < bucketUpper(i);
      },
    ),
    { numRuns: 5000 },
  );
  // Edges: 8 us starts bucket 1, 2^25 us (33.5 s) the overflow bucket.
  t.deepEqual(
    [bucketIndex(7), bucketIndex(8), bucketIndex(2 ** 25 - 1), bucketIndex(2 ** 25)],
    [0, 1, 88, 89],
  );
  // The widest bucket is a quarter of its lower edge.
  for (let i = 2; i < BUCKET_OVER; i++)
    t.true(bucketUpper(i) - bucketUpper(i - 1) <= bucketUpper(i - 1) / 4 + 1e-9);
});

test("exported bounds: 41, 16 us to 16.8 s, each an edge of a script bucket; cumulative counts are exact", (t) => {
  t.is(EXPORT_BOUNDS_US.length, 41);
  t.is(EXPORT_BOUNDS_US[0], 16);
  t.is(EXPORT_BOUNDS_US.at(-1), 2 ** 24);
  const uppers = new Set(Array.from({ length: BUCKET_OVER }, (_, i) => bucketUpper(i)));
  for (const b of EXPORT_BOUNDS_US) t.true(uppers.has(b), `${b}`);
  // Bounds around a p99.9 between 100 us and 10 s are at most 50 % apart.
  for (let k = 1; k < EXPORT_BOUNDS_US.length; k++) {
    const [lo, hi] = [EXPORT_BOUNDS_US[k - 1] as number, EXPORT_BOUNDS_US[k] as number];
    t.true(hi / lo <= 1.5 + 1e-9);
  }
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 2 ** 26 }), { maxLength: 200 }), (lat) => {
      const b = new Map<number, number>();
      for (const us of lat) b.set(bucketIndex(us), (b.get(bucketIndex(us)) ?? 0) + 1);
      const cum = exportBuckets(b);
      t.is(cum.length, EXPORT_BOUNDS_US.length + 1);
      t.is(cum.at(-1), lat.length);
      EXPORT_BOUNDS_US.forEach((le, k) => t.is(cum[k], lat.filter((us) => us < le).length));
    }),
    { numRuns: 300 },
  );
});

test("quantile: the upper edge of the bucket holding the rank; null without samples", (t) => {
  t.is(quantile(new Map(), 0.99), null);
  const b = new Map<number, number>([[bucketIndex(50), 999]]);
  b.set(bucketIndex(800_000), 1); // one 800 ms request among 999 fast ones
  t.is(quantile(b, 0.99), bucketUpper(bucketIndex(50)) / 1e6);
  t.is(quantile(b, 1), bucketUpper(bucketIndex(800_000)) / 1e6);
  t.true((quantile(b, 1) as number) >= 0.8 && (quantile(b, 1) as number) <= 0.8 * 1.25);
  t.is(quantile(new Map([[BUCKET_OVER, 1]]), 0.5), Infinity);
});

test("bpftrace lines: maps and scalars parsed, anything else ignored or counted as bad, never thrown", (t) => {
  t.like(parseLine('{"type": "map", "data": {"@now": 123}}'), {
    kind: "map",
    name: "now",
    value: 123,
  });
  const m = parseLine('{"type": "map", "data": {"@h": {"7340036,WS,1": 15, "8388608,RS,7": 1}}}');
  t.is(m.kind, "map");
  t.deepEqual(m.kind === "map" ? [...(m.value as Map<string, number>)] : null, [
    ["7340036,WS,1", 15],
    ["8388608,RS,7", 1],
  ]);
  t.like(parseLine('{"type": "attached_probes", "data": {"probes": 6}}'), {
    kind: "attached",
    probes: 6,
  });
  t.is(parseLine("").kind, "other");
  t.is(parseLine('{"type": "printf", "data": "hello"}').kind, "other");
  for (const bad of [
    "not json",
    "[1,2]",
    "null",
    '{"type": "map"}',
    '{"type": "map", "data": {"@a": 1, "@b": 2}}',
    '{"type": "map", "data": {"@a": 1.5}}',
    '{"type": "map", "data": {"@a": 1e300}}',
    '{"type": "map", "data": {"@a": {"k": "v"}}}',
    '{"type": "map", "data": {"@a": [1]}}',
    '{"type": "map", "data": {"a b": 1}}',
    '{"type": "map", "data": {"@h": {"1,W,1": 18014398509481984}}}',
  ])
    t.is(parseLine(bad).kind, "bad", bad);
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json()), (s) => {
      const r = parseLine(s);
      return ["map", "attached", "other", "bad"].includes(r.kind);
    }),
    { numRuns: 2000 },
  );
});

test("a round: keys validated one by one, op and sync from rwbs, flush machinery and strays counted", (t) => {
  const maps = new Map<string, number | Map<string, number>>([
    [
      "h",
      new Map([
        ["7340036,WS,1", 15],
        ["7340036,WS,3", 5],
        ["7340036,W,2", 1],
        ["7340036,FF,22", 1],
        ["7340036,RS,7", 4],
        ["7340036,DS,17", 1],
        ["bogus,WS,1", 1],
        ["7340036,XYZ,1", 1],
        ["7340036,WS,999", 1],
        ["1,2", 1],
      ]),
    ],
    ["sum", new Map([["7340036,WS", 200]])],
    [
      "ub",
      new Map([
        ["1234,WS", 8192],
        ["1234,RS", 4096],
        ["0,FF", 0],
      ]),
    ],
    [
      "un",
      new Map([
        ["1234,WS", 2],
        ["1234,RS", 1],
        ["0,FF", 1],
      ]),
    ],
    ["ul", new Map([["1234,WS", 30]])],
    ["uh", new Map([["1234,0", 3]])],
    [
      "infl",
      new Map([
        ["7340036,3,10", 1],
        ["7340036,2,20", 2],
        ["7340036,2,21", 0],
        ["7340036,1,5", -1],
        ["7340037,9,1", 1],
      ]),
    ],
    [
      "slot",
      new Map([
        ["7340036,3,10", 10],
        ["7340036,2,20", 20],
        ["7340036,2,21", 21],
      ]),
    ],
    ["done", 27],
    ["unmatched", 2],
    ["seq", 4],
  ]);
  t.is(buildTick(maps), null, "no end-of-round marker: no round");
  maps.set("now", 3_500_000);
  const tick = buildTick(maps);
  if (!tick) return t.fail();
  t.is(tick.badKeys, 5);
  const ws = tick.histos.get("7:4 write true");
  t.deepEqual(
    [...(ws?.buckets ?? [])],
    [
      [1, 15],
      [3, 5],
    ],
  );
  t.is(ws?.sum, 200);
  t.is(tick.histos.get("7:4 write false")?.buckets.get(2), 1);
  t.is(tick.histos.get("7:4 flush false")?.buckets.get(22), 1);
  t.is(tick.histos.get("7:4 discard true")?.buckets.get(17), 1);
  t.like(tick.cgroups.get(1234), { read_bytes: 4096, write_bytes: 8192, ios: 3, latency_us: 30 });
  t.is(tick.cgroups.get(0)?.ios, 1);
  t.like(tick, { done: 27, unmatched: 2, flushSeq: 4 });
  // From the end of the oldest slot still holding requests (slot 10: 1.0 s to 1.1 s).
  const r1 = oldestInflight(tick, new Map(), 100_000);
  t.deepEqual(r1.ages, [{ device: "7:4", op: "flush", age_seconds: 2.4 }]);
  // The ring came round to slot 10 while its flush was still in flight: it keeps its first start.
  const again = {
    now_us: 10_000_000,
    inflight: [{ device: "7:4", op: "flush" as const, slot: 10, count: 2, startSlot: 74 }],
  };
  const r2 = oldestInflight(again, r1.state, 100_000);
  t.is(r2.ages[0]?.age_seconds, 8.9);
  // Drained once: forgotten; full again later: the new start.
  const r3 = oldestInflight({ now_us: 11_000_000, inflight: [] }, r2.state, 100_000);
  t.deepEqual(r3.ages, []);
  const r4 = oldestInflight(
    { ...again, now_us: 14_000_000, inflight: [{ ...again.inflight[0]!, startSlot: 138 }] },
    r3.state,
    100_000,
  );
  t.is(r4.ages[0]?.age_seconds, 0.1);
  // The kernel says 7:4 is idle: its 2 are leaks, left out now and at the next round; a third
  // request in that slot later is real again.
  const r5 = oldestInflight(again, r4.state, 100_000, new Set(["7:4"]));
  t.deepEqual([r5.ages, r5.leaked], [[], 2]);
  const r6 = oldestInflight(again, r5.state, 100_000);
  t.deepEqual([r6.ages, r6.leaked], [[], 2]);
  const r7 = oldestInflight(
    { ...again, inflight: [{ ...again.inflight[0]!, count: 3 }] },
    r6.state,
    100_000,
  );
  t.is(r7.ages[0]?.age_seconds, 2.5);
});

test("the script: generated from the options only, queue time and the cgroup probe switch probes", (t) => {
  const plain = bioScript({ queueTime: false, intervalMs: 1000, cgroupProbe: "block_io_start" });
  t.false(plain.includes("block_rq_insert"));
  t.true(plain.includes("tracepoint:block:block_io_start"));
  t.true(plain.includes("interval:ms:1000"));
  const q = bioScript({ queueTime: true, intervalMs: 250, cgroupProbe: "block_rq_issue" });
  t.true(q.includes("tracepoint:block:block_rq_insert"));
  t.false(q.includes("block_io_start"));
  t.throws(() => bioScript({ queueTime: false, intervalMs: 99, cgroupProbe: "block_io_start" }));
  t.throws(() =>
    bioScript({ queueTime: false, intervalMs: 1000.5, cgroupProbe: "block_io_start" }),
  );
});

test("cgroup paths to units: the deepest unit, slices only when nothing else, the root, foreign paths", (t) => {
  t.is(unitOfCgroupPath(""), "-.slice");
  t.is(unitOfCgroupPath("/system.slice/backup.service"), "backup.service");
  t.is(unitOfCgroupPath("/system.slice/docker-1.scope/inner"), "docker-1.scope");
  t.is(unitOfCgroupPath("/user.slice/user-1000.slice"), "user-1000.slice");
  t.is(unitOfCgroupPath("/process_api/abc"), "/process_api/abc");
  t.true(unitOfCgroupPath(`/${"x".repeat(500)}`).length <= 128);
});

test("the pre-bucketed histogram and the other bio metrics pass promtool check metrics", async (t) => {
  if (!hasCommand("promtool")) return t.pass("promtool not installed (scripts/test-deps.sh)");
  const reg = new Registry();
  const s = bioSinks(reg, quietLog);
  const b = new Map<number, number>([
    [bucketIndex(20), 10],
    [bucketIndex(900_000), 1],
  ]);
  const cumulative = exportBuckets(b);
  const o: BioObservation = {
    tier: "ebpf",
    queue_time: false,
    interval_seconds: 1,
    histograms: [
      {
        device: "loop3",
        op: "write",
        sync: true,
        count: 11,
        sum_seconds: 0.9002,
        cumulative,
        p99_seconds: 1.048576,
        p999_seconds: 1.048576,
        interval_count: 11,
      },
    ],
    units: [
      {
        unit: "backup.service",
        read_bytes: 0,
        write_bytes: 45056,
        ios: 11,
        mean_latency_seconds: 0.08,
        p99_seconds: 1,
      },
    ],
    inflight: [{ device: "loop3", op: "flush", age_seconds: 2.5 }],
    counters: {
      unmatched: 1,
      dropped: 0,
      unattributed: 0,
      bad_lines: 2,
      bad_keys: 0,
      exits: 1,
      inflight_leaked: 0,
    },
    cgroups_truncated: false,
  };
  s.observation.metrics?.(o);
  const text = await reg.metrics();
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  t.is(r.status, 0, r.stdout + r.stderr);
  t.regex(
    text,
    /stemedb_agent_bio_latency_seconds_bucket\{device="loop3",op="write",sync="sync",le="0.000024"\} 10/,
  );
  t.regex(
    text,
    /stemedb_agent_bio_latency_seconds_bucket\{device="loop3",op="write",sync="sync",le="\+Inf"\} 11/,
  );
  t.regex(
    text,
    /stemedb_agent_bio_latency_seconds_count\{device="loop3",op="write",sync="sync"\} 11/,
  );
  t.regex(text, /stemedb_agent_bio_inflight_oldest_seconds\{device="loop3",op="flush"\} 2.5/);
  t.regex(text, /stemedb_agent_bio_lost_total\{reason="bad_line"\} 2/);
  // 41 bounds and +Inf, sum and count: 44 series for the one histogram.
  t.is(
    text.split("\n").filter((l) => l.startsWith("stemedb_agent_bio_latency_seconds_")).length,
    44,
  );
});

test("histograms of at most 16 devices are exported, the first by name; the rest are counted", async (t) => {
  const reg = new Registry();
  const s = bioSinks(reg, quietLog);
  const cumulative = exportBuckets(new Map([[bucketIndex(20), 1]]));
  const names = Array.from({ length: 20 }, (_, i) => `sd${String.fromCharCode(116 - i)}`);
  const o: BioObservation = {
    tier: "ebpf",
    queue_time: false,
    interval_seconds: 1,
    histograms: names.map((device) => ({
      device,
      op: "read" as const,
      sync: true,
      count: 1,
      sum_seconds: 0.00002,
      cumulative,
      p99_seconds: 0.000024,
      p999_seconds: 0.000024,
      interval_count: 1,
    })),
    units: [],
    inflight: [],
    counters: NOTHING_LOST,
    cgroups_truncated: false,
  };
  s.observation.metrics?.(o);
  const text = await reg.metrics();
  const shown = new Set(
    [...text.matchAll(/^stemedb_agent_bio_latency_seconds_count\{device="([^"]+)"/gm)].map(
      (m) => m[1],
    ),
  );
  t.deepEqual([...shown].sort(), [...names].sort().slice(0, 16));
  t.regex(text, /^stemedb_agent_bio_devices_omitted 4$/m);
});

test("a stand-in bpftrace: garbage and an overlong line counted, a good round read, its death said", async (t) => {
  const { dir, cleanup } = tempDir("sa-bio-");
  t.teardown(cleanup);
  const fake = join(dir, "bpftrace");
  // In flight on 259:1000, a device that does not exist (no kernel count to overrule it).
  // 9 MiB without a newline (over the 8 MiB bound), garbage, then one good round, then exit 3.
  writeFileSync(
    fake,
    `#!/bin/sh
echo 'garbage'
echo '{"type": "map", "data": {"@h": {"7340036,WS,1": "x"}}}'
head -c 9437184 /dev/zero | tr '\\0' 'a'; echo
echo '{"type": "map", "data": {"@h": {"7340036,WS,1": 3, "nonsense": 1}}}'
echo '{"type": "map", "data": {"@infl": {"271582184,2,10": 1}}}'
echo '{"type": "map", "data": {"@slot": {"271582184,2,10": 10}}}'
echo '{"type": "map", "data": {"@now": 3000000}}'
sleep 1
echo 'dying on purpose' >&2
exit 3
`,
  );
  chmodSync(fake, 0o755);
  const col = new BioCollector(
    {
      mode: "on",
      bpftrace: fake,
      queueTime: false,
      intervalMs: 1000,
      topK: 5,
      mapKeysMax: 4096,
      procPath: "/proc",
      sysPath: "/sys",
      tracefsPath: join(dir, "no-tracefs"),
    },
    { log: quietLog },
  );
  t.teardown(() => col.close());
  const signal = new AbortController().signal;
  let o = await col.collect({ signal });
  for (let i = 0; i < 100 && o.tier !== "ebpf"; i++) {
    await sleep(50);
    o = await col.collect({ signal });
  }
  t.is(o.tier, "ebpf");
  t.like(o.counters, { bad_lines: 3, bad_keys: 1 });
  t.like(o.histograms[0], { op: "write", sync: true, count: 3 });
  t.deepEqual(
    o.inflight.map((i) => [i.op, i.age_seconds]),
    [["write", 1.9]],
  );
  for (let i = 0; i < 100 && o.tier === "ebpf"; i++) {
    await sleep(50);
    o = await col.collect({ signal });
  }
  if (o.tier !== "diskstats") return t.fail("still on the eBPF tier");
  t.is(o.fallback.kind, "restarting");
  t.regex(o.fallback.reason, /code 3.*dying on purpose/);
  t.is(o.counters.exits, 1);
  // The counts of the dead child are kept; nothing is in flight without a child.
  t.is(o.histograms[0]?.count, 3);
  t.deepEqual(o.inflight, []);
});

/** systemd-analyze security --offline of a unit file: the exposure and the exposed checks. */
function exposure(unitText: string): { score: number; exposed: string[] } {
  const { dir, cleanup } = tempDir("sa-bio-unit-");
  try {
    const unit = join(dir, "stemedb-agent.service");
    writeFileSync(unit, unitText);
    const text = spawnSync("systemd-analyze", ["security", "--offline=true", unit], {
      encoding: "utf8",
    });
    const score = Number(
      /Overall exposure level for stemedb-agent\.service: (\d+\.\d)/.exec(text.stdout)?.[1],
    );
    const j = spawnSync("systemd-analyze", ["security", "--offline=true", "--json=short", unit], {
      encoding: "utf8",
    });
    const checks = JSON.parse(j.stdout) as Array<{ name: string; exposure: number | null }>;
    return { score, exposed: checks.filter((x) => (x.exposure ?? 0) > 0).map((x) => x.name) };
  } finally {
    cleanup();
  }
}

test("systemd/bio.conf: no BPF in the default unit; with the drop-in exposure 2.3, three findings more", (t) => {
  if (!existsSync("/usr/bin/systemd-analyze")) return t.pass("skipped: systemd-analyze missing");
  const unit = readFileSync(join(REPO_ROOT, "systemd/stemedb-agent.service"), "utf8");
  const dropIn = readFileSync(join(REPO_ROOT, "systemd/bio.conf"), "utf8");
  t.notRegex(unit, /CAP_BPF|CAP_PERFMON|perf_event_open/);
  // A drop-in's lines come after the unit's: the same as appending them to its [Service].
  const before = exposure(unit);
  const after = exposure(`${unit}\n${dropIn}`);
  t.log(`exposure ${before.score} -> ${after.score}`);
  t.true(after.score <= 2.3, `${after.score}`);
  t.deepEqual(after.exposed.filter((n) => !before.exposed.includes(n)).sort(), [
    "CapabilityBoundingSet=~CAP_BPF",
    "SystemCallFilter=~@debug",
    "SystemCallFilter=~@privileged",
  ]);
});

test("evidence for a pause that was not the cure: the WAL devices' p99 and the units doing I/O", (t) => {
  const base = {
    queue_time: false,
    interval_seconds: 1,
    inflight: [],
    counters: NOTHING_LOST,
    cgroups_truncated: false,
  };
  const h = (device: string, p99: number | null, n: number) => ({
    device,
    op: "write" as const,
    sync: true,
    count: n,
    sum_seconds: 0,
    cumulative: [],
    p99_seconds: p99,
    p999_seconds: p99,
    interval_count: n,
  });
  const o: BioObservation = {
    ...base,
    tier: "ebpf",
    histograms: [h("vdb", 0.262144, 40), h("vda", 0.001, 9), h("vdc", null, 0)],
    units: [
      {
        unit: "stemedb-api.service",
        read_bytes: 0,
        write_bytes: 2 * 1024 ** 2,
        ios: 40,
        mean_latency_seconds: 0.2,
        p99_seconds: 0.26,
      },
      {
        unit: "-.slice",
        read_bytes: 0,
        write_bytes: 64 * 1024 ** 2,
        ios: 300,
        mean_latency_seconds: 0.15,
        p99_seconds: 0.5,
      },
    ],
  };
  const e = bioEvidence(o, ["vdb", "vdc"]);
  t.deepEqual(e?.wal, [
    { device: "vdb", op: "write", sync: true, p99_seconds: 0.262144, requests: 40 },
  ]);
  t.is(e?.units.length, 2);
  t.is(
    e?.text,
    "eBPF: vdb write sync p99 262.1 ms (40); " +
      "units: stemedb-api.service 2.0 MiB mean 200.0 ms, -.slice 64.0 MiB mean 150.0 ms",
  );
  t.is(bioEvidence(undefined, ["vdb"]), null);
  t.is(
    bioEvidence(
      {
        ...base,
        tier: "diskstats",
        fallback: { kind: "unavailable", reason: "x" },
        histograms: [],
        units: [],
      },
      ["vdb"],
    ),
    null,
  );
});
