// fsync_probe's sinks: the probe histogram, errors by errno and the stalled gauge; probe times
// into history; an event when a directory's probe changes between ok, error (by errno) and
// stalled. A probe that returns after its deadline takes the same route (the update sink).
import type { Registry } from "prom-client";
import type { EventInput } from "../../core/history/store.js";
import type { HistoryRow, Sinks } from "../../core/collector.js";
import { Conditions } from "../../core/conditions.js";
import type { Logger } from "../../core/log.js";
import { counter, gauge, histogram } from "../../core/metrics/define.js";
import { NS } from "../../core/metrics/registry.js";
import { AWAIT_BUCKETS } from "../diskstats/sink.js";
import {
  DEFAULT_STALL_LIMITS,
  type StallChange,
  StallDetector,
  stallEvent,
  type StallLimits,
  stallMetrics,
} from "../../core/stalls.js";
import type {
  FsyncProbeObservation,
  LateProbe,
  ProbeOutcome,
  ProbeTick,
  ProbeUpdate,
} from "./observation.js";

export const PROBE_SERIES = "fsync_probe_seconds";

export function fsyncProbeSinks(
  registry: Registry,
  log: Logger,
  limits: StallLimits = DEFAULT_STALL_LIMITS,
): Sinks<FsyncProbeObservation, ProbeUpdate> {
  const duration = histogram(registry, {
    name: `${NS}fsync_probe_duration_seconds`,
    help:
      "Time of one probe write plus fdatasync in the probed directory (a stalled probe is observed when " +
      "it returns).",
    labelNames: ["mountpoint"],
    buckets: AWAIT_BUCKETS,
  });
  const errors = counter(registry, {
    name: `${NS}fsync_probe_errors_total`,
    help: "Probes that failed, by errno (EIO, EROFS, ENOSPC, ENOENT, ...).",
    labelNames: ["mountpoint", "errno"],
  });
  const stalled = gauge(registry, {
    name: `${NS}fsync_probe_stalled_seconds`,
    help: "How long the probe in flight has been waiting; 0 when none is stuck.",
    labelNames: ["mountpoint"],
  });
  /** Per directory: ok, stalled or error:ERRNO. */
  const states = new Conditions<string, string>();
  // The in-flight ticks (each second): slow and stall episodes while a probe lasts.
  const shared = stallMetrics(registry);
  const inFlight = new StallDetector(limits);
  const mountOf = new Map<string, string>();
  let stallEvents: EventInput[] = [];
  const note = (cs: Array<StallChange | null>) => {
    for (const c of cs) {
      if (c === null) continue;
      const mountpoint = mountOf.get(c.key) ?? c.key;
      if (c.kind === "detected") {
        shared.episodes.inc({ source: "probe", level: c.level });
        log.warn(
          { dir: c.key, seconds: c.age_seconds, level: c.level },
          `fsync probe in flight for ${c.age_seconds.toFixed(1)} s`,
        );
      } else log.info({ dir: c.key, seconds: c.duration_seconds }, "fsync probe in flight no more");
      stallEvents.push(stallEvent("probe", mountpoint, { ...c, detail: c.key }));
    }
  };
  const tick = (u: ProbeTick) => {
    for (const e of u.ended) {
      mountOf.set(e.dir, e.mountpoint);
      note([inFlight.end(e.dir, e.seconds ?? undefined)]);
    }
    const oldest = new Map<string, number>();
    for (const f of u.in_flight) {
      mountOf.set(f.dir, f.mountpoint);
      oldest.set(f.mountpoint, Math.max(oldest.get(f.mountpoint) ?? 0, f.age_seconds));
    }
    for (const mp of new Set(mountOf.values()))
      shared.ongoing.set({ source: "probe", target: mp }, oldest.get(mp) ?? 0);
    note(inFlight.update(u.in_flight.map((f) => ({ key: f.dir, age_seconds: f.age_seconds }))));
  };

  return {
    observation: {
      metrics(o) {
        for (const p of o.probes) {
          const labels = { mountpoint: p.mountpoint };
          stalled.set(labels, p.state === "stalled" ? p.stalled_seconds : 0);
          if (p.state === "ok") duration.observe(labels, p.seconds);
          else if (p.state === "error") errors.inc({ mountpoint: p.mountpoint, errno: p.errno });
        }
      },
      *history(o): Iterable<HistoryRow> {
        const ts = Date.now();
        for (const p of o.probes)
          if (p.state === "ok")
            yield {
              series: PROBE_SERIES,
              labels: { mountpoint: p.mountpoint },
              value: p.seconds,
              ts,
            };
      },
      *events(o): Iterable<EventInput> {
        for (const p of o.probes) {
          const t = states.set(p.dir, p.state === "error" ? `error:${p.errno}` : p.state);
          // A probe that works from the start is no news.
          if (t && !(t.before === undefined && p.state === "ok")) yield transition(p, log);
        }
      },
    },
    update: {
      metrics(u) {
        if ("in_flight" in u) return tick(u);
        late(u);
      },
      *history(u): Iterable<HistoryRow> {
        if ("in_flight" in u) return;
        const { mountpoint, reply } = u;
        if (reply.ok) yield { series: PROBE_SERIES, labels: { mountpoint }, value: reply.seconds };
      },
      *events(): Iterable<EventInput> {
        const out = stallEvents;
        stallEvents = [];
        yield* out;
      },
    },
  };

  function late({ dir, mountpoint, reply }: LateProbe): void {
    if (reply.ok) {
      duration.observe({ mountpoint }, reply.seconds);
      log.warn({ dir, seconds: reply.seconds }, "fsync probe returned after its deadline");
    } else errors.inc({ mountpoint, errno: reply.code });
    stalled.set({ mountpoint }, 0);
  }
}

function transition(p: ProbeOutcome, log: Logger): EventInput {
  if (p.state === "ok") {
    log.info({ dir: p.dir }, "fsync probe recovered");
    return {
      class: "disk",
      kind: "fsync_probe.recovered",
      severity: "info",
      subject: p.mountpoint,
      message: `fsync probe in ${p.dir} works again (${(p.seconds * 1000).toFixed(2)} ms)`,
    };
  }
  if (p.state === "stalled") {
    log.error({ dir: p.dir, seconds: p.stalled_seconds }, "fsync probe stalled");
    return {
      class: "disk",
      kind: "fsync_probe.stalled",
      severity: "crit",
      subject: p.mountpoint,
      message: `fsync probe in ${p.dir} has not returned for ${p.stalled_seconds.toFixed(1)} s`,
    };
  }
  log.warn({ dir: p.dir, errno: p.errno, err: p.message }, "fsync probe failed");
  return {
    class: "disk",
    kind: "fsync_probe.failed",
    severity: p.errno === "ENOENT" || p.errno === "EACCES" ? "warn" : "crit",
    subject: p.mountpoint,
    message: `fsync probe in ${p.dir} failed: ${p.errno} (${p.message})`,
    data: { errno: p.errno },
  };
}
