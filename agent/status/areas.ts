// "Is this node's storage OK, and if not, why": one line per area, each with a verdict and the
// one number that matters, from the collectors' latest observations and the history.
import type { MountsObservation } from "../../collectors/mounts/observation.js";
import type { ProcioObservation } from "../../collectors/procio/observation.js";
import { type Config, DEFAULT_CONFIG_FILE } from "../../core/config/schema.js";
import type { KernelIncidentRow, KernelLog } from "../../core/history/queries.js";
import type { HistoryStore } from "../../core/history/store.js";
import { stallLimits } from "../../core/stalls.js";
import {
  agentVerdict,
  diskLimits,
  fsyncLimits,
  heavyCompetitor,
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
  mountFindingVerdict,
  type Verdict,
  verdictRank,
  worst,
} from "../../judge/index.js";

export type AreaVerdict = Verdict;
export { heavyCompetitor, worst };
export type AreaName =
  | "disks"
  | "fsync"
  | "stalls"
  | "smart"
  | "mounts"
  | "filesystems"
  | "ballast"
  | "kernel"
  | "wal"
  | "competing_io"
  | "remediation"
  | "agent";

export interface Area {
  readonly area: AreaName;
  readonly verdict: AreaVerdict;
  /** The one number that matters, as text ("w_await p99 142 ms on sdb"). */
  readonly summary: string;
  /** Supporting facts, one per line. */
  readonly details: string[];
}

import { type BallastView, ballastStatus } from "../../remediators/ballast/view.js";
import type { Mode } from "../../remediators/framework.js";

/** One map, one type: collectors/observations.ts. */
import type { Latest } from "../../collectors/observations.js";
import { type CounterFindings, counterFindings } from "./errcounters.js";
export type { Latest };

export const fmtSeconds = (s: number) =>
  s >= 1
    ? `${s.toFixed(2)} s`
    : s >= 0.01
      ? `${(s * 1000).toFixed(0)} ms`
      : `${(s * 1000).toFixed(2)} ms`;
export const pct = (r: number) => `${(r * 100).toFixed(r < 0.1 ? 1 : 0)}%`;
export const mib = (b: number) =>
  b >= 1024 ** 3 ? `${(b / 1024 ** 3).toFixed(1)} GiB` : `${(b / 1024 ** 2).toFixed(1)} MiB`;
export const dur = (s: number) =>
  !Number.isFinite(s)
    ? "never"
    : s < 120
      ? `${Math.round(s)} s`
      : s < 7200
        ? `${Math.round(s / 60)} min`
        : s < 172800
          ? `${(s / 3600).toFixed(1)} h`
          : `${(s / 86400).toFixed(1)} d`;
/** Time to full at the recent rate, as a phrase: never full is "not filling". */
export const fullIn = (s: number, qualifier = "") =>
  Number.isFinite(s) ? `full in ${dur(s)}${qualifier}` : "not filling";

/** p99 of one series' raw samples in the last `windowMs`. */
export function recentP99(
  h: HistoryStore | null,
  metric: string,
  labels: Record<string, string>,
  windowMs: number,
  now = Date.now(),
): number | null {
  return h?.recentP99(metric, labels, windowMs, now) ?? null;
}

export function walDevices(latest: Latest): string[] {
  const d = latest.get("diskstats")?.observation;
  return [
    ...new Set(
      d?.roles.filter((r) => r.role === "wal").flatMap((r) => r.chain.map((c) => c.name)) ?? [],
    ),
  ];
}

export interface RemediatorState {
  readonly name: string;
  readonly mode: string;
  readonly breaker_open: boolean;
  readonly busy: string | null;
  readonly last_decision: string;
  /** backup_pause: the listed units and the pauses the agent holds. */
  readonly units?: ReadonlyArray<{
    readonly unit: string;
    readonly paused: {
      readonly method: string;
      readonly since: string;
      readonly until: string;
      readonly reason: string;
    } | null;
  }>;
  /** wal_compress: why the last round stopped for want of free space, until a segment is done again. */
  readonly space_short?: string | null;
  /** wal_compress: segments left plain because they do not compress below max_ratio. */
  readonly incompressible?: number;
  /** ballast: the emergency ballast, held or not. */
  readonly ballast?: BallastView;
}

export function buildAreas(
  c: Config,
  latest: Latest,
  h: HistoryStore | null,
  agentHealth: { verdict: string; reasons: string[] },
  now = Date.now(),
  remediators: readonly RemediatorState[] = [],
  /** The configuration file in use (null: the embedded defaults), for hints on what to set. */
  configFile: string | null = null,
  /** The agent's user: what a run without root cannot see is said where it is missing. */
  uid = 0,
): Area[] {
  const f = fsync(c, latest, h, now);
  return [
    disks(c, latest, h, now),
    f,
    stalls(c, latest, h, now),
    smart(latest, uid),
    mounts(latest),
    filesystems(latest),
    ballast(remediators),
    withCounters(
      kernel(h, now, latest.get("kmsg")?.observation.source, uid),
      counterFindings(latest, h, now),
    ),
    wal(latest, configFile),
    competing(latest, f.verdict),
    remediation(c, remediators),
    agent(agentHealth, uid),
  ];
}

/** What a run without root goes without, and why (npm start as a user, a test box). */
export const NOT_ROOT =
  "SMART (smartctl opens the disks' device nodes), other users' processes (I/O attribution, " +
  "the database's CPU and memory), /dev/kmsg where kernel.dmesg_restrict=1, " +
  "and acting on the database's files";

function disks(c: Config, latest: Latest, h: HistoryStore | null, now: number): Area {
  const d = latest.get("diskstats")?.observation;
  if (!d)
    return {
      area: "disks",
      verdict: "unknown",
      summary: "no disk samples yet (diskstats collector off or starting)",
      details: latencyTier(c, latest),
    };
  const walDevs = walDevices(latest);
  const rows = d.devices.map((dev) => ({
    dev: dev.device,
    wal: walDevs.includes(dev.device),
    util: dev.iostat?.util_pct ?? null,
    p99: recentP99(h, "disk_w_await_seconds", { device: dev.device }, 60_000, now),
  }));
  rows.sort((a, b) => Number(b.wal) - Number(a.wal) || (b.p99 ?? 0) - (a.p99 ?? 0));
  const limits = diskLimits(c);
  const verdictOf = (r: (typeof rows)[number]): AreaVerdict =>
    judgeDisk({ w_await: r.p99, util_pct: r.util }, limits);
  const first = rows[0];
  if (!first)
    return {
      area: "disks",
      verdict: "unknown",
      summary: "no block devices matched collectors.diskstats include/exclude",
      details: [],
    };
  const line = (r: (typeof rows)[number]) =>
    `${r.dev}${r.wal ? " (WAL)" : ""}: w_await p99 ` +
    `${r.p99 === null ? "n/a (no writes)" : fmtSeconds(r.p99)} over 1 min, ` +
    `%util ${r.util === null ? "n/a" : r.util.toFixed(0)}`;
  return {
    area: "disks",
    verdict: worst(rows.map(verdictOf)),
    summary: line(first),
    details: [...rows.slice(1, 6).map(line), ...latencyTier(c, latest)],
  };
}

/** Which latency tier runs (per-I/O eBPF, or diskstats averages) and why not the other. */
export function latencyTier(c: Config, latest: Latest): string[] {
  if (c.collectors.bio.enabled === false)
    return [
      'latency tier: diskstats averages (collectors.bio.enabled = false; "auto" measures every I/O where eBPF can run)',
    ];
  const b = latest.get("bio")?.observation;
  if (!b) return ["latency tier: eBPF starting"];
  if (b.tier === "diskstats")
    return [`latency tier: diskstats averages; eBPF ${b.fallback.kind}: ${b.fallback.reason}`];
  const worstP999 = [...b.histograms]
    .filter((h) => h.p999_seconds !== null)
    .sort((x, y) => (y.p999_seconds ?? 0) - (x.p999_seconds ?? 0))[0];
  const stalled = b.inflight.filter((i) => i.age_seconds >= 1);
  return [
    `latency tier: eBPF, every I/O${b.queue_time ? " (from queue insertion)" : ""}` +
      (worstP999
        ? `; slowest p99.9 last interval ${fmtSeconds(worstP999.p999_seconds ?? 0)} ` +
          `(${worstP999.device} ${worstP999.op}, ${worstP999.interval_count} requests)`
        : "; no requests last interval"),
    ...stalled
      .slice(0, 3)
      .map((i) => `${i.device}: oldest ${i.op} in flight for ${fmtSeconds(i.age_seconds)}`),
  ];
}

function fsync(c: Config, latest: Latest, h: HistoryStore | null, now: number): Area {
  const f = latest.get("fsync_probe")?.observation;
  const wal = latest.get("wal")?.observation;
  const db = wal?.database && wal.database.ok ? wal.database.p99 : null;
  if (!f || f.probes.length === 0)
    return {
      area: "fsync",
      verdict: "unknown",
      summary: "no fsync probe results yet",
      details: [],
    };
  const limits = fsyncLimits(c);
  const details: string[] = [];
  const verdicts: AreaVerdict[] = [];
  let summary = "";
  for (const p of f.probes) {
    if (p.state === "error") {
      verdicts.push(judgeProbeFailure(p));
      const line = `probe in ${p.dir} fails: ${p.errno}${p.errno === "ENOENT" ? " (directory missing)" : ""}`;
      summary ||= line;
      details.push(line);
      continue;
    }
    if (p.state === "stalled") {
      verdicts.push(judgeProbeFailure(p));
      const line = `probe in ${p.dir} stalled for ${dur(p.stalled_seconds)}`;
      summary ||= line;
      details.push(line);
      continue;
    }
    const p99 =
      recentP99(h, "fsync_probe_seconds", { mountpoint: p.mountpoint }, 60_000, now) ?? p.seconds;
    verdicts.push(judgeFsync(p99, limits));
    const line = `fsync p99 ${fmtSeconds(p99)} over 1 min on ${p.mountpoint} (last ${fmtSeconds(p.seconds)})`;
    summary ||= line;
    details.push(line);
  }
  if (db !== null) {
    verdicts.push(judgeFsync(db, limits));
    details.push(`database's own WAL fsync p99 ${fmtSeconds(db)}`);
  }
  return { area: "fsync", verdict: worst(verdicts), summary, details: details.slice(1) };
}

function smart(latest: Latest, uid: number): Area {
  const s = latest.get("smart")?.observation;
  const read = s?.devices.some((d) => d.state === "ok" || d.state === "standby");
  if (uid !== 0 && s && !read)
    return {
      area: "smart",
      verdict: "unknown",
      summary: `not read: the agent is not root (uid ${uid}), and smartctl must open the disks`,
      details: s.devices.slice(0, 8).map((d) => `${d.name}: ${d.detail ?? d.state}`),
    };
  if (!s)
    return { area: "smart", verdict: "unknown", summary: "no SMART results yet", details: [] };
  if (s.smartctl_error)
    return { area: "smart", verdict: "unknown", summary: s.smartctl_error, details: [] };
  const devs = s.devices;
  if (devs.length === 0)
    return {
      area: "smart",
      verdict: "unknown",
      summary: "no SMART results yet (first polls running, or no disks found)",
      details: [],
    };
  const checked = devs.filter((d) => d.state === "ok" || d.state === "standby");
  const bad = devs.filter(
    (d) => d.verdict === "fail" || d.verdict === "warn" || d.state === "unresponsive",
  );
  const line = (d: (typeof devs)[number]) =>
    `${d.name}: ${d.state === "ok" || d.state === "standby" ? d.verdict : d.state}${
      d.reasons.length
        ? ` (${
            d.reasons
              .filter((r) => r.level !== "info")
              .map((r) => r.message)
              .join("; ") || d.reasons[0]?.message
          })`
        : ""
    }`;
  const summary =
    bad.length > 0
      ? line(bad[0] as (typeof devs)[number])
      : checked.length > 0
        ? `${checked.length} of ${plural(devs.length, "disk")} pass`
        : `${plural(devs.length, "disk")}, none SMART-capable here ` +
          `(${devs[0]?.detail ?? devs[0]?.state})`;
  return {
    area: "smart",
    verdict: judgeSmart(devs),
    summary,
    details: devs
      .filter((d) => d !== bad[0])
      .slice(0, 8)
      .map(line),
  };
}

function mounts(latest: Latest): Area {
  const m = latest.get("mounts")?.observation;
  if (!m)
    return { area: "mounts", verdict: "unknown", summary: "no mount information yet", details: [] };
  const findings = m.mounts.flatMap((x) =>
    x.findings.map((f) => ({ ...f, mp: x.mountpoint, fs: x.fs_type })),
  );
  const serious = findings.filter((f) => f.severity !== "info");
  const roles = (x: MountsObservation["mounts"][number]) => x.paths.map((p) => p.role).join("+");
  const summary =
    serious.length > 0
      ? `${serious[0]?.mp}: ${serious[0]?.option} (${serious[0]?.reason})`
      : m.mounts.map((x) => `${x.mountpoint} ${x.fs_type} (${roles(x)}) ok`).join(", ");
  const base: Area = {
    area: "mounts",
    verdict: worst(findings.map((f) => mountFindingVerdict(f.severity))),
    summary,
    details: serious.slice(1).map((f) => `${f.mp}: ${f.option}: ${f.reason}`),
  };
  // Read-only shows in the fsync probe (EROFS) as soon as it happens, even before the flags are re-read.
  const erofs = latest
    .get("fsync_probe")
    ?.observation.probes.find((p) => p.state === "error" && p.errno === "EROFS");
  if (erofs && !m.mounts.some((x) => x.read_only && x.mountpoint === erofs.mountpoint)) {
    return {
      ...base,
      verdict: "crit",
      summary: `${erofs.mountpoint}: read-only (the fsync probe gets EROFS)`,
      details: [base.summary, ...base.details],
    };
  }
  return base;
}

function filesystems(latest: Latest): Area {
  const m = latest.get("mounts")?.observation;
  if (!m)
    return {
      area: "filesystems",
      verdict: "unknown",
      summary: "no filesystem information yet",
      details: [],
    };
  const rows = m.mounts
    .filter((x) => x.space)
    .map((x) => ({
      mp: x.mountpoint,
      used: x.space?.used_ratio ?? 0,
      full: x.full_in_seconds ?? Infinity,
      avail: x.space?.avail_bytes ?? 0,
    }));
  const v = (r: (typeof rows)[number]): AreaVerdict => judgeFilesystem(r.used, r.full);
  rows.sort((a, b) => verdictRank(v(b)) - verdictRank(v(a)) || b.used - a.used);
  const line = (r: (typeof rows)[number]) =>
    `${r.mp} ${pct(r.used)} used, ${mib(r.avail)} free, ${fullIn(r.full)}`;
  const first = rows[0];
  return first
    ? {
        area: "filesystems",
        verdict: worst(rows.map(v)),
        summary: line(first),
        details: rows.slice(1).map(line),
      }
    : { area: "filesystems", verdict: "unknown", summary: "statfs failed", details: [] };
}

/** The emergency ballast on the WAL filesystem (remediators.ballast). */
function ballast(rs: readonly RemediatorState[]): Area {
  const r = rs.find((x) => x.ballast !== undefined);
  if (!r?.ballast)
    return { area: "ballast", verdict: "unknown", summary: "not known", details: [] };
  return { area: "ballast", ...ballastStatus(r.ballast, r.mode as Mode) };
}

export type { KernelIncidentRow, KernelLineRow, KernelLog } from "../../core/history/queries.js";

/** The kernel log's storage failures since `since`, from history (see HistoryStore.kernelLog). */
export function kernelLog(h: HistoryStore, since: number, limit = 20): KernelLog {
  return h.kernelLog(since, limit);
}

const hhmmss = (ts: number) => new Date(ts).toISOString().slice(11, 19);
export const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** "crit on sdb at 10:02:03 UTC: scsi_medium_error x2, blk_medium_error (3 lines; sector 5256)" */
export function incidentLine(i: KernelIncidentRow): string {
  const classes = Object.entries(i.classes)
    .map(([k, n]) => (n > 1 ? `${k} x${n}` : k))
    .join(", ");
  const where = i.sectors.length ? `; sector ${i.sectors.slice(0, 3).join(", ")}` : "";
  return `${i.severity} on ${i.device} at ${hhmmss(i.ts)} UTC: ${classes || "?"} (${plural(i.lines, "line")}${where})`;
}

/** The kernel's own error counters join the kernel log's area: the worse of the two leads. */
function withCounters(area: Area, c: CounterFindings): Area {
  if (c.summary === null && c.details.length === 0) return area;
  const leads = c.summary !== null && verdictRank(c.verdict) > verdictRank(area.verdict);
  return {
    area: "kernel",
    verdict: worst([area.verdict, c.verdict]),
    summary: leads && c.summary !== null ? c.summary : area.summary,
    details: leads
      ? [area.summary, ...area.details, ...c.details.slice(1)]
      : [...area.details, ...c.details],
  };
}

function kernel(
  h: HistoryStore | null,
  now: number,
  source: "kmsg" | "journal" | undefined,
  uid: number,
): Area {
  if (!h) return { area: "kernel", verdict: "unknown", summary: "no history", details: [] };
  const area = kernelArea(h, now);
  if (source !== "journal") return area;
  // journalctl shows a user outside adm and systemd-journal nothing of the kernel, and says so
  // only on stderr: "no errors" then means "nothing read".
  const from =
    "read from journalctl -k: /dev/kmsg is not readable" +
    (uid !== 0
      ? ` (not root, uid ${uid}; the journal needs root or group adm/systemd-journal)`
      : "");
  return { ...area, details: [...area.details, from] };
}

function kernelArea(h: HistoryStore, now: number): Area {
  const k = kernelLog(h, now - 86_400_000);
  const first = k.incidents[0];
  if (first) {
    // One failure, one incident: a failed read is not four errors.
    const names = Object.keys(first.classes).join(", ");
    const linesNote = `${plural(k.lineCount, "fault line")} in the kernel log behind them`;
    return {
      area: "kernel",
      verdict: kernelVerdict(first.severity),
      summary: `${plural(k.incidentCount, "incident")} in 24 h, worst ${first.severity} on ${first.device} (${names})`,
      details: [...k.incidents.slice(0, 7).map(incidentLine), linesNote],
    };
  }
  // Lines not grouped yet: an incident closes 5 s after its last line (or history from an
  // agent that did not group). Said as lines, never as nothing.
  const top = k.lines[0];
  if (!top)
    return {
      area: "kernel",
      verdict: "ok",
      summary: "no storage errors in the kernel log in the last 24 h",
      details: [],
    };
  return {
    area: "kernel",
    verdict: worst(k.lines.map((r) => kernelVerdict(r.sev))),
    summary:
      `${plural(k.lineCount, "storage error line")} in 24 h, no incident closed yet; most: ` +
      `${top.n} ${top.kind} on ${top.subject ?? "?"} (last ${hhmmss(top.last)} UTC)`,
    details: k.lines.slice(1, 8).map((r) => `${r.n} ${r.kind} on ${r.subject ?? "?"}`),
  };
}

/**
 * A missing WAL directory on a first run usually means the defaults do not fit this node (or it
 * is not a StemeDB node): say which keys to set, and where.
 */
export function walDirHint(configFile: string | null): string {
  const where =
    configFile ?? `${DEFAULT_CONFIG_FILE} (not present: running on the embedded defaults)`;
  return (
    "if the WAL lives elsewhere, set [wal] dir, [stemedb] data_dir and [stemedb] service " +
    `in ${where}, then reload (systemctl reload stemedb-agent)`
  );
}

function wal(latest: Latest, configFile: string | null): Area {
  const w = latest.get("wal")?.observation;
  if (!w) return { area: "wal", verdict: "unknown", summary: "no WAL inventory yet", details: [] };
  const verdict = judgeWalFindings(w.findings.map((f) => f.kind));
  const s = w.segments;
  const count =
    `${s.active.count + s.sealed.count} segments (${mib(s.active.bytes + s.sealed.bytes)}), ` +
    `${s.compressed.count} compressed`;
  const last = w.active ? `, last write ${dur(w.active.write_age_seconds)} ago` : "";
  const first = w.findings[0];
  return {
    area: "wal",
    verdict,
    summary: first
      ? `${first.message}${first.files.length ? `: ${first.files.slice(0, 3).join(", ")}` : ""}` +
        (first.kind === "dir_missing" ? " (wrong path? set [wal] dir; -v says where)" : "")
      : `${count}${last}`,
    details: [
      ...(first ? [`${count}${last}`] : []),
      ...w.findings.slice(1).map((f) => f.message),
      ...(w.findings.some((f) => f.kind === "dir_missing") ? [walDirHint(configFile)] : []),
    ],
  };
}

/** Not StemeDB itself (the database and this agent do not compete with the WAL). */
export const notStemedb = (r: { comm: string }) => !isStemedbProcess(r.comm);

/** Shown in-flight operations at least this old (seconds): below it, a busy disk's normal queue. */
const IN_FLIGHT_SHOWN = 1;

/**
 * What is stuck now (the stalls collector: database WAL writes by file, devices with no
 * completion; the probe is the fsync area's), and the episodes of the last hour, the history
 * store's included (those are only known once the write returned).
 */
function stalls(c: Config, latest: Latest, h: HistoryStore | null, now: number): Area {
  const s = latest.get("stalls")?.observation;
  if (!s)
    return {
      area: "stalls",
      verdict: "unknown",
      summary: "no stall samples yet (stalls collector off or starting)",
      details: [],
    };
  const limits = stallLimits(c);
  const rows = [
    ...s.db.threads.map((th) => ({
      age: th.age_seconds,
      text:
        `database ${th.call} on ${th.file} in flight for ${dur(th.age_seconds)} ` +
        `(thread ${th.tid} of ${th.comm}[${th.pid}], in D)`,
    })),
    ...s.devices.map((d) => ({
      age: d.age_seconds,
      text:
        d.via === "ebpf"
          ? `${d.device}: a ${d.op ?? "block"} request in flight for ${dur(d.age_seconds)} (eBPF, exact)`
          : `${d.device}: oldest request waiting ${dur(d.age_seconds)} or more, nothing completed`,
    })),
  ]
    .filter((r) => r.age >= IN_FLIGHT_SHOWN)
    .sort((a, b) => b.age - a.age);
  const recent = (h?.events({ since: now - 3_600_000, class: "disk", limit: 500 }) ?? []).filter(
    (e) => e.kind.startsWith("stall.") && e.kind.endsWith(".cleared"),
  );
  const episodes =
    recent.length > 0
      ? `${plural(recent.length, "episode")} ended in the last hour, the last: ${recent[0]?.message}`
      : null;
  const details = [
    ...rows.slice(1, 6).map((r) => r.text),
    ...(s.db.unknown !== null ? [`database threads not all seen: ${s.db.unknown}`] : []),
    ...(episodes && rows.length > 0 ? [episodes] : []),
  ];
  const first = rows[0];
  if (first)
    return {
      area: "stalls",
      verdict: worst(rows.map((r) => judgeInFlight(r.age, limits))),
      summary: first.text,
      details,
    };
  if (s.db.unknown !== null)
    return {
      area: "stalls",
      verdict: "unknown",
      summary: `database WAL writes not visible: ${s.db.unknown}`,
      details,
    };
  const n = s.db.processes;
  const now_ =
    `nothing in flight for ${dur(limits.slow_seconds)} or more ` +
    `(${n} database process${n === 1 ? "" : "es"}, devices)`;
  // An episode that ended is no verdict now (StemeDBStorageStallEnded warns the fleet of it).
  return {
    area: "stalls",
    verdict: "ok",
    summary: episodes ? `${now_}; ${episodes}` : now_,
    details: [],
  };
}

/** Informational, except while WAL fsync is slow: then a heavy user-space reader/writer is a warning. */
function competing(latest: Latest, fsyncVerdict: AreaVerdict): Area {
  const p = latest.get("procio")?.observation;
  if (!p || p.interval_seconds === null)
    return {
      area: "competing_io",
      verdict: "unknown",
      summary: "no I/O attribution yet",
      details: [],
    };
  const rows = [...p.top.filter((r) => !r.kthread), ...p.top.filter((r) => r.kthread)];
  const top = rows[0];
  const line = (r: ProcioObservation["top"][number]) =>
    `${r.comm}[${r.pid}]${r.unit ? ` (${r.unit})` : ""}${r.kthread ? " (kernel thread)" : ""} writes ` +
    `${mib(r.write_bps)}/s, reads ${mib(r.read_bps)}/s`;
  return {
    area: "competing_io",
    verdict: judgeCompeting(fsyncVerdict, rows.some(heavyCompetitor)),
    summary: top ? `top: ${line(top)}` : "no process is doing storage I/O",
    details: [
      ...rows.slice(1, 5).map(line),
      ...(p.unreadable > 0 ? [`${p.unreadable} processes not readable (capabilities)`] : []),
    ],
  };
}

function remediation(c: Config, rs: readonly RemediatorState[]): Area {
  const broken = rs.filter((r) => r.breaker_open);
  if (broken.length > 0)
    return {
      area: "remediation",
      verdict: "warn",
      summary: `${broken.map((r) => r.name).join(", ")}: circuit breaker open (agentctl remediations)`,
      details: rs.map((r) => `${r.name} (${r.mode}): ${r.last_decision}`),
    };
  // Units held paused come first: that is what an on-call SRE must know about (agentctl backups).
  const paused = rs.flatMap((r) => r.units ?? []).filter((u) => u.paused);
  const held = paused.map(
    (u) =>
      `${u.unit} paused (${u.paused?.method}) until ${u.paused?.until.slice(11, 19)}Z: ${u.paused?.reason}`,
  );
  const line = (r: RemediatorState) =>
    `${r.name} (${r.mode}): ${r.busy ? `working on ${r.busy}` : r.last_decision}`;
  if (held.length > 0)
    return {
      area: "remediation",
      verdict: "ok",
      summary: held[0] ?? "",
      details: [...held.slice(1), ...rs.map(line)],
    };
  // A remediator held back by a full filesystem is the one thing a disk-full page needs to hear.
  const short = rs.find((r) => r.space_short);
  if (short)
    return {
      area: "remediation",
      verdict: "warn",
      summary: `${short.name}: stopped, ${short.space_short}`,
      details: rs.filter((r) => r !== short).map(line),
    };
  const first = rs.find((r) => r.busy) ?? rs[0];
  return {
    area: "remediation",
    verdict: "ok",
    summary: first
      ? line(first)
      : `none configured (backup_pause ${c.remediators.backup_pause.mode})`,
    details: rs.filter((r) => r !== first).map(line),
  };
}

function agent(health: { verdict: string; reasons: string[] }, uid: number): Area {
  const limits = uid === 0 ? [] : [`not root (uid ${uid}), so without ${NOT_ROOT}`];
  return {
    area: "agent",
    verdict: agentVerdict(health.verdict),
    summary: health.reasons[0] ?? "all collectors running, history written",
    details: [...health.reasons.slice(1), ...limits],
  };
}
