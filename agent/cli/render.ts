// agentctl's text views. Plain when piped or NO_COLOR; colour on a terminal.
import type { StatusReport } from "../agent.js";
import type { Area, AreaVerdict } from "../status/areas.js";
import type { Diagnosis } from "../status/diagnose.js";
import type { EventRow, HistoryAnswer, TopIoSummary } from "../status/queries.js";
import type { BackupPauseState } from "../../remediators/backup_pause/remediator.js";
import { ago, humanBytes, humanDuration, paint, type Style, table } from "./format.js";

const AREA_TITLE: Record<Area["area"], string> = {
  disks: "disks",
  fsync: "fsync",
  stalls: "stalls",
  smart: "SMART",
  mounts: "mounts",
  filesystems: "space",
  ballast: "ballast",
  kernel: "kernel log",
  wal: "WAL",
  competing_io: "other I/O",
  remediation: "remediation",
  agent: "agent",
};

export function verdictWord(
  style: Style,
  v: AreaVerdict | "info" | "healthy" | "degraded" | "critical",
): string {
  const colour =
    v === "ok" || v === "healthy"
      ? "green"
      : v === "warn" || v === "degraded"
        ? "yellow"
        : v === "unknown" || v === "info"
          ? "dim"
          : "red";
  return paint(style, colour, v.toUpperCase().padEnd(7));
}

export function renderStatus(
  s: StatusReport,
  style: Style,
  verbose: boolean,
  now = Date.now(),
): string {
  const a = s.agent;
  const out: string[] = [];
  out.push(
    `${paint(style, "bold", "storage")} ${verdictWord(style, s.verdict)} stemedb-agent ${a.version}, ` +
      `pid ${a.pid}, up ${humanDuration(a.uptime_seconds)}, config ` +
      `${a.config_file ?? "(embedded defaults)"}`,
  );
  const rows = s.areas.map((x) => [verdictWord(style, x.verdict), AREA_TITLE[x.area], x.summary]);
  out.push(table(rows, ""));
  if (verbose) {
    for (const x of s.areas)
      for (const d of x.details) out.push(`          ${AREA_TITLE[x.area]}: ${d}`);
    out.push("");
    out.push("collectors");
    const cr: string[][] = [["name", "every", "last success", "runs", "failed", "last error"]];
    for (const c of s.collectors) {
      const err = c.last_error
        ? `${paint(style, c.consecutive_failures > 0 ? "red" : "dim", c.last_error.reason)} ` +
          `${ago(c.last_error.at, now)}: ${c.last_error.message}`
        : "-";
      cr.push([
        c.name,
        humanDuration(c.interval_seconds),
        ago(c.last_success, now),
        String(c.runs),
        String(c.failures),
        err,
      ]);
    }
    out.push(table(cr));
    const h = s.history;
    out.push(
      `history  ${h.path ?? "(in memory only)"}  ${humanBytes(h.size_bytes)}  writes ` +
        `${h.write_state}${h.last_error ? `: ${h.last_error}` : ""}`,
    );
    out.push(
      `  rows: ${h.rows.series} series, ${h.rows.samples} samples, ${h.rows.rollups} rollups, ` +
        `${h.rows.events} events; ${h.pending_rows} pending, ${h.dropped_rows} dropped`,
    );
  }
  return `${out.join("\n")}\n`;
}

/** What the verdict rests on, in a line: the steps that need a look, or how many are fine. */
export function diagnosisSummary(d: Diagnosis): string {
  const all = d.runbooks.flatMap((r) => r.steps.map((s) => ({ r, s })));
  const judged = all.filter(({ s }) => s.verdict !== "info");
  const n = judged.length;
  const flagged = judged.filter(({ s }) => s.verdict === "warn" || s.verdict === "crit");
  if (flagged.length > 0) {
    const named = flagged.slice(0, 3).map(({ r, s }) => `${r.file} ${s.n}. ${s.step}`);
    const more = flagged.length > 3 ? `; ${flagged.length - 3} more` : "";
    return `${flagged.length} of ${n} steps need a look (${named.join("; ")}${more})`;
  }
  const unknown = judged.filter(({ s }) => s.verdict === "unknown").length;
  if (unknown === n)
    return `nothing known yet (${plural(n, "step")} unknown: the agent may have just started)`;
  return `${n - unknown} of ${plural(n, "step")} ok${unknown > 0 ? `, ${unknown} not known` : ""}`;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** Each runbook as a heading with its file and alert, then its numbered steps. */
export function renderDiagnosis(d: Diagnosis, style: Style): string {
  const out: string[] = [
    `${paint(style, "bold", "diagnosis")} ${verdictWord(style, d.verdict)}: ${diagnosisSummary(d)}`,
  ];
  for (const r of d.runbooks) {
    out.push(
      "",
      `${verdictWord(style, r.verdict)} ${paint(style, "bold", r.file)} (alert ${r.alert}): ${r.title}`,
    );
    for (const s of r.steps) {
      out.push(`  ${verdictWord(style, s.verdict)} ${s.n}. ${s.step}`);
      out.push(`          ${s.evidence}`);
      if (s.action) out.push(`          ${paint(style, "bold", "->")} ${s.action}`);
    }
  }
  return `${out.join("\n")}\n`;
}

const SPARK = "▁▂▃▄▅▆▇█";

export function sparkline(values: readonly number[]): string {
  if (values.length === 0) return "";
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return values
    .map((v) => SPARK[hi === lo ? 0 : Math.min(7, Math.floor(((v - lo) / (hi - lo)) * 8))])
    .join("");
}

const fmt = (metric: string, v: number) =>
  metric.endsWith("_seconds")
    ? v >= 1
      ? `${v.toFixed(2)}s`
      : `${(v * 1000).toFixed(v < 0.01 ? 2 : 1)}ms`
    : metric.endsWith("_bytes") || metric.endsWith("bytes_per_second")
      ? humanBytes(Math.round(v))
      : metric.endsWith("_ratio")
        ? `${(v * 100).toFixed(1)}%`
        : v >= 100
          ? v.toFixed(0)
          : v.toFixed(2);

export function renderHistory(h: HistoryAnswer, _style: Style): string {
  if (h.series.length === 0) {
    const recorded = h.available_metrics
      ? `; recorded metrics: ${h.available_metrics.join(", ")}`
      : "";
    return `no history for ${JSON.stringify(h.metric)}${recorded}\n`;
  }
  const out: string[] = [];
  for (const s of h.series) {
    const labels = Object.entries(s.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
    out.push(
      `${h.metric}{${labels}} over ${humanDuration(h.since_seconds)} (${h.resolution} samples)`,
    );
    out.push(`  p99 ${sparkline(s.buckets.map((b) => b.p99))}`);
    const rows: string[][] = [["time (UTC)", "avg", "p99", "max", "n"]];
    const step = Math.max(1, Math.ceil(s.buckets.length / 12));
    for (let i = 0; i < s.buckets.length; i += step) {
      const b = s.buckets[i];
      if (!b) continue;
      rows.push([
        new Date(b.ts).toISOString().slice(5, 19).replace("T", " "),
        fmt(h.metric, b.avg),
        fmt(h.metric, b.p99),
        fmt(h.metric, b.max),
        String(b.count),
      ]);
    }
    out.push(table(rows));
  }
  return `${out.join("\n")}\n`;
}

export function renderEvents(events: readonly EventRow[], style: Style): string {
  if (events.length === 0) return "no events in that window\n";
  const sev = (s: string) =>
    paint(style, s === "crit" ? "red" : s === "warn" ? "yellow" : "dim", s.padEnd(4));
  return `${events
    .map(
      (e) =>
        `${e.ts.slice(0, 19).replace("T", " ")}  ${sev(e.severity)}  ${e.class.padEnd(11)} ` +
        `${(e.subject ?? "").padEnd(12)} ${e.message}`,
    )
    .join("\n")}\n`;
}

export function renderTopIo(rows: readonly TopIoSummary[]): string {
  if (rows.length === 0) return "no process did storage I/O in that window\n";
  const t: string[][] = [
    ["pid", "command", "unit", "write avg", "write max", "read avg", "read max", "seen"],
  ];
  for (const r of rows)
    t.push([
      String(r.pid),
      r.comm,
      r.unit ?? "-",
      `${humanBytes(Math.round(r.avg_write_bps))}/s`,
      `${humanBytes(Math.round(r.max_write_bps))}/s`,
      `${humanBytes(Math.round(r.avg_read_bps))}/s`,
      `${humanBytes(Math.round(r.max_read_bps))}/s`,
      `${r.intervals}x`,
    ]);
  return `${table(t)}\n`;
}

/** agentctl backups: each listed unit, whether the agent holds it paused, until when, and its budget. */
export function renderBackups(s: BackupPauseState, style: Style, now = Date.now()): string {
  const f = s.fsync;
  const out: string[] = [];
  const p99 = f.p99_seconds === null ? "n/a" : `${(f.p99_seconds * 1000).toFixed(1)} ms`;
  const breaker = s.breaker_open ? paint(style, "red", ", CIRCUIT BREAKER OPEN") : "";
  const threshold = `${(f.threshold_seconds * 1000).toFixed(0)} ms`;
  const slow =
    f.slow_for_seconds > 0
      ? `, slow for ${humanDuration(f.slow_for_seconds)}; ` +
        `${humanDuration(f.for_seconds)} of that triggers a pause`
      : "";
  out.push(
    `backup_pause: mode ${s.mode}${breaker}; WAL fsync p99 ${p99} over the window ` +
      `(threshold ${threshold}${slow})`,
  );
  const t: string[][] = [["unit", "systemd", "agent", "until", "I/O", "paused 24h", "budget left"]];
  for (const u of s.units) {
    const frozen =
      u.systemd?.freezer && u.systemd.freezer !== "running" ? ` (${u.systemd.freezer})` : "";
    const sd = u.systemd ? `${u.systemd.active}/${u.systemd.sub}${frozen}` : "?";
    const held = u.paused
      ? paint(style, "yellow", `paused (${u.paused.method}, by ${u.paused.by})`)
      : u.cooldown_until
        ? `cooldown until ${u.cooldown_until.slice(11, 19)}`
        : "-";
    const until = u.paused
      ? `${u.paused.until.slice(11, 19)} (in ` +
        `${humanDuration(Math.max(0, Math.round((Date.parse(u.paused.until) - now) / 1000)))})`
      : "-";
    const io =
      u.io_bytes_per_second === null ? "-" : `${humanBytes(Math.round(u.io_bytes_per_second))}/s`;
    t.push([
      u.unit,
      sd,
      held,
      until,
      io,
      humanDuration(u.paused_last_24h_seconds),
      u.budget_left_seconds <= 0
        ? paint(style, "red", "spent")
        : humanDuration(u.budget_left_seconds),
    ]);
  }
  out.push(table(t));
  for (const u of s.units)
    if (u.paused) out.push(`${u.unit}: ${u.paused.reason}; dead-man's switch ${u.paused.deadman}`);
  out.push(`last decision: ${s.last_decision}`);
  return `${out.join("\n")}\n`;
}
