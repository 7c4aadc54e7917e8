import { spawn, spawnSync } from "node:child_process";
import {
  appendFileSync,
  chmodSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import test from "ava";
import { Registry } from "prom-client";
import { WalCollector } from "../collectors/wal/collector.js";
import { walSinks } from "../collectors/wal/sink.js";
import { usedHistory } from "../collectors/mounts/sink.js";
import type { WalObservation } from "../collectors/wal/observation.js";
import { DB_METRICS_MAX_BYTES, parseDbMetrics } from "../collectors/wal/dbmetrics.js";
import {
  AGENT_BIN,
  fetchText,
  hasCommand,
  isRoot,
  QUIET_COLLECTORS,
  startAgent,
  tempDir,
} from "./helpers/agent-process.js";
import { quietLog, routed, sleep } from "./helpers/quiet.js";
import { until } from "./helpers/prometheus-server.js";
import { COLLECTOR_JUDGE } from "../judge/index.js";

const seg = (i: number) => `segment.${String(i).padStart(4, "0")}.wal`;

function walDir(n: number, size = 4096): string {
  const { dir } = tempDir();
  const wal = join(dir, "wal");
  mkdirSync(wal);
  for (let i = 1; i <= n; i++) writeFileSync(join(wal, seg(i)), Buffer.alloc(size, i % 251));
  return wal;
}

function collector(
  dir: string,
  extra: Partial<{
    rescanMs: number;
    stallAfterMs: number;
    verifyCommand: string;
    dbMetricsUrl: string;
  }> = {},
) {
  const registry = new Registry();
  const { col, once } = routed(
    walSinks(registry, quietLog, dir, COLLECTOR_JUDGE),
    null,
    () =>
      new WalCollector({
        dir,
        pattern: "segment.*.wal",
        rescanMs: extra.rescanMs ?? 0,
        stallAfterMs: extra.stallAfterMs ?? 3_600_000,
        expectedSegmentSize: 0,
        verifyCommand: extra.verifyCommand ?? "",
        checkCompressed: true,
        dbMetricsUrl: extra.dbMetricsUrl ?? "",
        service: "stemedb-api.service",
        procPath: "/proc",
        usedHistory: usedHistory(null),
        log: quietLog,
        judge: COLLECTOR_JUDGE,
      }),
  );
  return { col, registry, once };
}

const kinds = (o: WalObservation) => o.findings.map((f) => f.kind).sort();

test("a directory with a few hundred segments is inventoried by state, with ages and sizes", async (t) => {
  const dir = walDir(300);
  for (const i of [1, 2, 3]) {
    writeFileSync(join(dir, `${seg(i)}.gz`), gzipSync(readFileSync(join(dir, seg(i)))));
    unlinkSync(join(dir, seg(i)));
  }
  const { once, registry, col } = collector(dir);
  t.teardown(() => col.close());
  const o = await once();
  t.deepEqual(o.segments, {
    active: { count: 1, bytes: 4096 },
    sealed: { count: 296, bytes: 296 * 4096 },
    compressed: { count: 3, bytes: o.segments.compressed.bytes },
  });
  t.is(o.active?.name, seg(300));
  t.deepEqual(o.findings, []);
  t.is(o.expected_segment_size, 4096);
  const text = await registry.metrics();
  t.regex(text, /stemedb_agent_wal_segments\{state="sealed"\} 296/);
  t.regex(text, /stemedb_agent_wal_problems\{kind="gap"\} 0/);
});

test("each finding is produced for real and clears when fixed", async (t) => {
  const dir = walDir(40);
  // A symlink named like a compressed segment, to a valid gzip outside the directory: followed,
  // it would be counted (and stream-checked) as a segment.
  const outside = join(dir, "..", "outside-target.gz");
  writeFileSync(outside, gzipSync(Buffer.alloc(4096)));
  const { once, col } = collector(dir);
  t.teardown(() => col.close());
  t.deepEqual(kinds(await once()), []);

  renameSync(join(dir, seg(10)), join(dir, "moved-away"));
  writeFileSync(join(dir, `${seg(11)}.gz`), gzipSync(readFileSync(join(dir, seg(11)))));
  writeFileSync(join(dir, seg(12)), "");
  writeFileSync(join(dir, seg(13)), "short");
  chmodSync(join(dir, seg(14)), 0o666);
  symlinkSync(outside, join(dir, `${seg(41)}.gz`));
  mkdirSync(join(dir, seg(42)));
  writeFileSync(join(dir, `${seg(5)}.gz`), "this is not gzip data");
  unlinkSync(join(dir, seg(5)));
  await once(); // starts the background gzip check
  await sleep(100);
  const o = await once();
  t.deepEqual(kinds(o), [
    "corrupt_gz",
    "gap",
    "not_regular",
    "plain_and_compressed",
    "symlink",
    "truncated",
    "wrong_owner_or_mode",
    "zero_length",
  ]);
  const files = (k: string) => o.findings.find((f) => f.kind === k)?.files;
  t.deepEqual(files("gap"), ["#10"]);
  t.deepEqual(files("plain_and_compressed"), [seg(11)]);
  t.deepEqual(files("zero_length"), [seg(12)]);
  t.deepEqual(files("truncated"), [seg(13)]);
  t.deepEqual(files("wrong_owner_or_mode"), [seg(14)]);
  t.deepEqual(files("symlink"), [`${seg(41)}.gz`]);
  t.deepEqual(files("corrupt_gz"), [`${seg(5)}.gz`]);
  t.is(
    o.active?.name,
    seg(40),
    "a symlink or directory with a higher number is never the active segment",
  );
  const realGz = [`${seg(5)}.gz`, `${seg(11)}.gz`].map((n) => statSync(join(dir, n)).size);
  t.deepEqual(
    o.segments.compressed,
    { count: 2, bytes: (realGz[0] ?? 0) + (realGz[1] ?? 0) },
    "the symlinked .gz is not counted as a segment",
  );

  renameSync(join(dir, "moved-away"), join(dir, seg(10)));
  unlinkSync(join(dir, `${seg(11)}.gz`));
  writeFileSync(join(dir, seg(12)), Buffer.alloc(4096));
  writeFileSync(join(dir, seg(13)), Buffer.alloc(4096));
  chmodSync(join(dir, seg(14)), statSync(join(dir, seg(15))).mode & 0o777);
  unlinkSync(join(dir, `${seg(41)}.gz`));
  rmSync(join(dir, seg(42)), { recursive: true });
  writeFileSync(join(dir, `${seg(5)}.gz`), gzipSync(Buffer.alloc(4096, 5)));
  await once();
  await sleep(100);
  t.deepEqual(kinds(await once()), [], "every finding cleared");
});

test("the directory disappearing and coming back", async (t) => {
  const dir = walDir(5);
  const { once, col } = collector(dir);
  t.teardown(() => col.close());
  await once();
  renameSync(dir, `${dir}.away`);
  const gone = await once();
  t.deepEqual(kinds(gone), ["dir_missing"]);
  t.is(gone.segments.sealed.count, 0);
  renameSync(`${dir}.away`, dir);
  const back = await once();
  t.deepEqual(kinds(back), []);
  t.is(back.segments.sealed.count, 4);
});

test("a stalled WAL: the active segment not written while a stemedb process is alive", async (t) => {
  const dir = walDir(5);
  const old = Date.now() / 1000 - 600;
  spawnSync("touch", ["-d", `@${old}`, join(dir, seg(5))]);
  // stall_after 1 s: the process walk is then repeated at most every 250 ms.
  const { once, col } = collector(dir, { stallAfterMs: 1000 });
  t.teardown(() => col.close());
  t.deepEqual(kinds(await once()), [], "no database process: stopped, not stalled");
  const bin = join(dir, "..", "stemedb");
  copyFileSync("/bin/sleep", bin);
  chmodSync(bin, 0o755);
  const db = spawn(bin, ["30"], { stdio: "ignore" });
  t.teardown(() => db.kill("SIGKILL"));
  await sleep(300); // past the 250 ms the last walk's answer is kept
  const o = await once();
  t.deepEqual(kinds(o), ["stalled"]);
  t.true((o.active?.write_age_seconds ?? 0) >= 600);
  writeFileSync(join(dir, seg(5)), Buffer.alloc(8192)); // the database writes again
  t.deepEqual(kinds(await once()), []);
});

test(
  "a name changing in the directory triggers a rescan before the interval, " +
    "a write into a segment does not; rotations and write rate are measured",
  async (t) => {
    const dir = walDir(3);
    const { once, col, registry } = collector(dir, { rescanMs: 3_600_000 });
    t.teardown(() => col.close());
    t.true((await once()).scanned);
    await sleep(1100); // the directory's mtime is now older than the coarse-clock guard
    t.true((await once()).scanned, "one more rescan while the first stamp was young");
    t.false((await once()).scanned, "nothing changed: no rescan");
    appendFileSync(join(dir, seg(3)), Buffer.alloc(100_000)); // the database writes
    t.false((await once()).scanned, "a write into a segment is no reason to rescan");
    writeFileSync(join(dir, seg(4)), Buffer.alloc(50_000));
    writeFileSync(join(dir, seg(5)), Buffer.alloc(1000));
    await sleep(50); // a rate needs time between two ticks (CI ran them within one millisecond)
    const o = await once();
    t.true(o.scanned, "rescanned because names changed, long before the hour");
    t.is(o.active?.name, seg(5));
    t.true((o.active?.bytes_per_second ?? 0) > 0);
    t.regex(await registry.metrics(), /stemedb_agent_wal_rotations_total 2/);
  },
);

test("the optional verifier runs once per sealed segment and its rejections are findings", async (t) => {
  const dir = walDir(4);
  const script = join(dir, "..", "verify.sh");
  // The segment comes open on stdin ({} is /dev/stdin), its name in STEMEDB_WAL_SEGMENT.
  writeFileSync(
    script,
    `#!/bin/sh\n[ "$1" = /dev/stdin ] && [ "$(wc -c < "$1")" -gt 0 ] || exit 9\n` +
      `echo "$STEMEDB_WAL_SEGMENT" >> ${join(dir, "..", "verified.log")}\n` +
      `case "$STEMEDB_WAL_SEGMENT" in *0002.wal) exit 3;; esac\nexit 0\n`,
  );
  chmodSync(script, 0o755);
  const { once, col } = collector(dir, { verifyCommand: `${script} {}` });
  t.teardown(() => col.close());
  let o = await once();
  for (let i = 0; i < 30 && !kinds(o).includes("verify_failed"); i++) {
    await sleep(100);
    o = await once();
  }
  for (let i = 0; i < 10; i++) {
    await sleep(100);
    o = await once();
  }
  t.deepEqual(o.findings.find((f) => f.kind === "verify_failed")?.files, [seg(2)]);
  const log = readFileSync(join(dir, "..", "verified.log"), "utf8")
    .trim()
    .split("\n");
  t.deepEqual(
    [...log].sort(),
    [1, 2, 3].map((i) => seg(i)),
    "each sealed segment once, never the active one",
  );
});

test(
  "the database's own WAL fsync view is scraped from a real HTTP endpoint; " +
    "a dead endpoint is a finding, not a crash",
  async (t) => {
    const body = [
      "# HELP stemedb_wal_fsync_duration_seconds WAL fsync latency.",
      "# TYPE stemedb_wal_fsync_duration_seconds summary",
      'stemedb_wal_fsync_duration_seconds{quantile="0.5"} 0.0021',
      'stemedb_wal_fsync_duration_seconds{quantile="0.99"} 0.142',
      "stemedb_wal_fsync_duration_seconds_sum 48.2",
      "stemedb_wal_fsync_duration_seconds_count 12000",
      "# TYPE stemedb_wal_fsync_errors_total counter",
      "stemedb_wal_fsync_errors_total 3",
      "# TYPE stemedb_replication_lag_seconds gauge",
      'stemedb_replication_lag_seconds{peer="db-2"} 1.5',
      'stemedb_replication_lag_seconds{peer="db-3"} 42.25',
      "# TYPE stemedb_merkle_sync_rounds_total counter",
      'stemedb_merkle_sync_rounds_total{peer="db-2",outcome="ok"} 10',
      'stemedb_merkle_sync_rounds_total{peer="db-3",outcome="failed"} 4',
      'stemedb_merkle_sync_pending_ranges{peer="db-2"} 7',
      'stemedb_merkle_sync_pending_ranges{peer="db-3"} 19',
      'stemedb_storage_operation_errors_total{op="read"} 2',
      'stemedb_storage_operation_errors_total{op="write"} 5',
      "",
    ].join("\n");
    const srv = createServer((_, res) =>
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(body),
    );
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
    t.teardown(() => srv.close());
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/metrics`;
    const dir = walDir(3);
    const { once, col, registry } = collector(dir, { dbMetricsUrl: url });
    t.teardown(() => col.close());
    const o = await once();
    t.like(o.database, {
      ok: true,
      p99: 0.142,
      errors: 3,
      count: 12000,
      replication_lag_seconds: 42.25,
      merkle_sync: { rounds_total: 14, pending_ranges: 19 },
      storage_operation_errors: 7,
    });
    t.regex(await registry.metrics(), /stemedb_agent_db_wal_fsync_p99_seconds 0\.142/);
    const rows = [
      ...(walSinks(new Registry(), quietLog, dir, COLLECTOR_JUDGE).observation.history?.(o) ?? []),
    ];
    t.like(
      rows.find((r) => "series" in r && r.series === "db_replication_lag_seconds"),
      { value: 42.25 },
    );
    const dead = collector(dir, { dbMetricsUrl: "http://127.0.0.1:1/metrics" });
    t.teardown(() => dead.col.close());
    const d = await dead.once();
    t.like(d.database, { ok: false });
    t.deepEqual(kinds(d), ["db_metrics_unreachable"]);
    t.regex((d.database as { error: string }).error, /127\.0\.0\.1:1/);
  },
);

test("a histogram exposition gives p99 as the upper bound of its bucket", (t) => {
  const text = [
    'stemedb_wal_fsync_duration_seconds_bucket{le="0.001"} 10',
    'stemedb_wal_fsync_duration_seconds_bucket{le="0.01"} 90',
    'stemedb_wal_fsync_duration_seconds_bucket{le="0.1"} 99',
    'stemedb_wal_fsync_duration_seconds_bucket{le="1"} 100',
    'stemedb_wal_fsync_duration_seconds_bucket{le="+Inf"} 100',
    "garbage {{{",
  ].join("\n");
  t.is(parseDbMetrics(text).p99, 0.1);
  t.deepEqual(parseDbMetrics(""), {
    quantiles: {},
    p99: null,
    count: null,
    errors: null,
    replication_lag_seconds: null,
    merkle_sync: {},
    storage_operation_errors: null,
  });
});

test(
  "an endpoint whose body never ends is read up to its bound and cancelled: " +
    "the figures before the cut count, the line cut in two does not",
  async (t) => {
    const head = "stemedb_replication_lag_seconds 3\nstemedb_storage_operation_errors_total 1\n";
    // Each line adds 1 to the storage errors; the line cut at the bound must not add a partial figure.
    const line = "stemedb_storage_operation_errors_total 1\n";
    let sent = 0;
    let closed = false;
    const srv = createServer((_, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      const chunk = line.repeat(4096);
      const more = () => {
        while (!closed) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", more);
        }
      };
      res.on("close", () => (closed = true));
      res.write(head);
      sent += head.length;
      more();
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
    t.teardown(() => srv.close());
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/metrics`;
    const dir = walDir(3);
    const { once, col } = collector(dir, { dbMetricsUrl: url });
    t.teardown(() => col.close());
    const o = await once();
    t.like(o.database, { ok: true, replication_lag_seconds: 3 });
    const errors = (o.database as { storage_operation_errors: number }).storage_operation_errors;
    // Whole lines only, all within the bound: 1 + the complete repeated lines before it.
    t.is(errors, 1 + Math.floor((DB_METRICS_MAX_BYTES - head.length) / line.length));
    await until(
      "the server sees the agent hang up",
      () => Promise.resolve(closed ? true : undefined),
      10_000,
    );
    t.true(sent < 64 * DB_METRICS_MAX_BYTES, `${sent} bytes sent before the agent hung up`);
  },
);

test("through the running agent: a WAL directory of a few hundred segments on /metrics", async (t) => {
  const dir = walDir(300);
  unlinkSync(join(dir, seg(77)));
  const a = await startAgent({
    extraToml:
      `[wal]\ndir = "${dir}"\n[collectors.diskstats]\nenabled = false\n[collectors.smart]\n` +
      `enabled = false\n[collectors.procio]\nenabled = false\n[collectors.kmsg]\nenabled = false\n`,
  });
  t.teardown(() => a.stop("SIGKILL"));
  let text = "";
  for (let i = 0; i < 50 && !/stemedb_agent_wal_segments\{state="sealed"\} 298/.test(text); i++) {
    await sleep(100);
    text = (await fetchText(`${a.url}/metrics`)).text;
  }
  t.regex(text, /stemedb_agent_wal_segments\{state="sealed"\} 298/);
  t.regex(text, /stemedb_agent_wal_segments\{state="active"\} 1/);
  t.regex(text, /stemedb_agent_wal_problems\{kind="gap"\} 1/);
});

test("permission errors: run as nobody, an unlistable WAL directory and unreadable segments are findings", (t) => {
  if (!isRoot || !hasCommand("runuser"))
    return t.pass("skipped: needs root and runuser to run the agent as nobody");
  const { dir } = tempDir();
  chmodSync(dir, 0o755);
  const open = join(dir, "wal-open");
  const closed = join(dir, "wal-closed");
  for (const d of [open, closed]) {
    mkdirSync(d, { mode: 0o755 });
    for (let i = 1; i <= 4; i++)
      writeFileSync(join(d, seg(i)), Buffer.alloc(4096), { mode: 0o644 });
  }
  chmodSync(join(open, seg(2)), 0o600); // nobody may not read this one
  chmodSync(closed, 0o700); // nor list this directory
  const run = (wal: string) => {
    const cfg = join(dir, `agent-${wal.endsWith("open") ? "a" : "b"}.toml`);
    writeFileSync(
      cfg,
      `[wal]\ndir = "${wal}"\n${QUIET_COLLECTORS.replace("[collectors.wal]\nenabled = false\n", "")}`,
    );
    chmodSync(cfg, 0o644);
    const r = spawnSync(
      "runuser",
      ["-u", "nobody", "--", process.execPath, AGENT_BIN, "--once", "--config", cfg],
      { encoding: "utf8", timeout: 30_000 },
    );
    return JSON.parse(r.stdout) as { wal: { observation: WalObservation } };
  };
  const a = run(open).wal.observation;
  t.deepEqual(
    a.findings.filter((f) => f.kind !== "wrong_owner_or_mode").map((f) => [f.kind, f.files]),
    [["unreadable", [seg(2)]]],
  );
  const b = run(closed).wal.observation;
  t.deepEqual(
    b.findings.map((f) => f.kind),
    ["dir_missing"],
  );
  t.regex(b.findings[0]?.message ?? "", /does not exist or cannot be listed/);
});
