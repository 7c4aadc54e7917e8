// agentctl diagnose: the node-local steps of the five StemeDB runbooks (./runbooks.ts), each
// runbook by its file and alert, its steps in the runbook's order, each with its evidence and the
// action taken by the agent or suggested to the operator.
import type { Config } from "../../core/config/schema.js";
import { stallLimits } from "../../core/stalls.js";
import type { HistoryStore } from "../../core/history/store.js";
import type { DbWalMetrics } from "../../collectors/wal/dbmetrics.js";
import {
  diskLimits,
  hostLimits,
  judgeCpu,
  judgeDbErrors,
  judgeNetwork,
  judgeReplicationLag,
  lagLimits,
  diskSaturated,
  fsyncLimits,
  judgeCompeting,
  judgeDisk,
  judgeFilesystem,
  judgeFsync,
  judgeInFlight,
  judgeProbeFailure,
  judgeSmart,
  mountFindingVerdict,
  storageErrorsVerdict,
  type Verdict,
  worst,
} from "../../judge/index.js";
import {
  type AreaVerdict,
  dur,
  heavyCompetitor,
  incidentLine,
  kernelLog,
  type Latest,
  mib,
  fmtSeconds,
  fullIn,
  notStemedb,
  pct,
  recentP99,
  type RemediatorState,
  walDevices,
  plural,
} from "./areas.js";
import { RUNBOOKS, type RunbookId, type RunbookInfo } from "./runbooks.js";
import { ballastStep } from "../../remediators/ballast/view.js";
import type { Mode } from "../../remediators/framework.js";
import type { WriteTestOutcome } from "./write-test.js";
import { counterFindings } from "./errcounters.js";

/** A step's verdict; `info` is a step that judges nothing (how to run a check, what to collect). */
export type StepVerdict = Verdict | "info";

export interface Step {
  /** 1-based, in the runbook's order. */
  readonly n: number;
  readonly step: string;
  readonly verdict: StepVerdict;
  readonly evidence: string;
  /** What the agent did, or what the operator should do; null when nothing is needed. */
  readonly action: string | null;
}

export interface RunbookDiagnosis {
  readonly runbook: RunbookId;
  readonly file: RunbookInfo["file"];
  readonly alert: RunbookInfo["alert"];
  readonly title: string;
  readonly verdict: AreaVerdict;
  readonly steps: Step[];
}

export interface Diagnosis {
  readonly verdict: AreaVerdict;
  readonly runbooks: RunbookDiagnosis[];
}

export interface DiagnoseOptions {
  /** Only these runbooks (default all five). */
  readonly only?: readonly RunbookId[];
  /** The active write test's outcome (agentctl diagnose --active), for replication-lag step 4. */
  readonly writeTest?: WriteTestOutcome;
}

/** The verdict of some steps: the worst known one; unknown only when none is known. */
export function stepsVerdict(steps: readonly { readonly verdict: StepVerdict }[]): AreaVerdict {
  const known = steps.flatMap((s) =>
    s.verdict === "unknown" || s.verdict === "info" ? [] : [s.verdict],
  );
  return known.length > 0 ? worst(known) : "unknown";
}

/** Step `n` of one runbook in a diagnosis. */
export const stepOf = (d: Diagnosis, runbook: RunbookId, n: number): Step | undefined =>
  d.runbooks.find((r) => r.runbook === runbook)?.steps[n - 1];

type Draft = Omit<Step, "n">;

const TEN_MIN = 10 * 60_000;

/**
 * The WAL fsync verdict the runbooks start from: the probe's p99 over 10 min (else its last
 * result) and the database's own p99, at `[thresholds]`. Also what --active asks before writing.
 */
export function walFsync(
  c: Config,
  latest: Latest,
  h: HistoryStore | null,
  now = Date.now(),
): { verdict: Verdict; worst: { mp: string; v: number }; db: number | null; measured: boolean } {
  const probe = latest.get("fsync_probe")?.observation;
  const wal = latest.get("wal")?.observation;
  const limits = fsyncLimits(c);
  const p99s = (probe?.probes ?? [])
    .filter((p) => p.state === "ok")
    .map((p) => ({
      mp: p.mountpoint,
      v:
        recentP99(h, "fsync_probe_seconds", { mountpoint: p.mountpoint }, TEN_MIN, now) ??
        p.seconds,
    }));
  const worstP99 = p99s.reduce((a, b) => (b.v > a.v ? b : a), { mp: "", v: 0 });
  const db = wal?.database && wal.database.ok ? wal.database.p99 : null;
  const measured = p99s.length > 0 || db !== null;
  return {
    verdict: measured
      ? worst([judgeFsync(worstP99.v, limits), judgeFsync(db ?? 0, limits)])
      : "unknown",
    worst: worstP99,
    db,
    measured,
  };
}

/** `remediators`: what the agent's remediators hold and decided, so a step can say what was already done. */
export function diagnose(
  c: Config,
  latest: Latest,
  h: HistoryStore | null,
  now = Date.now(),
  remediators: readonly RemediatorState[] = [],
  opts: DiagnoseOptions = {},
): Diagnosis {
  const ctx = new Context(c, latest, h, now, remediators);
  const build: Record<RunbookId, () => Draft[]> = {
    "slow-fsync": () => ctx.slowFsync(),
    "replication-lag": () => ctx.replicationLag(opts.writeTest),
    "wal-fsync-failure": () => ctx.walFsyncFailure(),
    "storage-errors": () => ctx.storageErrors(),
    "api-error-rate": () => ctx.apiErrorRate(),
  };
  const runbooks = RUNBOOKS.filter((r) => !opts.only || opts.only.includes(r.runbook)).map(
    (r): RunbookDiagnosis => {
      const steps = build[r.runbook]().map((s, i) => ({ n: i + 1, ...s }));
      return { ...r, verdict: stepsVerdict(steps), steps };
    },
  );
  return { verdict: stepsVerdict(runbooks.flatMap((r) => r.steps)), runbooks };
}

/** What the runbooks' steps share: the observations, the limits, and steps two runbooks walk. */
class Context {
  readonly probe;
  readonly disk;
  readonly procio;
  readonly wal;
  readonly mounts;
  readonly smart;
  readonly process;
  readonly netstat;
  readonly walDev: string[];
  readonly fsync;
  readonly walMount;

  constructor(
    readonly c: Config,
    readonly latest: Latest,
    readonly h: HistoryStore | null,
    readonly now: number,
    readonly remediators: readonly RemediatorState[],
  ) {
    this.probe = latest.get("fsync_probe")?.observation;
    this.disk = latest.get("diskstats")?.observation;
    this.procio = latest.get("procio")?.observation;
    this.wal = latest.get("wal")?.observation;
    this.mounts = latest.get("mounts")?.observation;
    this.smart = latest.get("smart")?.observation;
    this.process = latest.get("process")?.observation;
    this.netstat = latest.get("netstat")?.observation;
    this.walDev = walDevices(latest);
    this.fsync = walFsync(c, latest, h, now);
    this.walMount = this.mounts?.mounts.find((m) => m.paths.some((p) => p.role === "wal"));
  }

  private get slow(): boolean {
    return this.fsync.verdict === "crit";
  }

  /** The database's own metrics, or why they cannot be read (what to configure). */
  private dbMetrics(): { ok: true; m: DbWalMetrics } | { ok: false; why: string } {
    if (this.c.stemedb.metrics_url === "")
      return {
        ok: false,
        why: "[stemedb] metrics_url is not set: the database's own figures are not read",
      };
    const d = this.wal?.database;
    if (!this.wal || d === undefined || d === null)
      return {
        ok: false,
        why: `${this.c.stemedb.metrics_url} not scraped yet (the wal collector is off or starting)`,
      };
    if (!d.ok) return { ok: false, why: `${this.c.stemedb.metrics_url}: ${d.error}` };
    return { ok: true, m: d };
  }

  // ------------------------------------------------------------ shared steps

  /** iostat -x on the WAL device: await p99s and %util over 10 min. */
  private iostatStep(step: string): Draft {
    const diskLim = diskLimits(this.c);
    const dv = this.walDiskRows().map((d) => ({
      d: d.device,
      w: recentP99(this.h, "disk_w_await_seconds", { device: d.device }, TEN_MIN, this.now),
      f: recentP99(this.h, "disk_f_await_seconds", { device: d.device }, TEN_MIN, this.now),
      util: d.iostat?.util_pct ?? null,
      aqu: d.iostat?.aqu_sz ?? null,
    }));
    return {
      step,
      verdict:
        dv.length === 0
          ? "unknown"
          : worst(
              dv.map((x) => judgeDisk({ w_await: x.w, f_await: x.f, util_pct: x.util }, diskLim)),
            ),
      evidence:
        dv.length === 0
          ? "no WAL device samples (the diskstats collector is off or starting)"
          : dv
              .map(
                (x) =>
                  `${x.d}: w_await p99 ${x.w === null ? "n/a" : fmtSeconds(x.w)}, ` +
                  `f_await p99 ${x.f === null ? "n/a" : fmtSeconds(x.f)}, ` +
                  `%util ${x.util?.toFixed(0) ?? "n/a"}, aqu-sz ${x.aqu?.toFixed(2) ?? "n/a"} (10 min)`,
              )
              .join("; "),
      action: dv.some((x) => diskSaturated(x.util, diskLim))
        ? "the device is saturated: find who else writes (iotop step)"
        : null,
    };
  }

  private walDiskRows() {
    return (this.disk?.devices ?? []).filter(
      (d) => this.walDev.length === 0 || this.walDev.includes(d.device),
    );
  }

  /** iotop -o: who else does storage I/O; while WAL fsync is slow a heavy one is a warning. */
  private competingStep(step: string): Draft {
    // User processes first: kernel threads (writeback, loop) do someone else's I/O and cannot be paused.
    const others = this.procio?.top.filter(notStemedb) ?? [];
    const top = [...others.filter((r) => !r.kthread), ...others.filter((r) => r.kthread)];
    const backups = new Set(this.c.remediators.backup_pause.units);
    const heavy = top.filter(heavyCompetitor);
    return {
      step,
      verdict: !this.procio ? "unknown" : judgeCompeting(this.fsync.verdict, heavy.length > 0),
      evidence: !this.procio
        ? "no I/O attribution (the procio collector is off or starting)"
        : top.length === 0
          ? "no other process is doing storage I/O right now"
          : top
              .slice(0, 3)
              .map(
                (r) =>
                  `${r.comm}[${r.pid}]${r.unit ? ` (${r.unit})` : ""}` +
                  `${r.kthread ? " (kernel thread)" : ""} writes ${mib(r.write_bps)}/s, ` +
                  `reads ${mib(r.read_bps)}/s`,
              )
              .join("; "),
      action: backupAction(
        this.c,
        this.remediators.find((r) => r.name === "backup_pause"),
        this.slow,
        heavy.find((r) => r.unit !== null && backups.has(r.unit))?.unit ?? null,
        heavy[0]?.comm ?? null,
      ),
    };
  }

  /** The database's processes' CPU (and memory): `top -b -n 1 | grep stemedb`. */
  private cpuStep(step: string, memory: boolean): Draft {
    const p = this.process;
    if (!p)
      return {
        step,
        verdict: "unknown",
        evidence: "no process samples (the process collector is off or starting)",
        action: null,
      };
    const g = p.group;
    if (g.count === 0)
      return {
        step,
        verdict: "unknown",
        evidence: "no database process found (comm stemedb…, the agent excepted)",
        action: `is the database running? systemctl status ${this.c.stemedb.service}`,
      };
    const share = g.cpu_cores === null ? null : g.cpu_cores / Math.max(1, p.host.cpus);
    const l = hostLimits(this.c);
    const verdict = judgeCpu(share, p.host.busy_ratio, l);
    const cpu =
      g.cpu_cores === null
        ? "CPU not known yet (it needs two samples)"
        : `${g.cpu_cores.toFixed(1)} of ${plural(p.host.cpus, "CPU")} (${pct(share ?? 0)})`;
    const host =
      p.host.busy_ratio === null
        ? ""
        : `; host ${pct(p.host.busy_ratio)} busy` +
          (p.host.iowait_ratio === null ? "" : `, ${pct(p.host.iowait_ratio)} iowait`);
    const mem = memory
      ? `; RSS ${mib(g.rss_bytes)}, host ${mib(p.host.mem_available_bytes)} of ` +
        `${mib(p.host.mem_total_bytes)} available`
      : "";
    const top = p.processes
      .slice(0, 2)
      .map((x) => `${x.comm}[${x.pid}] ${x.cpu_cores === null ? "n/a" : x.cpu_cores.toFixed(1)}`)
      .join(", ");
    const inD = g.threads_in_d > 0 ? ` (${g.threads_in_d} in D: waiting on storage)` : "";
    const dbBusy = share !== null && share >= l.cpu_warn_ratio;
    const hostBusy = (p.host.busy_ratio ?? 0) >= l.cpu_warn_ratio;
    return {
      step,
      verdict,
      evidence:
        `${plural(g.count, "database process")} ${g.count === 1 ? "uses" : "use"} ${cpu}${host}${mem}; ` +
        `${plural(g.threads, "thread")}${inD}; busiest ${top}`,
      action: dbBusy
        ? "the database is CPU-bound: requests and replication queue for CPU; look at its load " +
          "(query mix, compaction) before the disks"
        : hostBusy
          ? "the host is saturated by other processes: top -o %CPU shows which; the database waits for CPU"
          : null,
    };
  }

  // ------------------------------------------------------------ slow-fsync.md

  slowFsync(): Draft[] {
    const limits = fsyncLimits(this.c);
    const f = this.fsync;
    const okProbes = this.probe?.probes.filter((p) => p.state === "ok") ?? [];
    const info = this.disk?.roles.filter((r) => r.role === "wal").flatMap((r) => r.chain) ?? [];
    const wc = info.filter((d) => d.writeCache !== null);
    // A WAL write in flight now is the latency a p99 cannot show yet (it counts once it returns).
    const stuck = this.latest.get("stalls")?.observation.db.threads[0];
    const stuckVerdict = stuck ? judgeInFlight(stuck.age_seconds, stallLimits(this.c)) : "ok";
    const inFlight =
      stuck && stuckVerdict !== "ok"
        ? `; in flight now: the database's ${stuck.call} on ${stuck.file} for ` +
          `${fmtSeconds(stuck.age_seconds)} (thread ${stuck.tid} in D)`
        : "";
    return [
      {
        step: "WAL fsync latency",
        verdict: stuckVerdict === "ok" ? f.verdict : worst([f.verdict, stuckVerdict]),
        evidence:
          (!f.measured
            ? "no fsync measurements (probe failing or not started; see wal-fsync-failure.md)"
            : `agent probe p99 ${fmtSeconds(f.worst.v)} over 10 min on ` +
              `${f.worst.mp}${f.db !== null ? `; database's own p99 ${fmtSeconds(f.db)}` : ""} (threshold ` +
              `${fmtSeconds(limits.crit)})`) + inFlight,
        action:
          this.slow || stuckVerdict !== "ok"
            ? "continue with the steps below to find the cause"
            : null,
      },
      this.iostatStep("iostat -x on the WAL device"),
      this.competingStep("iotop -o: competing I/O"),
      {
        step: "write cache",
        verdict: wc.length === 0 ? "unknown" : "ok",
        evidence:
          wc.length === 0
            ? "write cache mode not known for the WAL device"
            : wc
                .map((d) => `${d.name}: ${d.writeCache}${d.rotational ? ", rotational" : ""}`)
                .join("; "),
        action:
          wc.some((d) => d.writeCache === "write back") && this.slow
            ? "write-back cache: each fsync flushes it; check the controller's cache battery/BBU " +
              "or power-loss protection"
            : null,
      },
      {
        step: "raw fsync test",
        // Judged on the last probe itself: step 1 already judges the p99 over time.
        verdict:
          okProbes.length === 0
            ? "unknown"
            : worst(okProbes.map((p) => judgeFsync(p.seconds, limits))),
        evidence:
          okProbes.length === 0
            ? "the probe has no result"
            : okProbes
                .map((p) => `last probe on ${p.mountpoint}: ${fmtSeconds(p.seconds)}`)
                .join("; "),
        action:
          this.slow && okProbes.every((p) => judgeFsync(p.seconds, limits) === "ok")
            ? "fast right now while the p99 is high: the slowness comes and goes with load (step 3), " +
              "not a device that is slow all the time"
            : null,
      },
    ];
  }

  // ------------------------------------------------------------ replication-lag.md

  replicationLag(test: WriteTestOutcome | undefined): Draft[] {
    const local = [
      this.utilStep(),
      this.cpuStep("top -b -n 1 | grep stemedb: CPU saturation", false),
      this.competingStep("iotop -o: competing I/O"),
    ];
    return [...local, writeTestStep(this.c, test), this.lagStep(local)];
  }

  /** iostat -x on the WAL partition, for %util: now, p99 over 10 min, peak over the hour. */
  private utilStep(): Draft {
    const l = diskLimits(this.c);
    const rows = this.walDiskRows().map((d) => {
      const labels = { device: d.device };
      const hour = this.h?.series("disk_utilization_ratio", labels, this.now - 3_600_000) ?? [];
      const peak = hour.reduce<number | null>(
        (m, s) => (m === null || s.value > m ? s.value : m),
        null,
      );
      return {
        d: d.device,
        now: d.iostat?.util_pct ?? null,
        p99: recentP99(this.h, "disk_utilization_ratio", labels, TEN_MIN, this.now),
        peak,
        w: recentP99(this.h, "disk_w_await_seconds", labels, TEN_MIN, this.now),
      };
    });
    const util = (x: (typeof rows)[number]) => (x.p99 === null ? x.now : x.p99 * 100);
    return {
      step: "iostat -x on the WAL partition: %util",
      verdict:
        rows.length === 0
          ? "unknown"
          : worst(rows.map((x) => judgeDisk({ w_await: x.w, util_pct: util(x) }, l))),
      evidence:
        rows.length === 0
          ? "no WAL device samples (the diskstats collector is off or starting)"
          : rows
              .map(
                (x) =>
                  `${x.d}: %util ${x.now?.toFixed(0) ?? "n/a"} now, ` +
                  `p99 ${x.p99 === null ? "n/a" : (x.p99 * 100).toFixed(0)} over 10 min, ` +
                  `peak ${x.peak === null ? "n/a" : (x.peak * 100).toFixed(0)} in the last hour; ` +
                  `w_await p99 ${x.w === null ? "n/a" : fmtSeconds(x.w)}`,
              )
              .join("; "),
      action: rows.some((x) => diskSaturated(util(x), l))
        ? "the replica's WAL disk is saturated: it applies replicated writes no faster than it can " +
          "write them; find who else writes (step 3), and see slow-fsync.md"
        : null,
    };
  }

  /** The database's own replication lag and Merkle sync figures. */
  private lagStep(local: readonly Draft[]): Draft {
    const step = "the database's replication lag and Merkle sync";
    const d = this.dbMetrics();
    if (!d.ok) return { step, verdict: "unknown", evidence: d.why, action: null };
    const lag = d.m.replication_lag_seconds;
    const merkle = Object.entries(d.m.merkle_sync);
    const merkleText =
      merkle.length === 0
        ? "no stemedb_merkle_sync_* figures"
        : `Merkle sync ${merkle
            .slice(0, 4)
            .map(([k, v]: [string, number]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(3)}`)
            .join(", ")}`;
    if (lag === null)
      return {
        step,
        verdict: "unknown",
        evidence: `the database exports no stemedb_replication_lag_seconds (not replicating?); ${merkleText}`,
        action: null,
      };
    const l = lagLimits(this.c);
    const verdict = judgeReplicationLag(lag, l);
    const localOk = local.every((s) => s.verdict === "ok");
    return {
      step,
      verdict,
      evidence:
        `stemedb_replication_lag_seconds ${fmtSeconds(lag)} (warn ${fmtSeconds(l.warn)}, ` +
        `crit ${fmtSeconds(l.crit)}); ${merkleText}`,
      action:
        verdict === "ok"
          ? null
          : localOk
            ? "this node's disk, CPU and I/O look fine: look at the network (api-error-rate.md step 3) " +
              "and at the primary"
            : "the steps above show a local cause: lag falls once the replica keeps up again",
    };
  }

  // ------------------------------------------------------------ wal-fsync-failure.md

  walFsyncFailure(): Draft[] {
    const c = this.c;
    const okProbes = this.probe?.probes.filter((p) => p.state === "ok") ?? [];
    const failing = this.probe?.probes.filter((p) => p.state !== "ok") ?? [];
    const walMount = this.walMount;
    return [
      {
        step: "can the WAL filesystem fsync at all",
        verdict:
          failing.length === 0
            ? okProbes.length > 0
              ? "ok"
              : "unknown"
            : worst(failing.map(judgeProbeFailure)),
        evidence:
          failing.length === 0
            ? okProbes.length > 0
              ? "the fsync probe succeeds"
              : "the fsync probe has no result yet"
            : failing
                .map((p) =>
                  p.state === "error"
                    ? `${p.dir}: ${p.errno} (${p.message})`
                    : p.state === "stalled"
                      ? `${p.dir}: probe stuck for ${dur(p.stalled_seconds)}`
                      : "",
                )
                .join("; "),
        action: failing.some((p) => p.state === "error" && p.errno === "EROFS")
          ? "the filesystem is read-only: check the kernel log (storage-errors.md), then fsck before remounting"
          : failing.some((p) => p.state === "error" && p.errno === "ENOSPC")
            ? "the filesystem is full: see storage-errors.md (df, what can be compressed)"
            : failing.some((p) => p.state === "error" && p.errno === "ENOENT")
              ? `the WAL directory ${c.wal.dir} does not exist: check [wal] dir`
              : null,
      },
      {
        step: "mount | grep wal",
        verdict: !walMount
          ? "unknown"
          : worst(walMount.findings.map((f) => mountFindingVerdict(f.severity))),
        evidence: walMount
          ? `${walMount.mountpoint} ${walMount.fs_type} on ${walMount.source} ` +
            `(${walMount.options.join(",")})${walMount.findings
              .filter((f) => f.severity !== "info")
              .map((f) => `; ${f.option}: ${f.reason}`)
              .join("")}`
          : "WAL mount not known",
        action: walMount?.read_only
          ? "remounted read-only after errors: do not remount rw before checking the kernel log and SMART"
          : null,
      },
    ];
  }

  // ------------------------------------------------------------ storage-errors.md (disk full too)

  storageErrors(): Draft[] {
    const { c, h, now, walDev } = this;
    // In incidents (the lines of one failure are one); lines only while none has closed yet.
    const kern = h ? kernelLog(h, now - 86_400_000, 10) : null;
    const inc = kern?.incidents ?? [];
    const lines = kern?.lines ?? [];
    const onWal =
      inc.length > 0
        ? inc.filter((i) => walDev.includes(i.device)).map((i) => i.device)
        : lines.filter((k) => walDev.includes(k.subject ?? "")).map((k) => k.subject);
    const none = inc.length === 0 && lines.length === 0;
    const sm = this.smart?.devices ?? [];
    const smBad = sm.filter(
      (d) => d.verdict === "fail" || d.verdict === "warn" || d.state === "unresponsive",
    );
    const walMount = this.walMount;
    const fs = walMount?.space;
    const full = walMount?.full_in_seconds ?? Infinity;
    const wal = this.wal;
    const keep = c.remediators.wal_compress.keep_uncompressed;
    const sealed = wal?.segments.sealed;
    const candidates = Math.max(0, (sealed?.count ?? 0) + (wal?.segments.active.count ?? 0) - keep);
    const wcState = this.remediators.find((r) => r.name === "wal_compress");
    return [
      {
        step: "dmesg | grep -i 'i/o error' (24 h)",
        verdict: !h ? "unknown" : storageErrorsVerdict(!none, onWal.length > 0),
        evidence: !h
          ? "no history"
          : none
            ? "no storage errors in the kernel log"
            : inc.length > 0
              ? `${plural(kern?.incidentCount ?? 0, "incident")} (${plural(kern?.lineCount ?? 0, "fault line")}): ` +
                `${inc.slice(0, 4).map(incidentLine).join("; ")}`
              : `no incident closed yet; lines: ${lines
                  .slice(0, 4)
                  .map(
                    (k) =>
                      `${k.n} ${k.kind} on ${k.subject} (last ${new Date(k.last).toISOString().slice(0, 19)}Z)`,
                  )
                  .join("; ")}`,
        action:
          onWal.length > 0
            ? `the WAL device ${onWal[0]} reports I/O errors: plan to move the WAL off it; check SMART (next step)`
            : null,
      },
      {
        step: "smartctl -a",
        verdict: judgeSmart(sm),
        evidence:
          sm.length === 0
            ? "no SMART results"
            : sm
                .map(
                  (d) =>
                    `${d.name}: ${d.state === "ok" ? d.verdict : d.state}${
                      d.reasons.filter((r) => r.level !== "info").length
                        ? ` (${d.reasons
                            .filter((r) => r.level !== "info")
                            .map((r) => r.message)
                            .join("; ")})`
                        : ""
                    }`,
                )
                .join("; "),
        action: smBad.some((d) => d.verdict === "fail")
          ? "replace the failing disk"
          : smBad.length > 0
            ? "schedule replacement of the degraded disk; watch its counters (agentctl events --class smart)"
            : null,
      },
      {
        step: "df -h on the WAL filesystem",
        verdict: !fs ? "unknown" : judgeFilesystem(fs.used_ratio, full),
        evidence: fs
          ? `${walMount?.mountpoint}: ${pct(fs.used_ratio)} used, ${mib(fs.avail_bytes)} free, ` +
            fullIn(full, " at the recent rate")
          : "no statfs of the WAL filesystem",
        action: null,
      },
      this.ballastStep(fs ? judgeFilesystem(fs.used_ratio, full) !== "ok" : false),
      {
        step: "ls wal/: what can be compressed",
        verdict: !wal ? "unknown" : "ok",
        evidence: wal
          ? `${(sealed?.count ?? 0) + wal.segments.active.count} uncompressed segments ` +
            `(${mib((sealed?.bytes ?? 0) + wal.segments.active.bytes)}), ` +
            `${wal.segments.compressed.count} compressed; ` +
            `oldest ${dur(wal.oldest_age_seconds ?? 0)} old` +
            compressNotes(c, wcState)
          : "no WAL inventory",
        action:
          fs && judgeFilesystem(fs.used_ratio, full) !== "ok" && candidates > 0
            ? compressAction(c, wcState, candidates)
            : null,
      },
      this.countersStep(),
    ];
  }

  /** The kernel's own error counters: ext4's record, btrfs's stats, and rises the log missed. */
  private countersStep(): Draft {
    const step = "the kernel's error counters (ext4 errors_count, btrfs error stats)";
    if (!this.latest.get("errcounters"))
      return {
        step,
        verdict: "unknown",
        evidence: "no sample (the errcounters collector is off or starting)",
        action: null,
      };
    const f = counterFindings(this.latest, this.h, this.now);
    return {
      step,
      verdict: f.verdict,
      evidence:
        f.details.length > 0 ? f.details.slice(0, 6).join("; ") : "no errors on record, no rises",
      action:
        f.verdict === "ok"
          ? null
          : "a filesystem that records errors needs an fsck at the next maintenance window; a rise " +
            "with no kernel-log line means the log is incomplete: read the counters, not only dmesg",
    };
  }

  /** The emergency ballast: what is held, and on a full disk the command that frees it at once. */
  private ballastStep(full: boolean): Draft {
    const r = this.remediators.find((x) => x.ballast !== undefined);
    return {
      step: "the emergency ballast",
      ...ballastStep(r?.ballast ?? null, (r?.mode as Mode | undefined) ?? null, full),
    };
  }

  // ------------------------------------------------------------ api-error-rate.md

  apiErrorRate(): Draft[] {
    return [
      this.cpuStep("the database's CPU and memory", true),
      this.iostatStep("disk I/O (iostat -x on the WAL device)"),
      this.networkStep(),
      this.dbErrorsStep(),
      {
        step: "collect the diagnostic bundle",
        verdict: "info",
        evidence:
          "agentctl bundle: status, this diagnosis, recent events and history, the kernel log's " +
          "storage lines, SMART, mounts and the agent's configuration, in one archive",
        action: "attach it to the incident before restarting anything",
      },
    ];
  }

  /** netstat -s and ip -s link: TCP retransmits and interface errors. */
  private networkStep(): Draft {
    const step = "netstat -s, ip -s link: retransmits and interface errors";
    const n = this.netstat;
    if (!n)
      return {
        step,
        verdict: "unknown",
        evidence: "no network samples (the netstat collector is off or starting)",
        action: null,
      };
    if (n.interval_seconds === null)
      return {
        step,
        verdict: "unknown",
        evidence: "first network sample: rates need two",
        action: null,
      };
    const l = hostLimits(this.c);
    const t = n.tcp;
    const ifErr = n.interfaces.map((i) => i.errors_per_second ?? 0);
    const verdict = judgeNetwork(t?.retrans_ratio ?? null, ifErr, l);
    const tcp =
      t === null
        ? "no TCP figures"
        : t.retrans_ratio === null
          ? "TCP: nothing sent over the interval"
          : `TCP: ${pct(t.retrans_ratio)} of segments sent were retransmitted` +
            (t.retrans_per_second === null ? "" : ` (${t.retrans_per_second.toFixed(1)}/s)`) +
            (t.timeouts === null ? "" : `, ${plural(t.timeouts, "timeout")} since boot`);
    const bad = n.interfaces.filter((i) => (i.errors_per_second ?? 0) > 0);
    const ifs =
      n.interfaces.length === 0
        ? "no interfaces but loopback"
        : bad.length === 0
          ? `${n.interfaces.map((i) => i.name).join(", ")}: no errors or drops over the interval`
          : bad
              .map(
                (i) =>
                  `${i.name}: ${(i.errors_per_second ?? 0).toFixed(1)} errors+drops/s (rx errors ` +
                  `${i.rx_errors}, dropped ${i.rx_dropped}; tx errors ${i.tx_errors}, dropped ${i.tx_dropped})`,
              )
              .join("; ");
    return {
      step,
      verdict,
      evidence: `${tcp}; ${ifs}`,
      action:
        bad.length > 0
          ? `${bad[0]?.name} is dropping or corrupting packets: check its link (ethtool -S, cabling, the switch port)`
          : verdict === "warn"
            ? "packets are lost between this node and its peers: clients time out and retry; check the path"
            : null,
    };
  }

  /** The database's own WAL fsync and storage operation errors. */
  private dbErrorsStep(): Draft {
    const step = "the database's wal_fsync_errors and storage_operation_errors";
    const d = this.dbMetrics();
    if (!d.ok) return { step, verdict: "unknown", evidence: d.why, action: null };
    const { errors, storage_operation_errors: ops } = d.m;
    if (errors === null && ops === null)
      return {
        step,
        verdict: "unknown",
        evidence:
          "the database exports neither stemedb_wal_fsync_errors_total nor stemedb_storage_operation_errors_total",
        action: null,
      };
    const any = (errors ?? 0) > 0 || (ops ?? 0) > 0;
    return {
      step,
      verdict: judgeDbErrors(any),
      evidence:
        `stemedb_wal_fsync_errors_total ${errors ?? "n/a"}, ` +
        `stemedb_storage_operation_errors_total ${ops ?? "n/a"} (since the database started)`,
      action: any
        ? "the API errors come from storage: walk wal-fsync-failure.md and storage-errors.md"
        : null,
    };
  }
}

/** replication-lag step 4: the runbook's dd test, passively how to run it, or its result. */
function writeTestStep(c: Config, t: WriteTestOutcome | undefined): Draft {
  const step = "WAL write performance (dd bs=1M oflag=direct)";
  const d = c.diagnose;
  if (t === undefined)
    return {
      step,
      verdict: "info",
      evidence:
        `not measured: the test writes real data (up to ${mib(d.write_test_size)} of 1 MiB ` +
        "O_DIRECT writes on the WAL's filesystem, outside the WAL directory, at most " +
        `${dur(d.write_test_deadline / 1000)})`,
      action: "as root: agentctl diagnose --active replication-lag",
    };
  if (t.state === "skipped")
    return { step, verdict: "info", evidence: `not run: ${t.reason}`, action: null };
  if (t.state === "failed")
    return { step, verdict: "unknown", evidence: `the test failed: ${t.reason}`, action: null };
  const mbs = (b: number) => `${(b / 1e6).toFixed(0)} MB/s`;
  const medium =
    t.rotational === null
      ? "(rotational flag not known: SSD figure)"
      : t.rotational
        ? "for a rotational disk"
        : "for an SSD";
  const part = t.stopped_at_deadline
    ? `, stopped at the ${dur(d.write_test_deadline / 1000)} deadline`
    : "";
  return {
    step,
    verdict: t.verdict,
    evidence:
      `${mbs(t.bytes_per_second)} (${mib(t.bytes)} in ${fmtSeconds(t.seconds)}${part}); per 1 MiB ` +
      `write p50 ${fmtSeconds(t.p50_seconds)}, p99 ${fmtSeconds(t.p99_seconds)}; expected over ` +
      `${mbs(t.expected_bytes_per_second)} ${medium}` +
      (t.devices.length > 0 ? ` on ${t.devices.join(", ")}` : ""),
    action:
      t.verdict === "ok"
        ? null
        : "the WAL device writes slower than it should: with no competing I/O (step 3), suspect the " +
          "device (storage-errors.md: SMART, kernel log)",
  };
}

const hms = (iso: string) => `${iso.slice(11, 19)}Z`;

/** Step 3's action: a pause the agent holds, what backup_pause will do in its mode, or what the operator can do. */
function backupAction(
  c: Config,
  bp: RemediatorState | undefined,
  slow: boolean,
  listedHeavy: string | null,
  otherHeavy: string | null,
): string | null {
  const held = bp?.units?.filter((u) => u.paused !== null) ?? [];
  if (held.length > 0)
    return held
      .map(
        (u) =>
          `${u.unit} paused (${u.paused?.method}) since ${hms(u.paused?.since ?? "")}, ` +
          `resumes by ${hms(u.paused?.until ?? "")} at the latest: ` +
          `${u.paused?.reason} (agentctl backups)`,
      )
      .join("; ");
  if (!slow) return null;
  if (listedHeavy !== null) {
    const bpc = c.remediators.backup_pause;
    const { mode, note, last } = modeOf(bp, bpc.mode);
    if (mode === "on")
      return (
        `${listedHeavy} competes for the disk: backup_pause pauses it once p99 has been over ` +
        `${fmtSeconds(bpc.fsync_p99_threshold / 1000)} for ${dur(bpc.for / 1000)}${last}`
      );
    return (
      `${listedHeavy} competes for the disk: pause it with agentctl backups pause ${listedHeavy} --for ` +
      `30m (backup_pause is ${mode}${note})${last}`
    );
  }
  return otherHeavy !== null
    ? `${otherHeavy} competes for the disk; it is not a listed backup unit, so the agent will not touch it`
    : null;
}

/** What keeps segments plain beyond the newest ones: not worth compressing, or no room to. */
function compressNotes(c: Config, wc: RemediatorState | undefined): string {
  const notes: string[] = [];
  if (wc?.incompressible)
    notes.push(
      `${wc.incompressible} left plain as incompressible (over max_ratio ${c.remediators.wal_compress.max_ratio})`,
    );
  if (wc?.space_short) notes.push(`wal_compress stopped: ${wc.space_short}`);
  return notes.length > 0 ? `; ${notes.join("; ")}` : "";
}

/** storage-errors step 5's action (ls wal/): what wal_compress does in its mode, or the command to run by hand. */
function compressAction(c: Config, wc: RemediatorState | undefined, candidates: number): string {
  const keep = c.remediators.wal_compress.keep_uncompressed;
  const { mode, note, last } = modeOf(wc, c.remediators.wal_compress.mode);
  if (mode === "on")
    return `wal_compress compresses all but the newest ${keep} segments (${candidates} now)${last}`;
  return (
    `compress all but the newest ${keep} segments (${candidates} segments; ` +
    `wal_compress is ${mode}${note}): gzip $(ls -t ${c.wal.dir}/segment.*.wal | tail -n ` +
    `+${keep + 1})${last}`
  );
}

/** A remediator's mode as it runs (else as configured), what dry-run means, and its last decision. */
function modeOf(
  r: RemediatorState | undefined,
  configured: string,
): { mode: string; note: string; last: string } {
  const mode = r?.mode ?? configured;
  return {
    mode,
    note: mode === "dry-run" ? ', it only plans; mode = "on" lets it act' : "",
    last: r ? ` (last decision: ${r.last_decision})` : "",
  };
}
