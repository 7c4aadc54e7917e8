// kmsg's sinks: faults by disk and class, incidents, records, lost and suppressed counts and
// the source in use; events per fault record (rate-limited per device and class, the rest
// summarised), per incident and for lost records; the resume point, committed with them.
import type { Registry } from "prom-client";
import type { HistoryReader, HistoryRow, Sinks } from "../../core/collector.js";
import type { StoredEvent } from "../../core/history/queries.js";
import type { EventInput } from "../../core/history/store.js";
import { counter, gauge } from "../../core/metrics/define.js";
import { NS } from "../../core/metrics/registry.js";
import type { Classified } from "./classify.js";
import { describeClasses, type Incident, IncidentGrouper } from "./incidents.js";
import type { KmsgObservation } from "./observation.js";

/** History keeps this many events per (device, class) per minute; the rest are summarised. */
const EVENTS_PER_MINUTE = 20;
export const RESUME_KEY = "kmsg.resume";
export const CURSOR_KEY = "kmsg.journal_cursor";

interface Limit {
  minute: number;
  written: number;
  dropped: number;
  severity: Classified["severity"];
}

export function kmsgSinks(registry: Registry): Sinks<KmsgObservation> {
  const r = registry;
  const errors = counter(r, {
    name: `${NS}kernel_io_errors_total`,
    help:
      "Storage fault records in the kernel log, by whole disk and class (every record counts; " +
      "history is rate-limited).",
    labelNames: ["device", "class"],
  });
  const incidents = counter(r, {
    name: `${NS}kernel_io_incidents_total`,
    help:
      "Storage failures in the kernel log, by whole disk and worst severity: " +
      "the lines one failure prints (sense, block layer, buffer cache) within seconds on one disk are " +
      "one incident.",
    labelNames: ["device", "severity"],
  });
  const lostTotal = counter(r, {
    name: `${NS}kernel_log_lost_records_total`,
    help:
      "Kernel log records overwritten before the agent read them (EPIPE and sequence gaps): " +
      "fault counts are lower bounds.",
  });
  const suppressedTotal = counter(r, {
    name: `${NS}kernel_log_suppressed_total`,
    help: 'Kernel messages the kernel itself dropped ("N callbacks suppressed"): fault counts are lower bounds.',
  });
  const recordsTotal = counter(r, {
    name: `${NS}kernel_log_records_total`,
    help: "Kernel log records read, by source (kmsg, journal).",
    labelNames: ["source"],
  });
  const sourceGauge = gauge(r, {
    name: `${NS}kernel_log_source`,
    help: "Where the kernel log is read from: 1 for the source in use.",
    labelNames: ["source"],
  });
  let source: string | null = null;
  const grouper = new IncidentGrouper();
  const limiter = new Map<string, Limit>();
  /** Incidents closed by the latest metrics() call, written as events by the next events(). */
  let closed: Incident[] = [];
  const quiet = (o: KmsgObservation) => o.records === 0 && o.lost === 0;

  const close = (all: Incident[]) => {
    for (const i of all) incidents.labels(i.device, i.severity).inc();
    closed = all;
  };

  function* summarise(key: string, l: Limit): Iterable<EventInput> {
    const [device, cls] = key.split("\u0000");
    yield {
      class: "kernel",
      kind: cls ?? "unknown",
      severity: l.severity === "error" ? "warn" : l.severity,
      subject: device,
      message:
        `${l.dropped} more ${cls} records on ${device} in that minute (counted in the metrics, ` +
        `not stored one by one)`,
      data: { suppressed_in_history: l.dropped },
    };
    l.dropped = 0;
  }

  function* takeIncidents(): Iterable<EventInput> {
    const all = closed;
    closed = [];
    for (const i of all) yield incidentEvent(i);
  }

  return {
    observation: {
      metrics(o) {
        if (o.source !== source) {
          source = o.source;
          sourceGauge.reset();
          sourceGauge.set({ source }, 1);
        }
        const wall = Date.now();
        for (const f of o.faults) {
          if (f.count > 0)
            grouper.add({
              device: f.device,
              class: f.class,
              severity: f.severity,
              atMs: f.atMs,
              wallMs: wall,
              line: f.line,
              ...(f.sector !== undefined ? { sector: f.sector } : {}),
              ...(f.request !== undefined ? { request: f.request } : {}),
              ...(f.repeats ? { repeats: true as const } : {}),
            });
        }
        // Incidents close a few seconds after their last line, on a tick that may read nothing.
        close(grouper.flush(wall));
        // Most ticks read nothing: then there is nothing to count, record or remember.
        if (quiet(o)) return;
        recordsTotal.labels(o.source).inc(o.records);
        if (o.lost > 0) lostTotal.inc(o.lost);
        if (o.suppressed > 0) suppressedTotal.inc(o.suppressed);
        for (const f of o.faults) if (f.count > 0) errors.labels(f.device, f.class).inc(f.count);
      },
      *history(o): Iterable<HistoryRow> {
        // The resume point commits in the same transaction as the events it accounts for.
        if (!quiet(o) && o.resume)
          yield {
            state: "cursor" in o.resume ? CURSOR_KEY : RESUME_KEY,
            value: JSON.stringify(o.resume),
          };
      },
      *events(o): Iterable<EventInput> {
        yield* takeIncidents();
        if (quiet(o)) return;
        const minute = Math.floor(Date.now() / 60_000);
        for (const f of o.faults) {
          const key = `${f.device}\u0000${f.class}`;
          let l = limiter.get(key);
          if (!l || l.minute !== minute) {
            if (l && l.dropped > 0) yield* summarise(key, l);
            l = { minute, written: 0, dropped: 0, severity: f.severity };
            if (limiter.size > 1000) limiter.clear(); // bounded memory in a storm of distinct devices
            limiter.set(key, l);
          }
          if (l.written < EVENTS_PER_MINUTE) {
            l.written++;
            yield {
              class: "kernel",
              kind: f.class,
              severity: f.severity === "error" ? "warn" : f.severity,
              subject: f.device,
              message: f.line,
              data: { logical: f.logical, seq: f.seq },
            };
          } else l.dropped++;
        }
        for (const [key, l] of limiter)
          if (l.minute !== minute && l.dropped > 0) yield* summarise(key, l);
        // Its own class: status and diagnose count "kernel" rows as fault lines.
        if (o.suppressed > 0)
          yield {
            class: "kernel_log",
            kind: "suppressed",
            severity: "info",
            message: `${o.suppressed} kernel messages suppressed by rate limiting ("callbacks suppressed")`,
          };
        if (o.lost > 0)
          yield {
            class: "kernel",
            kind: "kernel_log.lost",
            severity: "warn",
            message:
              `${o.lost} kernel log records were overwritten before they could be read; ` +
              `fault counts are lower bounds`,
          };
      },
    },
    close: {
      metrics() {
        close(grouper.flush(Date.now(), true));
      },
      *events(): Iterable<EventInput> {
        yield* takeIncidents();
        // Nothing counted goes unmentioned.
        for (const [key, l] of limiter) if (l.dropped > 0) yield* summarise(key, l);
      },
    },
  };
}

function incidentEvent(i: Incident): EventInput {
  const where = [
    i.sectors.length ? `sector ${i.sectors.slice(0, 3).join(", ")}` : "",
    i.requests.length ? i.requests.slice(0, 3).join(", ") : "",
  ]
    .filter(Boolean)
    .join("; ");
  const scope = `${i.lines} line${i.lines === 1 ? "" : "s"}${where ? `; ${where}` : ""}`;
  const message =
    `${i.repeats ? "repeating: " : ""}${describeClasses(i)} (${scope}): ` +
    i.firstLine.slice(0, 300);
  // Its own history class: per-line "kernel" events keep their one-row-per-record meaning.
  return {
    class: "kernel_incident",
    kind: i.severity,
    severity: i.severity === "error" ? "warn" : i.severity,
    subject: i.device,
    message,
    data: {
      classes: i.classes,
      lines: i.lines,
      sectors: i.sectors,
      requests: i.requests,
      worst: i.severity,
    },
  };
}

/** What the kernel log held on one whole disk between two wall-clock times, from history. */
export interface KernelLogSeen {
  /** Fault lines on the disk (past history's per-minute limit, at least that limit). */
  readonly lines: number;
  /** Records overwritten before they were read, on any disk. */
  readonly lost: number;
  /** Messages the kernel suppressed by rate limiting, on any disk. */
  readonly suppressed: number;
}
/** The kernel-log collector's record of one disk between two wall-clock times (ms). */
export type KernelLogQuery = (disk: string, fromMs: number, toMs: number) => KernelLogSeen;

const LEADING = /^(\d+) /;
const leading = (m: string) => Number(LEADING.exec(m)?.[1] ?? 1);

/**
 * The typed query other collectors read the kernel log's record through (errcounters' cross-
 * check): null without history (--once). Bounded: at most QUERY_LIMIT rows per question.
 */
export function kernelLogSeen(h: HistoryReader | null): KernelLogQuery | null {
  if (!h) return null;
  return (disk, since, until) => {
    const w = { since, until, limit: QUERY_LIMIT };
    const lines = h.events({ ...w, class: "kernel", subject: disk });
    const lost = h.events({ ...w, class: "kernel", kind: "kernel_log.lost" });
    const quiet = h.events({ ...w, class: "kernel_log", kind: "suppressed" });
    const sum = (es: readonly StoredEvent[]) => es.reduce((a, e) => a + leading(e.message), 0);
    return { lines: lines.length, lost: sum(lost), suppressed: sum(quiet) };
  };
}
const QUERY_LIMIT = 100;
