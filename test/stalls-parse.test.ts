// The stall detectors' pure parts: /proc/<pid>/task/<tid>/stat and syscall lines as the kernel
// writes them (and as garbage), the write calls by architecture, the device estimate from
// diskstats counters, and the slow/stall state machine (detected once per level, cleared with
// its duration).
import test from "ava";
import fc from "fast-check";
import { Registry } from "prom-client";
import { bioInflight } from "../collectors/index.js";
import type { BioObservation } from "../collectors/bio/observation.js";
import type { Observations } from "../collectors/observations.js";
import { Latest } from "../core/latest.js";
import { stallsSinks } from "../collectors/stalls/sink.js";
import type { StallsObservation } from "../collectors/stalls/observation.js";
import { quietLog } from "./helpers/quiet.js";
import { parseProcStat } from "../core/host/proc.js";
import { DEFAULT_STALL_LIMITS, levelOf, StallDetector } from "../core/stalls.js";
import {
  deviceAges,
  withExact,
  type DeviceMemory,
  fileIn,
  parseSyscall,
  WRITE_CALLS,
  writeCallOf,
} from "../collectors/stalls/parse.js";

const x64 = WRITE_CALLS["x64"] as ReadonlyMap<number, string>;
const arm64 = WRITE_CALLS["arm64"] as ReadonlyMap<number, string>;

test("a thread's stat with spaces and parentheses in its comm still gives its state", (t) => {
  const s = parseProcStat(
    "4243 (stemedb (wal) 1) D 1 4242 4242 0 -1 4194624 120 0 0 0 15 2 0 0 20 0 17 0 98765 0 0\n",
  );
  t.is(s.comm, "stemedb (wal) 1");
  t.is(s.state, "D");
  const odd = parseProcStat("77 ()) R) S 1 2 3\n");
  t.is(odd.comm, ")) R");
  t.is(odd.state, "S");
});

test("syscall lines: running, blocked outside a call, in a call, and garbage", (t) => {
  t.deepEqual(parseSyscall("running\n"), { state: "running" });
  t.deepEqual(parseSyscall("-1 0x7ffd4e1c2a38 0x7f0e7a0f1b3d\n"), { state: "blocked" });
  const fsync = parseSyscall("74 0x5 0x0 0x0 0x0 0x0 0x0 0x7ffd4e1c2a38 0x7f0e7a0f1b3d\n");
  t.like(fsync, { state: "syscall", nr: 74 });
  t.deepEqual(writeCallOf(fsync, x64 as never), { call: "fsync", fd: 5 });
  t.is(
    writeCallOf(fsync, arm64 as never),
    null,
    "74 is no write call on arm64 (it is sync_file_range2's neighbour)",
  );
  const armFdatasync = parseSyscall("83 0xa 0x0 0x0 0x0 0x0 0x0 0xffffd000 0xffff8000\n");
  t.deepEqual(writeCallOf(armFdatasync, arm64 as never), { call: "fdatasync", fd: 10 });
  const write = parseSyscall("1 0x3 0x55d0c0 0x1000 0x0 0x0 0x0 0x7ffd 0x7f0e\n");
  t.deepEqual(writeCallOf(write, x64 as never), { call: "write", fd: 3 });
  const read = parseSyscall("0 0x3 0x55d0c0 0x1000 0x0 0x0 0x0 0x7ffd 0x7f0e\n");
  t.is(writeCallOf(read, x64 as never), null, "read(2) is not a write");
  for (const g of [
    "",
    "garbage",
    "74",
    "74 0x5",
    "-1",
    "-1 zz yy",
    "74 5 0 0 0 0 0 0 0",
    "74 0x5 0x0 0x0 0x0 0x0 0x0 0x7ffd 0x7f0e 0x1",
    "99999 0x5 0x0 0x0 0x0 0x0 0x0 0x7ffd 0x7f0e",
    `74 ${"0x1 ".repeat(200)}`,
  ])
    t.is(parseSyscall(g).state, "garbage", JSON.stringify(g));
  // A huge first argument is no descriptor.
  const big = parseSyscall("74 0xffffffffffffffff 0x0 0x0 0x0 0x0 0x0 0x7ffd 0x7f0e");
  t.is(writeCallOf(big, x64 as never), null);
});

test("a descriptor's target is named only when it lies inside the WAL directory", (t) => {
  t.is(fileIn("/var/lib/stemedb/wal/segment.7.wal", "/var/lib/stemedb/wal"), "segment.7.wal");
  t.is(
    fileIn("/var/lib/stemedb/wal/segment.7.wal (deleted)", "/var/lib/stemedb/wal/"),
    "segment.7.wal",
  );
  t.is(
    fileIn("/var/lib/stemedb/wal2/x", "/var/lib/stemedb/wal"),
    null,
    "a sibling with the prefix",
  );
  t.is(fileIn("/var/lib/stemedb/wal", "/var/lib/stemedb/wal"), null, "the directory itself");
  t.is(fileIn("socket:[12345]", "/var/lib/stemedb/wal"), null);
});

test("a device with requests in flight and no completion since T has an oldest request now - T old", (t) => {
  let mem: DeviceMemory = new Map();
  const step = (now: number, in_flight: number, completed: number) => {
    const r = deviceAges([{ device: "sda", in_flight, completed }], mem, now);
    mem = r.memory;
    return r.ages[0]?.age_seconds;
  };
  t.is(step(100, 2, 10), 0, "first sight: no history");
  t.is(step(101, 2, 10), 1, "nothing completed for 1 s");
  t.is(step(105, 3, 10), 5);
  t.is(step(106, 3, 11), 0, "a completion: the oldest may be new");
  t.is(step(107, 0, 11), 0, "idle");
  t.is(step(108, 1, 11), 0, "in flight again: issued some time after the idle sample");
  t.is(step(110, 1, 11), 2, "counted from the first sample that saw it in flight");
  t.is(step(50, 1, 11), 0, "the clock went back: start over");
});

test("the detector: slow then stall, once each, cleared with the duration; a new episode after", (t) => {
  const d = new StallDetector({ slow_seconds: 5, stall_seconds: 20 });
  t.deepEqual(d.update([{ key: "a", age_seconds: 1 }]), []);
  t.like(d.update([{ key: "a", age_seconds: 5 }])[0], { kind: "detected", level: "slow" });
  t.deepEqual(d.update([{ key: "a", age_seconds: 8 }]), [], "no news while still slow");
  t.like(d.update([{ key: "a", age_seconds: 21, detail: "fsync" }])[0], {
    kind: "detected",
    level: "stall",
    detail: "fsync",
  });
  t.deepEqual(d.update([{ key: "a", age_seconds: 25 }]), []);
  t.deepEqual(d.ongoing(), [{ key: "a", level: "stall", age_seconds: 25 }]);
  const [c] = d.update([]);
  t.like(c, { kind: "cleared", key: "a", level: "stall", duration_seconds: 25 });
  t.deepEqual(d.ongoing(), []);
  t.like(d.update([{ key: "a", age_seconds: 6 }])[0], { kind: "detected", level: "slow" });
  t.like(
    d.end("a", 7.5),
    { kind: "cleared", level: "slow", duration_seconds: 7.5 },
    "exact duration",
  );
  t.is(d.end("a"), null, "ended once");
  t.deepEqual(
    d.update([{ key: "b", age_seconds: 30 }]).map((x) => x.kind + x.level),
    ["detectedstall"],
    "first seen past both: one event, at stall",
  );
  t.deepEqual(
    d.update([
      { key: "b", age_seconds: 31 },
      { key: "c", age_seconds: 1 },
    ]),
    [],
    "below slow: never an episode",
  );
  t.like(d.update([])[0], { kind: "cleared", key: "b" }, "c, never slow, clears silently");
  // Younger than before under the same key: the stalled operation ended, another one began.
  t.like(d.update([{ key: "d", age_seconds: 22 }])[0], { kind: "detected", level: "stall" });
  const younger = d.update([{ key: "d", age_seconds: 0.3 }]);
  t.is(younger.length, 1);
  t.like(younger[0], { kind: "cleared", key: "d", level: "stall", duration_seconds: 22 });
  t.deepEqual(d.update([]), [], "the young one never was an episode");
  t.is(levelOf(4.99, DEFAULT_STALL_LIMITS), null);
  t.is(levelOf(5, DEFAULT_STALL_LIMITS), "slow");
  t.is(levelOf(20, DEFAULT_STALL_LIMITS), "stall");
});

test("any syscall line parses to one of the four states, never throws", (t) => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc
          .tuple(
            fc.oneof(fc.nat(1000).map(String), fc.constant("-1"), fc.string()),
            fc.array(
              fc.oneof(
                fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((b) => `0x${b.toString(16)}`),
                fc.string(),
              ),
              { maxLength: 10 },
            ),
          )
          .map(([nr, args]) => [nr, ...args].join(" ")),
      ),
      (line) => {
        const s = parseSyscall(line);
        if (s.state === "syscall") {
          t.is(s.args.length, 6);
          const w = writeCallOf(s, x64 as never);
          if (w !== null) t.true(Number.isSafeInteger(w.fd) && w.fd >= 0);
        }
        return ["running", "blocked", "syscall", "garbage"].includes(s.state);
      },
    ),
  );
  t.pass();
});

test("device ages: eBPF's exact age where it is larger, diskstats' lower bound otherwise; bad ages ignored", (t) => {
  const merged = withExact(
    [
      { device: "sda", age_seconds: 4 },
      { device: "sdb", age_seconds: 9 },
      { device: "sdc", age_seconds: 0 },
    ],
    [
      // A request stuck on a disk that keeps completing others: diskstats says 0.
      { device: "sdc", age_seconds: 30, op: "write" },
      { device: "sda", age_seconds: 6.5, op: "flush" },
      { device: "sdb", age_seconds: 2, op: "read" },
      { device: "sdd", age_seconds: Number.NaN, op: "read" },
      { device: "sde", age_seconds: -1, op: "read" },
    ],
  );
  t.deepEqual(
    merged.sort((a, b) => a.device.localeCompare(b.device)),
    [
      { device: "sda", age_seconds: 6.5, via: "ebpf", op: "flush" },
      { device: "sdb", age_seconds: 9, via: "diskstats" },
      { device: "sdc", age_seconds: 30, via: "ebpf", op: "write" },
    ],
  );
  t.deepEqual(withExact([{ device: "sda", age_seconds: 3 }], []), [
    { device: "sda", age_seconds: 3, via: "diskstats" },
  ]);
});

test("closed (a reload to another WAL directory, or turned off), stalls' sinks leave no series", async (t) => {
  const registry = new Registry();
  const obs = (devices: StallsObservation["devices"]): StallsObservation => ({
    db: { wal_dir: null, threads: [], unknown: null, processes: 0, tasks_scanned: 0 },
    devices,
  });
  const series = async () =>
    (await registry.metrics())
      .split("\n")
      .filter((l) => /^stemedb_agent_stall_(ongoing_seconds|unknown)\{/.test(l))
      .map((l) => l.replace(/ [^ ]+$/, ""));
  const a = stallsSinks(registry, quietLog, "/srv/old-wal", DEFAULT_STALL_LIMITS);
  a.observation.metrics?.(obs([{ device: "sdb", age_seconds: 7, via: "diskstats" }]));
  t.deepEqual(await series(), [
    'stemedb_agent_stall_ongoing_seconds{source="db",target="/srv/old-wal"}',
    'stemedb_agent_stall_ongoing_seconds{source="device",target="sdb"}',
    'stemedb_agent_stall_unknown{source="db"}',
  ]);
  a.close?.metrics?.(undefined);
  t.deepEqual(await series(), []);
  const b = stallsSinks(registry, quietLog, "/srv/wal", DEFAULT_STALL_LIMITS);
  b.observation.metrics?.(obs([]));
  t.deepEqual(await series(), [
    'stemedb_agent_stall_ongoing_seconds{source="db",target="/srv/wal"}',
    'stemedb_agent_stall_unknown{source="db"}',
  ]);
});

test("eBPF ages reach the stall detector while bio's last round is fresh: 3 of its intervals, 5 s at least", (t) => {
  const latest = new Latest<Observations>();
  const inflight = [{ device: "sda", op: "write" as const, age_seconds: 30 }];
  const bio = (tier: "ebpf" | "diskstats"): BioObservation => ({
    queue_time: false,
    interval_seconds: 1,
    histograms: [],
    units: [],
    inflight,
    counters: {
      unmatched: 0,
      dropped: 0,
      unattributed: 0,
      bad_lines: 0,
      bad_keys: 0,
      exits: 0,
      inflight_leaked: 0,
    },
    cgroups_truncated: false,
    ...(tier === "ebpf"
      ? { tier }
      : { tier, fallback: { kind: "starting" as const, reason: "test" } }),
  });
  t.deepEqual(bioInflight(latest, 10_000, 1_000), [], "no bio observation yet");
  latest.set("bio", bio("ebpf"), 10_000);
  t.deepEqual(bioInflight(latest, 14_000, 1_000), inflight);
  t.deepEqual(bioInflight(latest, 16_000, 1_000), [], "6 s old at a 1 s interval: stale");
  t.deepEqual(bioInflight(latest, 34_000, 10_000), inflight, "24 s old at a 10 s interval");
  t.deepEqual(bioInflight(latest, 41_000, 10_000), [], "31 s old at a 10 s interval: stale");
  latest.set("bio", bio("diskstats"), 10_000);
  t.deepEqual(bioInflight(latest, 10_500, 1_000), [], "the diskstats tier has no exact ages");
  t.deepEqual(bioInflight(null, 10_000, 1_000), [], "--once: no other collector's output");
});
