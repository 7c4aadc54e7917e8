// bio's sinks. Metrics: one latency histogram per device x operation x sync (41 bounds, 16 us to
// 16.8 s, each an exact edge of the script's buckets: 44 series per histogram), the oldest
// request in flight per device, per-unit bytes, requests and latency for the top units and
// "other" (a unit that has not been in the top for UNIT_IDLE observations loses its series),
// what was lost and why, bpftrace's exits, and which tier runs. History: the oldest in-flight
// age per device. Events: the eBPF tier going away (bpftrace died: the diskstats tier
// meanwhile) and coming back, through core/conditions.ts.
import type { Registry } from "prom-client";
import type { EventInput } from "../../core/history/store.js";
import type { HistoryRow, Sinks } from "../../core/collector.js";
import { Conditions } from "../../core/conditions.js";
import type { Logger } from "../../core/log.js";
import { bucketedHistogram } from "../../core/metrics/bucketed.js";
import { counter, gauge } from "../../core/metrics/define.js";
import { NS } from "../../core/metrics/registry.js";
import type { BioCounters, BioObservation } from "./observation.js";
import { EXPORT_BOUNDS_US } from "./parse.js";

/** Observations a unit may go without being in the top before its series are removed. */
export const UNIT_IDLE = 300;

const LOST: ReadonlyArray<[Exclude<keyof BioCounters, "inflight_leaked" | "exits">, string]> = [
  ["unmatched", "unmatched"],
  ["dropped", "map_full"],
  ["unattributed", "unattributed"],
  ["bad_lines", "bad_line"],
  ["bad_keys", "bad_key"],
];

/** Devices whose histograms are exported at most (up to 264 series each): the label stays bounded. */
export const MAX_DEVICES = 16;

export function bioSinks(registry: Registry, log: Logger): Sinks<BioObservation> {
  const r = registry;
  const latency = bucketedHistogram<"device" | "op" | "sync">(r, {
    name: `${NS}bio_latency_seconds`,
    help:
      "Block I/O request latency from issue (or insert, with queue_time) to completion, per " +
      "device, operation and sync flag (eBPF, block tracepoints).",
    bounds: EXPORT_BOUNDS_US.map((us) => us / 1e6),
  });
  const oldest = gauge(r, {
    name: `${NS}bio_inflight_oldest_seconds`,
    help: "Age of the oldest block I/O request in flight per device with requests in flight (eBPF).",
    labelNames: ["device", "op"],
  });
  const unitBytes = counter(r, {
    name: `${NS}bio_unit_bytes_total`,
    help: "Bytes of completed block I/O per submitting unit (top units, the rest as other).",
    labelNames: ["unit", "op"],
  });
  const unitIos = counter(r, {
    name: `${NS}bio_unit_requests_total`,
    help: "Completed block I/O requests per submitting unit (top units, the rest as other).",
    labelNames: ["unit"],
  });
  const unitLatency = counter(r, {
    name: `${NS}bio_unit_latency_seconds_total`,
    help: "Sum of request latencies per submitting unit (divide by requests for the mean).",
    labelNames: ["unit"],
  });
  const lost = counter(r, {
    name: `${NS}bio_lost_total`,
    help: "Block I/O completions or output the eBPF tier could not use, by reason.",
    labelNames: ["reason"],
  });
  const exits = counter(r, {
    name: `${NS}bio_bpftrace_exits_total`,
    help: "Times bpftrace ended on its own (it is restarted with back-off).",
  });
  const leaked = gauge(r, {
    name: `${NS}bio_inflight_leaked`,
    help:
      "Requests the in-flight counts hold that the kernel's own count says are not there (lost " +
      "updates of bpftrace's non-atomic sums), left out of the oldest request in flight.",
  });
  const active = gauge(r, {
    name: `${NS}bio_ebpf_active`,
    help: "1 while the eBPF latency tier runs; 0 while only diskstats averages are available.",
  });
  for (const [, reason] of LOST) lost.labels(reason).inc(0);
  exits.inc(0);

  let latest: BioObservation | null = null;
  /** The devices whose histograms are exported: the first MAX_DEVICES by name. */
  let shown = new Set<string>();
  const omitted = gauge(r, {
    name: `${NS}bio_devices_omitted`,
    help: `Devices beyond the first ${MAX_DEVICES} by name, whose latency histograms are not exported.`,
  });
  latency.source = () =>
    (latest?.histograms ?? [])
      .filter((h) => shown.has(h.device))
      .map((h) => ({
        labels: { device: h.device, op: h.op, sync: h.sync ? "sync" : "async" },
        cumulative: h.cumulative,
        sum: h.sum_seconds,
      }));
  let lastCounters: BioCounters | null = null;
  const idle = new Map<string, number>();
  const tier = new Conditions<"tier", string>();
  const deviceLabels = new Map<string, { device: string }>();

  return {
    observation: {
      metrics(o) {
        latest = o;
        const devices = [...new Set(o.histograms.map((h) => h.device))].sort();
        shown = new Set(devices.slice(0, MAX_DEVICES));
        omitted.set(devices.length - shown.size);
        active.set(o.tier === "ebpf" ? 1 : 0);
        oldest.reset();
        for (const i of o.inflight) oldest.labels(i.device, i.op).set(i.age_seconds);
        const c = o.counters;
        // The collector's counters only grow; a clamp keeps a counter from ever throwing here.
        for (const [k, reason] of LOST)
          lost.labels(reason).inc(Math.max(0, c[k] - (lastCounters?.[k] ?? 0)));
        exits.inc(Math.max(0, c.exits - (lastCounters?.exits ?? 0)));
        leaked.set(c.inflight_leaked);
        lastCounters = c;
        for (const u of o.units) {
          idle.set(u.unit, 0);
          unitBytes.labels(u.unit, "read").inc(u.read_bytes);
          unitBytes.labels(u.unit, "write").inc(u.write_bytes);
          unitIos.labels(u.unit).inc(u.ios);
          if (u.mean_latency_seconds !== null)
            unitLatency.labels(u.unit).inc(u.mean_latency_seconds * u.ios);
        }
        for (const [unit, n] of idle) {
          if (n < UNIT_IDLE) {
            idle.set(unit, n + 1);
            continue;
          }
          idle.delete(unit);
          unitBytes.remove(unit, "read");
          unitBytes.remove(unit, "write");
          unitIos.remove(unit);
          unitLatency.remove(unit);
        }
      },
      *history(o): Iterable<HistoryRow> {
        if (o.tier !== "ebpf") return;
        const ts = Date.now();
        for (const i of o.inflight) {
          let labels = deviceLabels.get(i.device);
          if (!labels) {
            labels = { device: i.device };
            if (deviceLabels.size < 256) deviceLabels.set(i.device, labels);
          }
          yield { series: "bio_inflight_oldest_seconds", labels, value: i.age_seconds, ts };
        }
      },
      *events(o): Iterable<EventInput> {
        const status = o.tier === "ebpf" ? "ebpf" : o.fallback.kind;
        const t = tier.set("tier", status);
        if (!t) return;
        if (o.tier === "diskstats" && o.fallback.kind === "restarting") {
          log.warn({ reason: o.fallback.reason }, "bio: eBPF tier down");
          yield {
            class: "bio",
            kind: "bio.ebpf_down",
            severity: "warn",
            message:
              `eBPF latency tier down, diskstats averages only: ${o.fallback.reason}; ` +
              `retrying in ${o.fallback.retry_in_seconds} s`,
            data: { reason: o.fallback.reason },
          };
        } else if (o.tier === "diskstats" && o.fallback.kind === "unavailable") {
          yield {
            class: "bio",
            kind: "bio.ebpf_unavailable",
            severity: "info",
            message: `eBPF latency tier unavailable, diskstats averages only: ${o.fallback.reason}`,
          };
        } else if (o.tier === "ebpf" && t.before !== undefined && t.before !== "starting") {
          yield {
            class: "bio",
            kind: "bio.ebpf_recovered",
            severity: "info",
            message: "eBPF latency tier running again",
          };
        }
      },
    },
  };
}
