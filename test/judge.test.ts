// The judge: its decisions at the boundaries, the README's threshold tables and the alert rules
// against THRESHOLDS, and status and diagnose giving the same number the same verdict.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { buildAreas, type Latest } from "../agent/status/areas.js";
import { diagnose, stepOf } from "../agent/status/diagnose.js";
import type { FindingKind } from "../collectors/wal/inventory.js";
import { loadConfig } from "../core/config/load.js";
import { ms } from "../core/config/units.js";
import { DEFAULT_STALL_LIMITS, stallLimits } from "../core/stalls.js";
import type { Config } from "../core/config/schema.js";
import {
  COLLECTOR_JUDGE,
  diskLimits,
  fsyncLimits,
  fsyncSlow,
  heavyCompetitor,
  hostLimits,
  isStemedbDatabase,
  judgeCpu,
  judgeNetwork,
  judgeReplicationLag,
  judgeWriteTest,
  lagLimits,
  writeTestBlocked,
  isStemedbProcess,
  judgeCompeting,
  judgeDisk,
  judgeFilesystem,
  judgeFsync,
  judgeInFlight,
  judgeProbeFailure,
  judgeSmart,
  judgeWalFindings,
  kernelVerdict,
  THRESHOLDS,
  WAL_FINDING_SEVERITY,
  walFilesystemFilling,
  walFindingSeverity,
  verdictSeverity,
  worst,
} from "../judge/index.js";

const README = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const RULES = readFileSync(
  new URL("../../monitoring/stemedb-agent.rules.yml", import.meta.url),
  "utf8",
);

const cfg = (() => {
  const r = loadConfig({ env: {}, defaultFile: "/nonexistent" });
  if (!r.ok) throw new Error(r.problems.join("\n"));
  return r.loaded.config;
})();

/** The default config with the judge's fsync figures changed (milliseconds, as config holds them). */
const withFsync = (critMs: number, warnMs: number): Config => ({
  ...cfg,
  thresholds: { ...cfg.thresholds, fsync_p99_crit: ms(critMs), fsync_p99_warn: ms(warnMs) },
});

/** The default config with only backup_pause's own fsync figures changed. */
const withBackupPause = (thresholdMs: number, resumeBelowMs: number): Config => ({
  ...cfg,
  remediators: {
    ...cfg.remediators,
    backup_pause: {
      ...cfg.remediators.backup_pause,
      fsync_p99_threshold: ms(thresholdMs),
      resume_below: ms(resumeBelowMs),
    },
  },
});

/** Problems loadConfig finds in this TOML text. */
function problemsFor(toml: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), "sa-judge-"));
  try {
    writeFileSync(join(dir, "agent.toml"), toml);
    const r = loadConfig({ file: join(dir, "agent.toml"), env: {}, defaultFile: "/nonexistent" });
    return r.ok ? [] : r.problems;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function latest(obs: Record<string, unknown>): Latest {
  return {
    get: <T>(name: string) =>
      name in obs ? { at: Date.now(), observation: obs[name] as T } : undefined,
  };
}

/** The rows of the markdown table whose header row starts with `| ${first} |`. */
function table(first: string): string[][] {
  const start = README.indexOf(`\n| ${first} |`);
  if (start < 0) throw new Error(`no README table headed "${first}"`);
  const rows: string[][] = [];
  for (const line of README.slice(start + 1).split("\n")) {
    if (!line.startsWith("|")) break;
    rows.push(
      line
        .slice(1, -1)
        .split("|")
        .map((c) => c.trim()),
    );
  }
  return rows.slice(2); // header and separator
}

/** "20 ms" -> 0.02 s, "90%" -> 0.9 (or 90 with pct), "1 d" / "6 h" -> seconds, "10 MiB/s" -> bytes/s. */
function figures(cell: string): number[] {
  const unit: Record<string, number> = {
    ms: 0.001,
    s: 1,
    min: 60,
    h: 3600,
    d: 86_400,
    "MiB/s": 1024 * 1024,
    "MB/s": 1e6,
    "%": 0.01,
  };
  return [...cell.matchAll(/(\d+(?:\.\d+)?)\s*(ms|s|min|h|d|MiB\/s|MB\/s|%)(?![\w/])/g)].map(
    (m) => Number(m[1]) * (unit[m[2] as string] as number),
  );
}

const approx = (a: number, b: number) => Math.abs(a - b) < 1e-9 * Math.max(1, Math.abs(b));

test("README: every figure in the status/diagnose threshold table is the judge's", (t) => {
  const rows = new Map(table("measure").map((r) => [r[0] ?? "", r]));
  const T = THRESHOLDS;
  const expect: Record<string, { warn: number[]; crit: number[] }> = {
    "disk write-await p99": {
      warn: [T.disk.await_warn_seconds],
      crit: [T.disk.await_crit_seconds],
    },
    "disk flush-await p99": { warn: [], crit: [T.disk.await_crit_seconds] },
    "disk %util": { warn: [T.disk.util_warn_pct / 100], crit: [] },
    "WAL fsync p99 (probe, database's own)": {
      warn: [T.fsync.p99_warn_seconds],
      crit: [T.fsync.p99_crit_seconds],
    },
    "an operation in flight (probe, history write, database WAL write, device request)": {
      warn: [T.stall.slow_seconds],
      crit: [T.stall.stall_seconds],
    },
    "filesystem used": {
      warn: [T.filesystem.used_warn_ratio],
      crit: [T.filesystem.used_crit_ratio],
    },
    "filesystem full at the recent rate": {
      warn: [T.filesystem.full_warn_seconds],
      crit: [T.filesystem.full_crit_seconds],
    },
    "WAL filesystem (`filesystem_filling` finding)": {
      warn: [T.wal_filling.used_ratio, T.wal_filling.full_seconds],
      crit: [],
    },
    "competing I/O, a process not StemeDB's": {
      warn: [T.competing_io.heavy_bytes_per_second],
      crit: [],
    },
    "CPU: the database's share of all CPUs, or the host busy": {
      warn: [T.cpu.warn_ratio],
      crit: [],
    },
    "TCP segments sent that were retransmitted": { warn: [T.network.retrans_warn_ratio], crit: [] },
    "interface errors and drops": { warn: [], crit: [] },
    "replication lag (the database's own)": {
      warn: [T.replication_lag.warn_seconds],
      crit: [T.replication_lag.crit_seconds],
    },
    "the database's WAL fsync or storage operation errors": { warn: [], crit: [] },
    "WAL write test (`diagnose --active`)": {
      warn: [T.write_test.ssd_bytes_per_second, T.write_test.rotational_bytes_per_second],
      crit: [],
    },
  };
  t.deepEqual([...rows.keys()].sort(), Object.keys(expect).sort(), "the table's rows");
  for (const [measure, want] of Object.entries(expect)) {
    const row = rows.get(measure) ?? [];
    for (const [col, cell] of [
      ["warn", row[1] ?? ""],
      ["crit", row[2] ?? ""],
    ] as const) {
      const got = figures(cell);
      t.is(got.length, want[col].length, `${measure} ${col}: "${cell}"`);
      want[col].forEach((w, i) =>
        t.true(approx(got[i] ?? NaN, w), `${measure} ${col}: "${cell}" says ${got[i]}, judge ${w}`),
      );
    }
  }
  // Tunable figures: the row names the keys the judge reads.
  const names = (measure: string, warn: string | null, crit: string | null) => {
    const row = rows.get(measure) ?? [];
    if (warn !== null) t.true(row[1]?.includes(`\`${warn}\``), `${measure} names ${warn}`);
    if (crit !== null) t.true(row[2]?.includes(`\`${crit}\``), `${measure} names ${crit}`);
  };
  names("WAL fsync p99 (probe, database's own)", T.fsync.warn_config_key, T.fsync.crit_config_key);
  names("disk write-await p99", T.disk.await_warn_config_key, T.disk.await_crit_config_key);
  names("disk flush-await p99", null, T.disk.await_crit_config_key);
  names("disk %util", T.disk.util_warn_config_key, null);
  names(
    "an operation in flight (probe, history write, database WAL write, device request)",
    T.stall.slow_config_key,
    T.stall.stall_config_key,
  );
  names("CPU: the database's share of all CPUs, or the host busy", T.cpu.warn_config_key, null);
  names("TCP segments sent that were retransmitted", T.network.retrans_warn_config_key, null);
  names(
    "replication lag (the database's own)",
    T.replication_lag.warn_config_key,
    T.replication_lag.crit_config_key,
  );
});

test("the alert rules of issue 19 use the judge's CPU and retransmit figures, when present", (t) => {
  // Written by the process/netstat work; until merged, only the defaults are checked here.
  for (const [alert, figure] of [
    ["StemeDBProcessCPUSaturated", THRESHOLDS.cpu.warn_ratio],
    ["TCPRetransmitsHigh", THRESHOLDS.network.retrans_warn_ratio],
  ] as const) {
    if (!RULES.includes(`- alert: ${alert}\n`)) continue;
    t.regex(alertExpr(alert), new RegExp(`>=? ${String(figure).replace(".", "\\.")}\\b`), alert);
  }
  t.deepEqual(hostLimits(cfg), { cpu_warn_ratio: 0.9, retrans_warn_ratio: 0.01 });
  t.deepEqual(lagLimits(cfg), { warn: 10, crit: 60 });
  t.deepEqual(
    stallLimits(cfg),
    { slow_seconds: THRESHOLDS.stall.slow_seconds, stall_seconds: THRESHOLDS.stall.stall_seconds },
    "[stalls] defaults are the judge's",
  );
  t.deepEqual(DEFAULT_STALL_LIMITS, stallLimits(cfg));
  for (const [alert, figure] of [
    ["StemeDBStorageSlow", THRESHOLDS.stall.slow_seconds],
    ["StemeDBStorageStalled", THRESHOLDS.stall.stall_seconds],
  ] as const)
    t.regex(alertExpr(alert), new RegExp(`>= ${figure}\\b`), alert);
  t.is(judgeInFlight(4.99, stallLimits(cfg)), "ok");
  t.is(judgeInFlight(5, stallLimits(cfg)), "warn");
  t.is(judgeInFlight(20, stallLimits(cfg)), "crit");
});

test("CPU, network, replication lag and the write test: the boundaries", (t) => {
  const l = hostLimits(cfg);
  t.is(judgeCpu(null, null, l), "unknown", "no second sample yet");
  t.is(judgeCpu(0.899, 0.5, l), "ok");
  t.is(judgeCpu(0.9, null, l), "warn", "the database uses 90% of all CPUs");
  t.is(judgeCpu(0.1, 0.9, l), "warn", "the host is saturated by others");
  t.is(judgeNetwork(null, [], l), "ok", "nothing sent");
  t.is(judgeNetwork(0.0099, [0, 0], l), "ok");
  t.is(judgeNetwork(0.01, [], l), "warn");
  t.is(judgeNetwork(0, [0, 0.2], l), "warn", "an interface's errors rising");
  const lag = lagLimits(cfg);
  t.is(judgeReplicationLag(9.99, lag), "ok");
  t.is(judgeReplicationLag(10, lag), "warn");
  t.is(judgeReplicationLag(60, lag), "crit");
  t.is(judgeWriteTest(100e6, false), "ok");
  t.is(judgeWriteTest(99e6, false), "warn");
  t.is(judgeWriteTest(60e6, true), "ok", "rotational: 50 MB/s");
  const room = { size: 256 * 2 ** 20, reserve: 2 ** 30, avail_bytes: 2 ** 40 };
  t.is(writeTestBlocked(room, "ok", "ok"), null);
  t.is(writeTestBlocked(room, "unknown", "unknown"), null, "not known is no reason to refuse");
  t.regex(writeTestBlocked(room, "ok", "warn") ?? "", /^WAL fsync is already degrading/);
  t.regex(writeTestBlocked(room, "crit", "ok") ?? "", /^the WAL filesystem is crit/);
  t.regex(
    writeTestBlocked({ ...room, avail_bytes: 2 ** 30 + 255 * 2 ** 20 }, "ok", "ok") ?? "",
    /^only 1279 MiB free on the WAL filesystem; the test needs its 256 MiB plus the 1024 MiB reserve$/,
  );
  t.deepEqual(problemsFor('[thresholds]\nreplication_lag_warn = "2m"\n').length, 1);
  t.regex(
    problemsFor('[thresholds]\nreplication_lag_warn = "2m"\n')[0] ?? "",
    /thresholds\.replication_lag_warn: must be below replication_lag_crit/,
  );
  t.deepEqual(problemsFor("[thresholds]\ntcp_retrans_warn = 0.5\ndb_cpu_warn = 80\n"), []);
  t.is(problemsFor('[diagnose]\nwrite_test_size = "512KiB"\n').length, 1);
});

/** The `expr` of one alert in the rules file (each expr is a `|` block under its alert). */
function alertExpr(name: string): string {
  const m = new RegExp(`- alert: ${name}\\n\\s+expr: \\|\\n([^]*?)\\n\\s+(?:for|labels):`).exec(
    RULES,
  );
  if (!m) throw new Error(`no alert ${name} in monitoring/stemedb-agent.rules.yml`);
  return (m[1] ?? "").trim();
}

test("the alert rules page at the judge's figures: fsync warn and crit, as status and diagnose", (t) => {
  const over = (name: string) => Number(/> ([\d.]+)$/.exec(alertExpr(name))?.[1]);
  t.is(over("StemeDBWalFsyncDegrading"), THRESHOLDS.fsync.p99_warn_seconds, "the warning");
  t.is(over("StemeDBWalFsyncSlow"), THRESHOLDS.fsync.p99_crit_seconds, "the page");
  t.regex(alertExpr("StemeDBWalFsyncSlow"), /fsync_probe_duration_seconds_bucket/);
  // No alert judges disk await: if one is added, its figure must be the judge's too.
  t.false(
    RULES.includes("stemedb_agent_disk_await_seconds"),
    "a disk await alert: compare it with THRESHOLDS.disk here",
  );
});

test("[thresholds]: the defaults are the judge's; warn must be below crit", (t) => {
  t.deepEqual(fsyncLimits(cfg), {
    warn: THRESHOLDS.fsync.p99_warn_seconds,
    crit: THRESHOLDS.fsync.p99_crit_seconds,
  });
  t.deepEqual(diskLimits(cfg), {
    await_warn: THRESHOLDS.disk.await_warn_seconds,
    await_crit: THRESHOLDS.disk.await_crit_seconds,
    util_warn_pct: THRESHOLDS.disk.util_warn_pct,
  });
  t.deepEqual(
    problemsFor('[thresholds]\ndisk_await_warn = "10ms"\ndisk_await_crit = "50ms"\n'),
    [],
  );
  const disk = problemsFor('[thresholds]\ndisk_await_warn = "100ms"\n');
  t.is(disk.length, 1);
  t.regex(disk[0] ?? "", /thresholds\.disk_await_warn: must be below disk_await_crit/);
  t.deepEqual(problemsFor('[thresholds]\nfsync_p99_warn = "20ms"\nfsync_p99_crit = "40ms"\n'), []);
  for (const toml of [
    '[thresholds]\nfsync_p99_warn = "100ms"\n',
    '[thresholds]\nfsync_p99_crit = "30ms"\n',
  ]) {
    const p = problemsFor(toml);
    t.is(p.length, 1, toml);
    t.regex(p[0] ?? "", /thresholds\.fsync_p99_warn: must be below fsync_p99_crit/);
  }
});

test("README: the WAL finding severity table is the judge's, every kind once", (t) => {
  const documented: Record<string, string> = {};
  for (const [sev, kinds] of table("finding severity")) {
    for (const k of (kinds ?? "").matchAll(/`(\w+)`/g)) {
      t.false((k[1] as string) in documented, `${k[1]} listed twice`);
      documented[k[1] as string] = sev as string;
    }
  }
  t.deepEqual(documented, { ...WAL_FINDING_SEVERITY });
});

test("disks: warn from 20 ms write-await or 90% util, crit from 100 ms write- or flush-await", (t) => {
  const d = (w: number | null, util: number | null, f: number | null = null) =>
    judgeDisk({ w_await: w, f_await: f, util_pct: util }, diskLimits(cfg));
  t.is(d(null, null), "ok", "no writes, util unknown");
  t.is(d(0.0199, 89.9), "ok");
  t.is(d(0.02, 0), "warn");
  t.is(d(0.001, 90), "warn");
  t.is(d(0.0999, 100), "warn", "saturated alone is a warning");
  t.is(d(0.1, 0), "crit");
  t.is(d(0, 0, 0.1), "crit", "flush-await");
  t.is(d(0, 0, 0.05), "ok", "flush-await has no warning of its own");
  // A node of rotational disks tunes them.
  const hdd = diskLimits({
    ...cfg,
    thresholds: {
      ...cfg.thresholds,
      disk_await_warn: ms(50),
      disk_await_crit: ms(300),
      disk_util_warn: 95,
    },
  });
  t.deepEqual(hdd, { await_warn: 0.05, await_crit: 0.3, util_warn_pct: 95 });
  t.is(judgeDisk({ w_await: 0.04, util_pct: 94 }, hdd), "ok");
  t.is(judgeDisk({ w_await: 0.05, util_pct: 0 }, hdd), "warn");
  t.is(judgeDisk({ w_await: 0.2, f_await: 0.3, util_pct: 0 }, hdd), "crit");
});

test("fsync: warn at fsync_p99_warn, crit at fsync_p99_crit, both inclusive; slow is crit", (t) => {
  const l = fsyncLimits(withFsync(80, 30));
  t.deepEqual(l, { warn: 0.03, crit: 0.08 });
  t.is(judgeFsync(0.0299, l), "ok");
  t.is(judgeFsync(0.03, l), "warn");
  t.is(judgeFsync(0.0799, l), "warn");
  t.is(judgeFsync(0.08, l), "crit");
  t.false(fsyncSlow(0.0799, l));
  t.true(fsyncSlow(0.08, l));
  t.deepEqual(fsyncLimits(cfg), { warn: 0.05, crit: 0.1 }, "the defaults");
  // backup_pause's figures say when it acts, not what slow is.
  t.deepEqual(fsyncLimits(withBackupPause(2000, 1000)), { warn: 0.05, crit: 0.1 });
});

test("a failing fsync probe: stalled or an I/O error is crit; a missing or forbidden directory warn", (t) => {
  const err = (errno: string) =>
    judgeProbeFailure({ dir: "/w", mountpoint: "/", state: "error", errno, message: "" });
  t.is(err("EIO"), "crit");
  t.is(err("EROFS"), "crit");
  t.is(err("ENOSPC"), "crit");
  t.is(err("ENOENT"), "warn");
  t.is(err("EACCES"), "warn");
  t.is(
    judgeProbeFailure({ dir: "/w", mountpoint: "/", state: "stalled", stalled_seconds: 3 }),
    "crit",
  );
});

test("filesystems: warn at 85% or full within a day, crit at 95% or within an hour", (t) => {
  t.is(judgeFilesystem(0.8499, null), "ok");
  t.is(judgeFilesystem(0.85, Infinity), "warn");
  t.is(judgeFilesystem(0.9499, null), "warn");
  t.is(judgeFilesystem(0.95, null), "crit");
  t.is(judgeFilesystem(0.1, 86_400), "ok", "exactly a day is not within a day");
  t.is(judgeFilesystem(0.1, 86_399), "warn");
  t.is(judgeFilesystem(0.1, 3_600), "warn");
  t.is(judgeFilesystem(0.1, 3_599), "crit");
  t.false(walFilesystemFilling(0.8999, 6 * 3600));
  t.true(walFilesystemFilling(0.9, Infinity));
  t.true(walFilesystemFilling(0.1, 6 * 3600 - 1));
});

test("WAL findings: one table for events and status; owner/mode is warn, an unreachable metrics URL info", (t) => {
  t.is(walFindingSeverity("wrong_owner_or_mode"), "warn");
  t.is(walFindingSeverity("db_metrics_unreachable"), "info");
  t.is(walFindingSeverity("gap"), "crit");
  t.is(COLLECTOR_JUDGE.findingSeverity("wrong_owner_or_mode"), "warn", "what the collector emits");
  t.is(judgeWalFindings([]), "ok");
  t.is(judgeWalFindings(["symlink", "db_metrics_unreachable"]), "ok");
  t.is(judgeWalFindings(["db_metrics_unreachable", "wrong_owner_or_mode"]), "warn");
  t.is(judgeWalFindings(["truncated", "stalled"]), "crit");
  // The status area says the same as the events.
  const wal = (kinds: FindingKind[]) =>
    buildAreas(
      cfg,
      latest({
        wal: {
          segments: {
            active: { count: 1, bytes: 1 },
            sealed: { count: 0, bytes: 0 },
            compressed: { count: 0, bytes: 0 },
          },
          active: null,
          findings: kinds.map((kind) => ({ kind, files: [], message: kind })),
          database: null,
        },
      }),
      null,
      { verdict: "healthy", reasons: [] },
    ).find((a) => a.area === "wal")?.verdict;
  t.is(wal(["wrong_owner_or_mode"]), "warn");
  t.is(wal(["db_metrics_unreachable"]), "ok");
});

test("SMART and the kernel log as verdicts", (t) => {
  t.is(judgeSmart([]), "unknown");
  t.is(judgeSmart([{ state: "unsupported", verdict: "unknown" }]), "unknown");
  t.is(judgeSmart([{ state: "ok", verdict: "pass" }]), "ok");
  t.is(judgeSmart([{ state: "standby", verdict: "warn" }]), "warn");
  t.is(judgeSmart([{ state: "ok", verdict: "fail" }]), "crit");
  t.is(
    judgeSmart([
      { state: "ok", verdict: "pass" },
      { state: "unresponsive", verdict: "unknown" },
    ]),
    "crit",
  );
  t.is(kernelVerdict("crit"), "crit");
  t.is(kernelVerdict("error"), "warn");
  t.is(kernelVerdict("warn"), "warn");
  t.is(worst(["ok", "unknown"]), "unknown");
  t.is(worst(["unknown", "warn"]), "warn");
  // As events: what the collectors emit today for a SMART verdict and a kernel incident.
  t.deepEqual(
    (["pass", "warn", "fail", "unknown"] as const).map((v) =>
      verdictSeverity(judgeSmart([{ state: "ok", verdict: v }])),
    ),
    ["info", "warn", "crit", "info"],
  );
  t.deepEqual(
    (["crit", "error", "warn"] as const).map((s) => verdictSeverity(kernelVerdict(s))),
    ["crit", "warn", "warn"],
  );
});

test("one StemeDB predicate: the database, its tools and this agent; the database without the agent", (t) => {
  for (const c of ["stemedb", "stemedb-api", "stemedb-agent", "stemedbd"])
    t.true(isStemedbProcess(c), c);
  for (const c of ["restic", "mystemedb", "node", ""]) t.false(isStemedbProcess(c), c);
  t.true(isStemedbDatabase("stemedb"));
  t.true(isStemedbDatabase("stemedb-api"));
  t.false(isStemedbDatabase("stemedb-agent"));
  t.false(COLLECTOR_JUDGE.isStemedbDatabase("stemedb-agent"), "what the collector asks");
  const row = { comm: "restic", kthread: false, read_bps: 0, write_bps: 10 * 1024 * 1024 };
  t.false(heavyCompetitor(row), "10 MiB/s is not more than 10 MiB/s");
  t.true(heavyCompetitor({ ...row, write_bps: row.write_bps + 1 }));
  t.false(heavyCompetitor({ ...row, comm: "stemedb", write_bps: 1e9 }));
  t.false(heavyCompetitor({ ...row, kthread: true, write_bps: 1e9 }));
  t.is(judgeCompeting("ok", true), "ok");
  t.is(judgeCompeting("warn", true), "warn");
  t.is(judgeCompeting("crit", false), "ok");
});

// The disagreement that was: status warned from resume_below, diagnose from threshold / 2. With
// resume_below at 30 ms and the threshold at 100 ms, a 40 ms p99 was WARN in status, OK in diagnose.
// Both now judge at [thresholds].
test("status and diagnose judge one fsync p99 alike, at the configured figures", (t) => {
  /** status's fsync area, diagnose step 1 and step 5 on one probe result. */
  const verdicts = (c: Config, seconds: number) => {
    const obs = latest({
      fsync_probe: {
        probes: [{ dir: "/w", mountpoint: "/var/lib/stemedb", state: "ok", seconds }],
      },
    });
    const d = diagnose(c, obs, null);
    return [
      buildAreas(c, obs, null, { verdict: "healthy", reasons: [] }).find((a) => a.area === "fsync")
        ?.verdict,
      stepOf(d, "slow-fsync", 1)?.verdict,
      stepOf(d, "slow-fsync", 5)?.verdict,
    ];
  };
  const c = withFsync(100, 30);
  for (const [seconds, want] of [
    [0.029, "ok"],
    [0.04, "warn"],
    [0.1, "crit"],
  ] as const)
    t.deepEqual(verdicts(c, seconds), [want, want, want], `status, diagnose 1 and 5 at ${seconds}`);
  // backup_pause's own figures (far above) do not move what status and diagnose call slow.
  const bp = withBackupPause(2000, 1000);
  t.deepEqual(verdicts(bp, 0.05), ["warn", "warn", "warn"]);
  t.deepEqual(verdicts(bp, 0.1), ["crit", "crit", "crit"]);
});

test("status and diagnose judge one disk alike, at the configured figures", (t) => {
  // No history, so no await p99: %util decides here (the await figures: the judgeDisk test).
  const disk = (util: number, c = cfg) => {
    const obs = latest({
      diskstats: {
        devices: [{ device: "sdb", iostat: { util_pct: util, aqu_sz: 0 } }],
        roles: [{ role: "wal", chain: [{ name: "sdb", writeCache: null, rotational: false }] }],
      },
    });
    return [
      buildAreas(c, obs, null, { verdict: "healthy", reasons: [] }).find((a) => a.area === "disks")
        ?.verdict,
      stepOf(diagnose(c, obs, null), "slow-fsync", 2)?.verdict,
    ];
  };
  t.deepEqual(disk(89), ["ok", "ok"]);
  t.deepEqual(disk(90), ["warn", "warn"]);
  const c = { ...cfg, thresholds: { ...cfg.thresholds, disk_util_warn: 70 } };
  t.deepEqual(disk(69, c), ["ok", "ok"]);
  t.deepEqual(disk(70, c), ["warn", "warn"]);
});
