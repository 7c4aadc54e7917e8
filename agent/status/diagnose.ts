// agentctl diagnose: the node-local steps of the StemeDB runbooks, in runbook order, each with
// its evidence and the action taken by the agent or suggested to the operator.
import type { Config } from "../../core/config/schema.js";
import type { HistoryStore } from "../../core/history/store.js";
import {
  diskLimits,
  diskSaturated,
  fsyncLimits,
  judgeCompeting,
  judgeDisk,
  judgeFilesystem,
  judgeFsync,
  judgeProbeFailure,
  judgeSmart,
  mountFindingVerdict,
  storageErrorsVerdict,
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
  worst,
} from "./areas.js";

export interface Step {
  readonly runbook: "slow-wal-fsync" | "wal-fsync-failure" | "storage-errors" | "disk-full";
  readonly step: string;
  readonly verdict: AreaVerdict;
  readonly evidence: string;
  /** What the agent did, or what the operator should do; null when nothing is needed. */
  readonly action: string | null;
}

export interface Diagnosis {
  readonly verdict: AreaVerdict;
  readonly steps: Step[];
}

/** `remediators`: what the agent's remediators hold and decided, so a step can say what was already done. */
export function diagnose(
  c: Config,
  latest: Latest,
  h: HistoryStore | null,
  now = Date.now(),
  remediators: readonly RemediatorState[] = [],
): Diagnosis {
  const steps: Step[] = [];
  const add = (s: Step) => steps.push(s);
  const probe = latest.get("fsync_probe")?.observation;
  const disk = latest.get("diskstats")?.observation;
  const proc = latest.get("procio")?.observation;
  const wal = latest.get("wal")?.observation;
  const mounts = latest.get("mounts")?.observation;
  const smart = latest.get("smart")?.observation;
  const limits = fsyncLimits(c);
  const diskLim = diskLimits(c);
  const walDev = walDevices(latest);

  // ---- slow WAL fsync: 1 fsync latency, 2 iostat, 3 iotop, 4 write cache, 5 raw fsync test
  const okProbes = probe?.probes.filter((p) => p.state === "ok") ?? [];
  const p99s = okProbes.map((p) => ({
    mp: p.mountpoint,
    v:
      recentP99(h, "fsync_probe_seconds", { mountpoint: p.mountpoint }, 10 * 60_000, now) ??
      p.seconds,
  }));
  const worstP99 = p99s.reduce((a, b) => (b.v > a.v ? b : a), { mp: "", v: 0 });
  const db = wal?.database && wal.database.ok ? wal.database.p99 : null;
  const fsyncVerdict =
    p99s.length === 0 && db === null
      ? "unknown"
      : worst([judgeFsync(worstP99.v, limits), judgeFsync(db ?? 0, limits)]);
  const slow = fsyncVerdict === "crit";
  add({
    runbook: "slow-wal-fsync",
    step: "1. WAL fsync latency",
    verdict: fsyncVerdict,
    evidence:
      p99s.length === 0 && db === null
        ? "no fsync measurements (probe failing or not started; see WAL fsync failure below)"
        : `agent probe p99 ${fmtSeconds(worstP99.v)} over 10 min on ` +
          `${worstP99.mp}${db !== null ? `; database's own p99 ${fmtSeconds(db)}` : ""} (threshold ` +
          `${fmtSeconds(limits.crit)})`,
    action: slow ? "continue with the steps below to find the cause" : null,
  });
  const devRows = (disk?.devices ?? []).filter(
    (d) => walDev.length === 0 || walDev.includes(d.device),
  );
  const dv = devRows.map((d) => ({
    d: d.device,
    w: recentP99(h, "disk_w_await_seconds", { device: d.device }, 10 * 60_000, now),
    f: recentP99(h, "disk_f_await_seconds", { device: d.device }, 10 * 60_000, now),
    util: d.iostat?.util_pct ?? null,
    aqu: d.iostat?.aqu_sz ?? null,
  }));
  add({
    runbook: "slow-wal-fsync",
    step: "2. iostat -x on the WAL device",
    verdict:
      dv.length === 0
        ? "unknown"
        : worst(
            dv.map((x) => judgeDisk({ w_await: x.w, f_await: x.f, util_pct: x.util }, diskLim)),
          ),
    evidence:
      dv.length === 0
        ? "no WAL device samples"
        : dv
            .map(
              (x) =>
                `${x.d}: w_await p99 ${x.w === null ? "n/a" : fmtSeconds(x.w)}, ` +
                `f_await p99 ${x.f === null ? "n/a" : fmtSeconds(x.f)}, ` +
                `%util ${x.util?.toFixed(0) ?? "n/a"}, aqu-sz ${x.aqu?.toFixed(2) ?? "n/a"} (10 min)`,
            )
            .join("; "),
    action: dv.some((x) => diskSaturated(x.util, diskLim))
      ? "the device is saturated: find who else writes (next step)"
      : null,
  });
  // User processes first: kernel threads (writeback, loop) do someone else's I/O and cannot be paused.
  const others = proc?.top.filter(notStemedb) ?? [];
  const top = [...others.filter((r) => !r.kthread), ...others.filter((r) => r.kthread)];
  const backups = new Set(c.remediators.backup_pause.units);
  const heavy = top.filter(heavyCompetitor);
  add({
    runbook: "slow-wal-fsync",
    step: "3. iotop: competing I/O",
    verdict: !proc ? "unknown" : judgeCompeting(fsyncVerdict, heavy.length > 0),
    evidence:
      top.length === 0
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
      c,
      remediators.find((r) => r.name === "backup_pause"),
      slow,
      heavy.find((r) => r.unit !== null && backups.has(r.unit))?.unit ?? null,
      heavy[0]?.comm ?? null,
    ),
  });
  const info = disk?.roles.filter((r) => r.role === "wal").flatMap((r) => r.chain) ?? [];
  const wc = info.filter((d) => d.writeCache !== null);
  add({
    runbook: "slow-wal-fsync",
    step: "4. write cache",
    verdict: wc.length === 0 ? "unknown" : "ok",
    evidence:
      wc.length === 0
        ? "write cache mode not known for the WAL device"
        : wc
            .map((d) => `${d.name}: ${d.writeCache}${d.rotational ? ", rotational" : ""}`)
            .join("; "),
    action:
      wc.some((d) => d.writeCache === "write back") && slow
        ? "write-back cache: each fsync flushes it; check the controller's cache battery/BBU or power-loss protection"
        : null,
  });
  add({
    runbook: "slow-wal-fsync",
    step: "5. raw fsync test",
    // Judged on the last probe itself: step 1 already judges the p99 over time.
    verdict:
      okProbes.length === 0 ? "unknown" : worst(okProbes.map((p) => judgeFsync(p.seconds, limits))),
    evidence:
      okProbes.length === 0
        ? "the probe has no result"
        : okProbes.map((p) => `last probe on ${p.mountpoint}: ${fmtSeconds(p.seconds)}`).join("; "),
    action:
      slow && okProbes.every((p) => judgeFsync(p.seconds, limits) === "ok")
        ? "fast right now while the p99 is high: the slowness comes and goes with load (step 3), " +
          "not a device that is slow all the time"
        : null,
  });

  // ---- WAL fsync failure: probe errors, read-only, kernel errors on the WAL device
  const failing = probe?.probes.filter((p) => p.state !== "ok") ?? [];
  add({
    runbook: "wal-fsync-failure",
    step: "1. can the WAL filesystem fsync at all",
    verdict:
      failing.length === 0
        ? okProbes.length > 0
          ? "ok"
          : "unknown"
        : worst(failing.map(judgeProbeFailure)),
    evidence:
      failing.length === 0
        ? "the fsync probe succeeds"
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
      ? "the filesystem is read-only: check the kernel log below, then fsck before remounting"
      : failing.some((p) => p.state === "error" && p.errno === "ENOSPC")
        ? "the filesystem is full: see disk full"
        : failing.some((p) => p.state === "error" && p.errno === "ENOENT")
          ? `the WAL directory ${c.wal.dir} does not exist: check [wal] dir`
          : null,
  });
  const walMount = mounts?.mounts.find((m) => m.paths.some((p) => p.role === "wal"));
  add({
    runbook: "wal-fsync-failure",
    step: "2. mount | grep wal",
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
  });
  // In incidents (the lines of one failure are one); lines only while none has closed yet.
  const kern = h ? kernelLog(h, now - 86_400_000, 10) : null;
  const inc = kern?.incidents ?? [];
  const lines = kern?.lines ?? [];
  const onWal =
    inc.length > 0
      ? inc.filter((i) => walDev.includes(i.device)).map((i) => i.device)
      : lines.filter((k) => walDev.includes(k.subject ?? "")).map((k) => k.subject);
  const none = inc.length === 0 && lines.length === 0;
  add({
    runbook: "storage-errors",
    step: "1. dmesg | grep -i 'i/o error' (24 h)",
    verdict: storageErrorsVerdict(!none, onWal.length > 0),
    evidence: none
      ? "no storage errors in the kernel log"
      : inc.length > 0
        ? `${kern?.incidentCount} incident${kern?.incidentCount === 1 ? "" : "s"} (${kern?.lineCount} ` +
          `fault lines): ${inc.slice(0, 4).map(incidentLine).join("; ")}`
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
  });
  const sm = smart?.devices ?? [];
  const smBad = sm.filter(
    (d) => d.verdict === "fail" || d.verdict === "warn" || d.state === "unresponsive",
  );
  add({
    runbook: "storage-errors",
    step: "2. smartctl -a",
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
  });

  // ---- disk full
  const fs = walMount?.space;
  const full = walMount?.full_in_seconds ?? Infinity;
  add({
    runbook: "disk-full",
    step: "1. df -h on the WAL filesystem",
    verdict: !fs ? "unknown" : judgeFilesystem(fs.used_ratio, full),
    evidence: fs
      ? `${walMount?.mountpoint}: ${pct(fs.used_ratio)} used, ${mib(fs.avail_bytes)} free, ` +
        fullIn(full, " at the recent rate")
      : "no statfs of the WAL filesystem",
    action: null,
  });
  const keep = c.remediators.wal_compress.keep_uncompressed;
  const sealed = wal?.segments.sealed;
  const candidates = Math.max(0, (sealed?.count ?? 0) + (wal?.segments.active.count ?? 0) - keep);
  add({
    runbook: "disk-full",
    step: "2. ls wal/: what can be compressed",
    verdict: !wal ? "unknown" : "ok",
    evidence: wal
      ? `${(sealed?.count ?? 0) + wal.segments.active.count} uncompressed segments ` +
        `(${mib((sealed?.bytes ?? 0) + wal.segments.active.bytes)}), ` +
        `${wal.segments.compressed.count} compressed; ` +
        `oldest ${dur(wal.oldest_age_seconds ?? 0)} old` +
        compressNotes(
          c,
          remediators.find((r) => r.name === "wal_compress"),
        )
      : "no WAL inventory",
    action:
      fs && judgeFilesystem(fs.used_ratio, full) !== "ok" && candidates > 0
        ? compressAction(
            c,
            remediators.find((r) => r.name === "wal_compress"),
            candidates,
          )
        : null,
  });
  return { verdict: worst(steps.map((s) => s.verdict)), steps };
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

/** Disk-full step 2's action: what wal_compress does in its mode, or the command to run by hand. */
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
