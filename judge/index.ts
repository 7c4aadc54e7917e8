// The judge: every threshold and severity the agent judges storage with, in one pure module (no
// I/O, no clock: callers pass what they measured). Status, diagnose, events and the remediators
// ask it, so the same number never gets two verdicts. The figures: ./thresholds.ts.
import type { CounterKind } from "../collectors/errcounters/observation.js";
import type { FsyncProbeObservation } from "../collectors/fsync_probe/observation.js";
import type { KernelSeverity } from "../collectors/kmsg/classify.js";
import type { FindingSeverity } from "../collectors/mounts/policy.js";
import type { CollectState } from "../collectors/smart/classify.js";
import type { SmartVerdict } from "../collectors/smart/verdict.js";
import type { CollectorJudge } from "../collectors/judge.js";
import type { FindingKind } from "../collectors/wal/inventory.js";
import type { Config } from "../core/config/schema.js";
import type { EventSeverity } from "../core/history/store.js";
import { levelOf, type StallLimits } from "../core/stalls.js";
import { THRESHOLDS } from "./thresholds.js";

export { THRESHOLDS } from "./thresholds.js";

export type Verdict = "ok" | "warn" | "crit" | "unknown";

/** unknown ranks above ok: a part not known is not said to be fine, but raises nothing. */
const RANK: Record<Verdict, number> = { ok: 0, unknown: 1, warn: 2, crit: 3 };
export const verdictRank = (v: Verdict): number => RANK[v];
export const worst = (vs: readonly Verdict[]): Verdict =>
  vs.reduce<Verdict>((a, b) => (RANK[b] > RANK[a] ? b : a), "ok");

const bySeverity: Record<EventSeverity, Verdict> = { crit: "crit", warn: "warn", info: "ok" };
/** An event or finding's severity as a verdict: info is nothing to act on. */
export const severityVerdict = (s: EventSeverity): Verdict => bySeverity[s];
/**
 * A verdict as an event's severity, for events that say what a verdict says (a probe failing, a
 * disk's SMART verdict, a kernel incident): ok and unknown are nothing to act on.
 */
export const verdictSeverity = (v: Verdict): EventSeverity =>
  v === "crit" ? "crit" : v === "warn" ? "warn" : "info";

// ------------------------------------------------------------------ disks

export interface DiskSample {
  /** Write-await p99 (seconds); null: no writes in the window. */
  readonly w_await: number | null;
  /** Flush-await p99 (seconds); null: no flushes, or not looked at. */
  readonly f_await?: number | null;
  /** %util (0-100); null: not known yet. */
  readonly util_pct: number | null;
}

/** A disk's figures in force: seconds of await, percent busy. */
export interface DiskLimits {
  readonly await_warn: number;
  readonly await_crit: number;
  readonly util_warn_pct: number;
}

/** From `[thresholds]` (defaults THRESHOLDS.disk). */
export function diskLimits(c: Config): DiskLimits {
  const t = c.thresholds;
  return {
    await_warn: t.disk_await_warn / 1000,
    await_crit: t.disk_await_crit / 1000,
    util_warn_pct: t.disk_util_warn,
  };
}

export function judgeDisk(d: DiskSample, l: DiskLimits): Verdict {
  const w = d.w_await ?? 0;
  const f = d.f_await ?? 0;
  if (w >= l.await_crit || f >= l.await_crit) return "crit";
  if (w >= l.await_warn || diskSaturated(d.util_pct, l)) return "warn";
  return "ok";
}

/** Saturated: the device is busy nearly all the time, whatever its latency. */
export const diskSaturated = (util_pct: number | null, l: DiskLimits): boolean =>
  (util_pct ?? 0) >= l.util_warn_pct;

// ------------------------------------------------------------------ fsync

/** Seconds: p99 at or above `warn` is slow, at or above `crit` is too slow. */
export interface FsyncLimits {
  readonly warn: number;
  readonly crit: number;
}

/**
 * The figures in force: `[thresholds]` (defaults THRESHOLDS.fsync). Not backup_pause's, which
 * say when that remediator acts, not what slow is.
 */
export function fsyncLimits(c: Config): FsyncLimits {
  const t = c.thresholds;
  return { warn: t.fsync_p99_warn / 1000, crit: t.fsync_p99_crit / 1000 };
}

/** A WAL fsync p99 (the probe's or the database's own), in seconds. */
export function judgeFsync(p99: number, l: FsyncLimits): Verdict {
  return p99 >= l.crit ? "crit" : p99 >= l.warn ? "warn" : "ok";
}

/**
 * An operation in flight this long ([stalls], core/stalls.ts's stallLimits): a stall is crit, slow
 * is warn. The stall detector's episodes use the same levels.
 */
export function judgeInFlight(age_seconds: number, l: StallLimits): Verdict {
  const level = levelOf(age_seconds, l);
  return level === "stall" ? "crit" : level === "slow" ? "warn" : "ok";
}

/** "WAL fsync is slow": the point where runbooks start (backup_pause asks it at its own figures). */
export const fsyncSlow = (p99: number, l: FsyncLimits): boolean => judgeFsync(p99, l) === "crit";

type FailedProbe = Exclude<FsyncProbeObservation["probes"][number], { state: "ok" }>;

/**
 * A probe that cannot fsync: stalled or failing is the WAL failing, crit; a missing directory
 * (ENOENT) or no permission (EACCES) is the agent pointed at the wrong place, warn.
 */
export function judgeProbeFailure(p: FailedProbe): Verdict {
  if (p.state === "stalled") return "crit";
  return p.errno === "ENOENT" || p.errno === "EACCES" ? "warn" : "crit";
}

// ------------------------------------------------------------------ filesystems

export function judgeFilesystem(used_ratio: number, full_in_seconds: number | null): Verdict {
  const t = THRESHOLDS.filesystem;
  const full = full_in_seconds ?? Infinity;
  if (used_ratio >= t.used_crit_ratio || full < t.full_crit_seconds) return "crit";
  if (used_ratio >= t.used_warn_ratio || full < t.full_warn_seconds) return "warn";
  return "ok";
}

// ------------------------------------------------------------------ WAL findings

/** One table, finding kind -> severity: the event's severity and the status area's verdict. */
export const WAL_FINDING_SEVERITY: Readonly<Record<FindingKind, EventSeverity>> = {
  // The WAL is not being written, or not there: every commit waits or fails.
  stalled: "crit",
  dir_missing: "crit",
  // Data recovery needs is missing or damaged.
  gap: "crit",
  corrupt_gz: "crit",
  verify_failed: "crit",
  // A segment the database may not be able to replay, or that others may read or write: a
  // correctness and security risk for a human to look at, not data lost yet.
  wrong_owner_or_mode: "warn",
  unreadable: "warn",
  not_regular: "warn",
  zero_length: "warn",
  truncated: "warn",
  // An interrupted compression: both copies are there, nothing lost, but it needs finishing.
  plain_and_compressed: "warn",
  filesystem_filling: "warn",
  // Reported and never followed: harmless to the WAL.
  symlink: "info",
  // A monitoring gap, not a WAL problem: the agent's own probe still measures fsync, and a
  // status held at WARN by an unreachable URL would hide the warnings that matter.
  db_metrics_unreachable: "info",
};

export const walFindingSeverity = (kind: FindingKind): EventSeverity => WAL_FINDING_SEVERITY[kind];

export const judgeWalFindings = (kinds: readonly FindingKind[]): Verdict =>
  worst(kinds.map((k) => severityVerdict(walFindingSeverity(k))));

/** The WAL filesystem_filling finding: 90% used, or full within 6 h at the recent rate. */
export const walFilesystemFilling = (used_ratio: number, full_in_seconds: number): boolean =>
  used_ratio >= THRESHOLDS.wal_filling.used_ratio ||
  full_in_seconds < THRESHOLDS.wal_filling.full_seconds;

// ------------------------------------------------------------------ mounts

export const mountFindingVerdict = (s: FindingSeverity): Verdict => severityVerdict(s);

// ------------------------------------------------------------------ SMART

const SMART: Record<SmartVerdict, Verdict> = {
  pass: "ok",
  warn: "warn",
  fail: "crit",
  unknown: "unknown",
};

export const smartVerdict = (v: SmartVerdict): Verdict => SMART[v];

/**
 * The disks' SMART as one verdict: the worst of the disks that answered (ok, or in standby),
 * and a disk that stops answering smartctl is crit. Unknown when none answered.
 */
export function judgeSmart(
  devices: ReadonlyArray<{ readonly state: CollectState; readonly verdict: SmartVerdict }>,
): Verdict {
  const checked = devices.filter((d) => d.state === "ok" || d.state === "standby");
  const stuck = devices.some((d) => d.state === "unresponsive");
  if (checked.length === 0 && !stuck) return "unknown";
  return worst([
    ...checked.map((d) => smartVerdict(d.verdict)),
    ...(stuck ? ["crit" as const] : []),
  ]);
}

// ------------------------------------------------------------------ kernel log

/**
 * A kernel storage incident (or fault line) by its worst line: crit (data told durable is not
 * on the medium, a device gone) is crit; error and warn are warn.
 */
export const kernelVerdict = (s: KernelSeverity | (string & {})): Verdict =>
  s === "crit" ? "crit" : "warn";

/** The runbook's question: I/O errors on the WAL's own device are crit, elsewhere warn. */
export const storageErrorsVerdict = (any: boolean, onWalDevice: boolean): Verdict =>
  !any ? "ok" : onWalDevice ? "crit" : "warn";

// ------------------------------------------------------------------ kernel error counters

/**
 * A rise of a kernel error counter. ext4 counts an error when it finds its own metadata wrong,
 * btrfs a corruption (checksum) or generation (stale copy) error when data or metadata read back
 * wrong: crit. btrfs write, read and flush errors and SCSI timeouts are I/O that failed or hung
 * and may be retried: warn. SCSI's ioerr_cnt counts every command with a nonzero result, check
 * conditions a caller expects (smartctl's, a media poll) included: info.
 */
export function counterRiseSeverity(c: CounterKind): EventSeverity {
  if (c === "ext4_errors" || c === "btrfs_corruption" || c === "btrfs_generation") return "crit";
  return c === "scsi_ioerr" ? "info" : "warn";
}

/**
 * A counter the kernel logs every rise of rose, and the kernel log has no line for it: the
 * log was lost or rate-limited, so what it says about the node is incomplete: warn.
 */
export const logMissingSeverity = (_c: CounterKind): EventSeverity => "warn";

/**
 * A filesystem (or btrfs member) by its recorded errors: ext4's count lasts until fsck and
 * btrfs's until reset, so errors long past are warn; a rise seen within the day is crit.
 */
export const fsErrorsVerdict = (errors: number, roseRecently: boolean): Verdict =>
  errors === 0 ? "ok" : roseRecently ? "crit" : "warn";

// ------------------------------------------------------------------ processes

/**
 * StemeDB's own processes: the database and its tools (`stemedb`, `stemedb-*`, this agent
 * included). Its comm starts with `stemedb`, as the README says.
 */
export const isStemedbProcess = (comm: string): boolean => comm.startsWith("stemedb");

/** The database itself: a StemeDB process other than this agent. */
export const isStemedbDatabase = (comm: string): boolean =>
  isStemedbProcess(comm) && comm !== "stemedb-agent";

/** A user-space process, not StemeDB, moving enough I/O to compete with the WAL. */
export const heavyCompetitor = (r: {
  readonly comm: string;
  readonly kthread: boolean;
  readonly read_bps: number;
  readonly write_bps: number;
}): boolean =>
  !r.kthread &&
  !isStemedbProcess(r.comm) &&
  r.write_bps + r.read_bps > THRESHOLDS.competing_io.heavy_bytes_per_second;

/** A heavy competitor is a warning only while WAL fsync is slow (warn or crit). */
export const judgeCompeting = (fsync: Verdict, anyHeavy: boolean): Verdict =>
  anyHeavy && (fsync === "warn" || fsync === "crit") ? "warn" : "ok";

// ------------------------------------------------------------------ CPU, network, replication

/** Ratios in force: `[thresholds]` db_cpu_warn and tcp_retrans_warn are percents. */
export interface HostLimits {
  readonly cpu_warn_ratio: number;
  readonly retrans_warn_ratio: number;
}

export function hostLimits(c: Config): HostLimits {
  const t = c.thresholds;
  return { cpu_warn_ratio: t.db_cpu_warn / 100, retrans_warn_ratio: t.tcp_retrans_warn / 100 };
}

/**
 * CPU saturation: the database's processes using `db_share` of all the host's CPUs, or the
 * host `host_busy` busy whoever uses it; either at the figure is warn. Null figures (a first
 * sample) count as not known: unknown when neither is known.
 */
export function judgeCpu(
  db_share: number | null,
  host_busy: number | null,
  l: HostLimits,
): Verdict {
  if (db_share === null && host_busy === null) return "unknown";
  return (db_share ?? 0) >= l.cpu_warn_ratio || (host_busy ?? 0) >= l.cpu_warn_ratio
    ? "warn"
    : "ok";
}

/**
 * The network: retransmitted share of sent TCP segments at the figure, or any interface's errors
 * and drops rising, is warn. `retrans_ratio` null (nothing sent) is nothing wrong.
 */
export function judgeNetwork(
  retrans_ratio: number | null,
  interface_errors_per_second: readonly number[],
  l: HostLimits,
): Verdict {
  return (retrans_ratio ?? 0) >= l.retrans_warn_ratio ||
    interface_errors_per_second.some((e) => e > 0)
    ? "warn"
    : "ok";
}

/** Seconds: replication lag at or above `warn` is warn, at or above `crit` crit. */
export interface LagLimits {
  readonly warn: number;
  readonly crit: number;
}

export function lagLimits(c: Config): LagLimits {
  const t = c.thresholds;
  return { warn: t.replication_lag_warn / 1000, crit: t.replication_lag_crit / 1000 };
}

export const judgeReplicationLag = (seconds: number, l: LagLimits): Verdict =>
  seconds >= l.crit ? "crit" : seconds >= l.warn ? "warn" : "ok";

/** The database's own error counters rising (WAL fsync errors, storage operation errors) are crit. */
export const judgeDbErrors = (rising: boolean): Verdict => (rising ? "crit" : "ok");

// ------------------------------------------------------------------ the active write test

/** What the runbook expects of the WAL device, in bytes per second: SSD or rotational. */
export const writeTestExpectation = (rotational: boolean): number =>
  rotational
    ? THRESHOLDS.write_test.rotational_bytes_per_second
    : THRESHOLDS.write_test.ssd_bytes_per_second;

/** The write test's throughput against the expectation: below it is warn. */
export const judgeWriteTest = (bytes_per_second: number, rotational: boolean): Verdict =>
  bytes_per_second >= writeTestExpectation(rotational) ? "ok" : "warn";

/**
 * Why the write test must not run now, or null: it writes `size` bytes at full speed, which
 * would make a space or fsync incident worse. `fs` is the WAL filesystem's verdict.
 */
export function writeTestBlocked(
  s: { readonly size: number; readonly reserve: number; readonly avail_bytes: number | null },
  fs: Verdict,
  fsync: Verdict,
): string | null {
  if (fsync === "warn" || fsync === "crit")
    return `WAL fsync is already ${fsync === "crit" ? "slow" : "degrading"} (${fsync}): the test would add to the load`;
  if (fs === "warn" || fs === "crit")
    return `the WAL filesystem is ${fs} (space): the test would eat into what is left`;
  if (s.avail_bytes === null) return "free space on the WAL filesystem not known";
  if (s.avail_bytes < s.size + s.reserve)
    return (
      `only ${(s.avail_bytes / 1024 ** 2).toFixed(0)} MiB free on the WAL filesystem; the test ` +
      `needs its ${(s.size / 1024 ** 2).toFixed(0)} MiB plus the ${(s.reserve / 1024 ** 2).toFixed(0)} MiB reserve`
    );
  return null;
}

// ------------------------------------------------------------------ the agent itself

export const agentVerdict = (health: string): Verdict =>
  health === "healthy" ? "ok" : health === "degraded" ? "warn" : "crit";

/** What collectors ask the judge, handed down by the app (collectors/ cannot import judge/). */
export const COLLECTOR_JUDGE: CollectorJudge = {
  findingSeverity: walFindingSeverity,
  isStemedbDatabase,
  walFilesystemFilling,
  counterRiseSeverity,
  logMissingSeverity,
};
