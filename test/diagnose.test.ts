// diagnose, pure: the five runbooks by file and alert, one by name, and the steps of
// replication-lag.md and api-error-rate.md from process, netstat and database observations fed
// directly (the collectors are someone else's; what diagnose makes of their types is tested here).
import test from "ava";
import { renderDiagnosis } from "../agent/cli/render.js";
import { buildAreas, type Latest } from "../agent/status/areas.js";
import type { BallastView } from "../remediators/ballast/view.js";
import { diagnose, stepOf } from "../agent/status/diagnose.js";
import { findRunbook, RUNBOOKS } from "../agent/status/runbooks.js";
import type { WriteTestOutcome } from "../agent/status/write-test.js";
import type { NetstatObservation } from "../collectors/netstat/observation.js";
import type { ProcessObservation } from "../collectors/process/observation.js";
import type { DbWalMetrics } from "../collectors/wal/dbmetrics.js";
import { loadConfig } from "../core/config/load.js";
import type { Config } from "../core/config/schema.js";

const cfg = (() => {
  const r = loadConfig({ env: {}, defaultFile: "/nonexistent" });
  if (!r.ok) throw new Error(r.problems.join("\n"));
  return r.loaded.config;
})();
const withMetrics: Config = {
  ...cfg,
  stemedb: { ...cfg.stemedb, metrics_url: "http://localhost:18180/metrics" },
};

function latest(obs: Record<string, unknown>): Latest {
  return {
    get: <T>(name: string) =>
      name in obs ? { at: Date.now(), observation: obs[name] as T } : undefined,
  };
}

const proc = (cores: number | null, busy: number | null, cpus = 4): ProcessObservation => ({
  interval_seconds: 5,
  processes: [
    {
      pid: 42,
      comm: "stemedb-api",
      unit: "stemedb-api.service",
      state: "R",
      cpu_cores: cores,
      rss_bytes: 2 * 1024 ** 3,
      threads: 48,
      open_fds: 300,
    },
  ],
  group: {
    count: 1,
    cpu_cores: cores,
    cpu_seconds: { user: 100, system: 20 },
    cpu_seconds_interval: null,
    rss_bytes: 2 * 1024 ** 3,
    threads: 48,
    threads_in_d: 2,
  },
  host: {
    cpus,
    busy_ratio: busy,
    iowait_ratio: 0.12,
    mem_total_bytes: 16 * 1024 ** 3,
    mem_available_bytes: 6 * 1024 ** 3,
  },
});

const net = (ratio: number | null, ifErrors: number | null = 0): NetstatObservation => ({
  interval_seconds: 5,
  tcp: {
    out_segs: 100_000,
    retrans_segs: 900,
    in_errs: 0,
    timeouts: 3,
    retrans_per_second: 12,
    retrans_ratio: ratio,
  },
  interfaces: [
    {
      name: "eth0",
      rx_bytes: 1,
      tx_bytes: 1,
      rx_errors: 120,
      tx_errors: 0,
      rx_dropped: 5,
      tx_dropped: 0,
      errors_per_second: ifErrors,
    },
  ],
});

const db = (m: Partial<DbWalMetrics>) => ({
  wal: {
    segments: {
      active: { count: 1, bytes: 1 },
      sealed: { count: 0, bytes: 0 },
      compressed: { count: 0, bytes: 0 },
    },
    active: null,
    findings: [],
    oldest_age_seconds: 0,
    database: {
      ok: true,
      quantiles: {},
      p99: null,
      count: null,
      errors: null,
      replication_lag_seconds: null,
      merkle_sync: {},
      storage_operation_errors: null,
      ...m,
    },
  },
});

test("five runbooks, in order, each by its file and alert; one by id, file or alert in any case", (t) => {
  const d = diagnose(cfg, latest({}), null);
  t.deepEqual(
    d.runbooks.map((r) => [r.runbook, r.file, r.alert]),
    [
      ["slow-fsync", "slow-fsync.md", "WALFsyncSlow"],
      ["replication-lag", "replication-lag.md", "ReplicationLagCritical"],
      ["wal-fsync-failure", "wal-fsync-failure.md", "WALFsyncFailure"],
      ["storage-errors", "storage-errors.md", "StorageErrors"],
      ["api-error-rate", "api-error-rate.md", "HighAPIErrorRate"],
    ],
  );
  for (const r of d.runbooks)
    t.deepEqual(
      r.steps.map((s) => s.n),
      r.steps.map((_, i) => i + 1),
    );
  for (const name of [
    "replication-lag",
    "Replication-Lag.MD",
    "replicationlagcritical",
    " replication-lag ",
  ])
    t.is(findRunbook(name)?.runbook, "replication-lag", name);
  for (const name of ["disk-full", "slow-wal-fsync", "", "replication"])
    t.is(findRunbook(name), null, name);
  const one = diagnose(cfg, latest({}), null, Date.now(), [], { only: ["api-error-rate"] });
  t.deepEqual(
    one.runbooks.map((r) => r.runbook),
    ["api-error-rate"],
  );
  t.is(RUNBOOKS.length, 5);
});

test("without process, netstat or the database's figures every step says what is missing, never OK", (t) => {
  const d = diagnose(cfg, latest({}), null);
  const rl = d.runbooks.find((r) => r.runbook === "replication-lag");
  const api = d.runbooks.find((r) => r.runbook === "api-error-rate");
  t.deepEqual(
    rl?.steps.map((s) => s.verdict),
    ["unknown", "unknown", "unknown", "info", "unknown"],
  );
  t.deepEqual(
    api?.steps.map((s) => s.verdict),
    ["unknown", "unknown", "unknown", "unknown", "info"],
  );
  t.is(
    stepOf(d, "replication-lag", 2)?.evidence,
    "no process samples (the process collector is off or starting)",
  );
  t.is(
    stepOf(d, "api-error-rate", 3)?.evidence,
    "no network samples (the netstat collector is off or starting)",
  );
  t.regex(stepOf(d, "replication-lag", 5)?.evidence ?? "", /^\[stemedb\] metrics_url is not set/);
  t.regex(stepOf(d, "api-error-rate", 4)?.evidence ?? "", /^\[stemedb\] metrics_url is not set/);
  t.is(d.verdict, "unknown", "nothing known is not ok");
  // Configured but not scraped yet, or failing: said as such.
  const failing = diagnose(
    withMetrics,
    latest({ wal: { ...db({}).wal, database: { ok: false, error: "ECONNREFUSED" } } }),
    null,
  );
  t.is(
    stepOf(failing, "replication-lag", 5)?.evidence,
    "http://localhost:18180/metrics: ECONNREFUSED",
  );
});

test("CPU: the database's share of the host's CPUs at db_cpu_warn is warn; a saturated host too, said apart", (t) => {
  const step = (p: ProcessObservation, c = cfg) =>
    stepOf(diagnose(c, latest({ process: p }), null), "replication-lag", 2);
  const fine = step(proc(1.2, 0.4));
  t.is(fine?.verdict, "ok");
  t.is(
    fine?.evidence,
    "1 database process uses 1.2 of 4 CPUs (30%); host 40% busy, 12% iowait; " +
      "48 threads (2 in D: waiting on storage); busiest stemedb-api[42] 1.2",
  );
  const db = step(proc(3.6, 0.95));
  t.is(db?.verdict, "warn");
  t.regex(db?.action ?? "", /^the database is CPU-bound/);
  const host = step(proc(0.4, 0.92));
  t.is(host?.verdict, "warn");
  t.regex(host?.action ?? "", /^the host is saturated by other processes/);
  t.is(step(proc(null, null))?.verdict, "unknown", "the first sample has no rates");
  t.is(
    step(proc(3.0, 0.8), { ...cfg, thresholds: { ...cfg.thresholds, db_cpu_warn: 70 } })?.verdict,
    "warn",
  );
  const api = stepOf(diagnose(cfg, latest({ process: proc(1, 0.3) }), null), "api-error-rate", 1);
  t.regex(api?.evidence ?? "", /RSS 2\.0 GiB, host 6\.0 GiB of 16\.0 GiB available/);
});

test("network: 1% retransmitted or an interface's errors rising is warn", (t) => {
  const step = (n: NetstatObservation) =>
    stepOf(diagnose(cfg, latest({ netstat: n }), null), "api-error-rate", 3);
  const fine = step(net(0.002));
  t.is(fine?.verdict, "ok");
  t.is(
    fine?.evidence,
    "TCP: 0.2% of segments sent were retransmitted (12.0/s), 3 timeouts since boot; " +
      "eth0: no errors or drops over the interval",
  );
  t.is(step(net(0.01))?.verdict, "warn");
  t.regex(step(net(0.01))?.action ?? "", /^packets are lost/);
  const iface = step(net(0, 2.5));
  t.is(iface?.verdict, "warn");
  t.regex(
    iface?.evidence ?? "",
    /eth0: 2\.5 errors\+drops\/s \(rx errors 120, dropped 5; tx errors 0, dropped 0\)$/,
  );
  t.regex(iface?.action ?? "", /^eth0 is dropping or corrupting packets/);
  t.is(step({ ...net(0), interval_seconds: null })?.verdict, "unknown");
});

test("the database's replication lag at the [thresholds] figures, with Merkle sync; its error counters", (t) => {
  const d = (m: Partial<DbWalMetrics>, obs: Record<string, unknown> = {}) =>
    diagnose(withMetrics, latest({ ...db(m), ...obs }), null);
  const lag = (s: number | null) =>
    stepOf(
      d({ replication_lag_seconds: s, merkle_sync: { pending_ranges: 3 } }),
      "replication-lag",
      5,
    );
  t.is(lag(9.9)?.verdict, "ok");
  t.is(
    lag(9.9)?.evidence,
    "stemedb_replication_lag_seconds 9.90 s (warn 10.00 s, crit 60.00 s); Merkle sync pending_ranges 3",
  );
  t.is(lag(10)?.verdict, "warn");
  t.is(lag(75)?.verdict, "crit");
  t.regex(
    lag(75)?.action ?? "",
    /^the steps above show a local cause/,
    "the local steps are unknown here",
  );
  t.is(lag(null)?.verdict, "unknown");
  t.regex(lag(null)?.evidence ?? "", /no stemedb_replication_lag_seconds/);
  const errs = (e: number | null, o: number | null) =>
    stepOf(d({ errors: e, storage_operation_errors: o }), "api-error-rate", 4);
  t.is(errs(0, 0)?.verdict, "ok");
  t.is(errs(0, 4)?.verdict, "crit");
  t.is(
    errs(2, null)?.evidence,
    "stemedb_wal_fsync_errors_total 2, stemedb_storage_operation_errors_total n/a (since the database started)",
  );
  t.is(errs(null, null)?.verdict, "unknown");
});

test("replication-lag step 4: how to run the write test, or its result next to the runbook's expectation", (t) => {
  const step = (w?: WriteTestOutcome) =>
    stepOf(
      diagnose(cfg, latest({}), null, Date.now(), [], w ? { writeTest: w } : {}),
      "replication-lag",
      4,
    );
  t.is(step()?.verdict, "info");
  t.is(
    step()?.evidence,
    "not measured: the test writes real data (up to 256.0 MiB of 1 MiB O_DIRECT writes on the WAL's filesystem, " +
      "outside the WAL directory, at most 30 s)",
  );
  const done = (
    bps: number,
    rotational: boolean | null,
    verdict: "ok" | "warn",
  ): WriteTestOutcome => ({
    state: "done",
    path: "/var/lib/stemedb/.stemedb-agent-write-test/test.dat",
    bytes: 256 * 2 ** 20,
    seconds: (256 * 2 ** 20) / bps,
    bytes_per_second: bps,
    writes: 256,
    p50_seconds: 0.004,
    p99_seconds: 0.021,
    max_seconds: 0.03,
    stopped_at_deadline: false,
    devices: ["sdb"],
    rotational,
    expected_bytes_per_second: rotational ? 50e6 : 100e6,
    verdict,
  });
  t.is(
    step(done(420e6, false, "ok"))?.evidence,
    "420 MB/s (256.0 MiB in 639 ms); per 1 MiB write p50 4.00 ms, p99 21 ms; expected over 100 MB/s for an SSD on sdb",
  );
  const slowHdd = step(done(30e6, true, "warn"));
  t.is(slowHdd?.verdict, "warn");
  t.regex(slowHdd?.evidence ?? "", /expected over 50 MB\/s for a rotational disk on sdb$/);
  t.regex(
    step(done(200e6, null, "ok"))?.evidence ?? "",
    /\(rotational flag not known: SSD figure\)/,
  );
  const skipped = step({
    state: "skipped",
    reason: "WAL fsync is already slow (crit): the test would add to the load",
  });
  t.is(skipped?.verdict, "info");
  t.is(
    skipped?.evidence,
    "not run: WAL fsync is already slow (crit): the test would add to the load",
  );
  t.is(step({ state: "failed", code: "EREFUSED", reason: "refuses O_DIRECT" })?.verdict, "unknown");
});

test("the text view: each runbook a heading with its file and alert, steps numbered", (t) => {
  const text = renderDiagnosis(
    diagnose(cfg, latest({}), null, Date.now(), [], { only: ["replication-lag"] }),
    { color: false },
  );
  t.regex(
    text,
    /^UNKNOWN replication-lag\.md \(alert ReplicationLagCritical\): high replication lag\n {2}UNKNOWN 1\. iostat/m,
  );
  t.regex(
    text,
    /^ {2}INFO {4}4\. WAL write performance \(dd bs=1M oflag=direct\)\n {10}not measured/m,
  );
  t.regex(text, /^ {10}-> as root: agentctl diagnose --active replication-lag$/m);
});

// ------------------------------------------------------------------ the emergency ballast

const ballastView = (over: Partial<BallastView> = {}): BallastView => ({
  state: "held",
  path: "/var/lib/stemedb/.stemedb-agent-ballast",
  bytes: 1024 ** 3,
  target_bytes: 1024 ** 3,
  released: null,
  refused: null,
  next: "held: 1073741824 bytes reserved",
  filesystem: { size_bytes: 100 * 1024 ** 3, used_ratio: 0.5, full_in_seconds: null },
  lines: {
    release_used_percent: 75,
    release_full_horizon_seconds: 48 * 3600,
    create_used_percent: 65,
    recreate_after_seconds: 3600,
  },
  ...over,
});
const ballastState = (mode: "off" | "dry-run" | "on", v: BallastView) => ({
  name: "ballast",
  mode,
  breaker_open: false,
  busy: null,
  last_decision: v.next,
  ballast: v,
});
const walMount = (used: number) => ({
  mounts: [
    {
      mountpoint: "/var/lib/stemedb",
      paths: [{ path: "/var/lib/stemedb/wal", role: "wal", exists: true }],
      source: "/dev/sdb1",
      fs_type: "xfs",
      options: ["rw"],
      findings: [],
      read_only: false,
      space: {
        size_bytes: 100,
        free_bytes: 100 - used,
        avail_bytes: 100 - used,
        used_bytes: used,
        used_ratio: used / 100,
        files: 10,
        files_free: 5,
      },
      fill_bytes_per_second: null,
      full_in_seconds: Infinity,
      error: null,
    },
  ],
});

test("storage-errors step 4, the emergency ballast: what is held; on a full disk, the command that frees it", (t) => {
  const step = (used: number, mode: "off" | "dry-run" | "on", v: BallastView) =>
    stepOf(
      diagnose(cfg, latest({ mounts: walMount(used) }), null, Date.now(), [ballastState(mode, v)]),
      "storage-errors",
      4,
    );
  const calm = step(50, "on", ballastView());
  t.is(calm?.step, "the emergency ballast");
  t.is(calm?.verdict, "ok");
  t.regex(
    calm?.evidence ?? "",
    new RegExp(
      String.raw`^1\.0 GiB held at /var/lib/stemedb/\.stemedb-agent-ballast ` +
        String.raw`\(ballast on; given back at 75% used or full within 48 h\)$`,
    ),
  );
  t.is(calm?.action, null);
  const full = step(96, "dry-run", ballastView());
  t.is(full?.verdict, "warn");
  t.regex(full?.evidence ?? "", /ballast dry-run; the agent does not give it back/);
  t.is(full?.action, "agentctl ballast release (root) frees 1.0 GiB at once");
  const given = step(
    80,
    "on",
    ballastView({
      state: "released",
      bytes: 0,
      released: { at: "2026-12-03T03:12:00.000Z", by: "agent", reason: "filesystem 75.2% used" },
    }),
  );
  t.is(given?.verdict, "ok");
  t.regex(
    given?.evidence ?? "",
    /^given back by agent at 2026-12-03T03:12:00Z \(filesystem 75\.2% used\); none held now$/,
  );
  const none = step(
    50,
    "on",
    ballastView({ state: "refused", bytes: 0, refused: "the WAL's filesystem is tmpfs" }),
  );
  t.is(none?.verdict, "info");
  t.is(stepOf(diagnose(cfg, latest({}), null), "storage-errors", 4)?.verdict, "unknown");
  t.is(
    stepOf(diagnose(cfg, latest({}), null), "storage-errors", 5)?.step,
    "ls wal/: what can be compressed",
  );
  // status: the ballast's own line
  const area = (mode: "off" | "dry-run" | "on", v: BallastView) =>
    buildAreas(cfg, latest({}), null, { verdict: "healthy", reasons: [] }, Date.now(), [
      ballastState(mode, v),
    ]).find((a) => a.area === "ballast");
  t.like(area("on", ballastView()), {
    verdict: "ok",
    summary:
      "1.0 GiB held at /var/lib/stemedb/.stemedb-agent-ballast, given back at 75% used or full within 48 h",
  });
  t.like(
    area(
      "on",
      ballastView({
        state: "released",
        bytes: 0,
        released: { at: "2026-12-03T03:12:00.000Z", by: "operator", reason: "an operator asked" },
      }),
    ),
    {
      verdict: "warn",
      summary:
        "given back by operator at 03:12Z (an operator asked); taken again after 1 h of space back",
    },
  );
  t.like(area("on", ballastView({ state: "refused", bytes: 0, refused: "tmpfs" })), {
    verdict: "warn",
    summary: "cannot be kept: tmpfs",
  });
  t.like(area("dry-run", ballastView({ state: "refused", bytes: 0, refused: "tmpfs" })), {
    verdict: "ok",
  });
});
