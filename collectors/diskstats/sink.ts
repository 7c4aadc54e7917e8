// diskstats' sinks: the kernel's counters (wrap-corrected), in-flight, utilisation, queue depth
// and await histograms per device, the devices' roles; the iostat figures of each interval into
// history, by series name.
import type { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { HistoryRow, Sinks } from "../../core/collector.js";
import type { Labels } from "../../core/history/store.js";
import type { Logger } from "../../core/log.js";
import { counter, gauge, histogram } from "../../core/metrics/define.js";
import { NS } from "../../core/metrics/registry.js";
import { deltaU32, diskDelta, type Iostat } from "./iostat.js";
import type { DiskObservation, DiskstatsObservation, RoleMapping } from "./observation.js";
import type { DiskCounters } from "./parse.js";

export const AWAIT_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/**
 * Exported counters: metric name, help, the kernel's raw value, the factor to base units, and
 * the width the kernel prints it with (time fields are u32 milliseconds and wrap).
 */
interface CounterSpec {
  readonly name: string;
  readonly help: string;
  readonly raw: (c: DiskCounters) => number | undefined;
  readonly scale: number;
  readonly u32: boolean;
}
const SECTOR = 512;
const MS = 0.001;
const COUNTERS: readonly CounterSpec[] = [
  {
    name: "disk_reads_completed_total",
    help: "Reads completed (after merges).",
    raw: (c) => c.reads,
    scale: 1,
    u32: false,
  },
  {
    name: "disk_reads_merged_total",
    help: "Adjacent reads merged into one request.",
    raw: (c) => c.readsMerged,
    scale: 1,
    u32: false,
  },
  {
    name: "disk_read_bytes_total",
    help: "Bytes read.",
    raw: (c) => c.sectorsRead,
    scale: SECTOR,
    u32: false,
  },
  {
    name: "disk_read_time_seconds_total",
    help: "Total time spent by reads, queueing included.",
    raw: (c) => c.readMs,
    scale: MS,
    u32: true,
  },
  {
    name: "disk_writes_completed_total",
    help: "Writes completed (after merges; includes empty pre-flush writes).",
    raw: (c) => c.writes,
    scale: 1,
    u32: false,
  },
  {
    name: "disk_writes_merged_total",
    help: "Adjacent writes merged into one request.",
    raw: (c) => c.writesMerged,
    scale: 1,
    u32: false,
  },
  {
    name: "disk_written_bytes_total",
    help: "Bytes written.",
    raw: (c) => c.sectorsWritten,
    scale: SECTOR,
    u32: false,
  },
  {
    name: "disk_write_time_seconds_total",
    help: "Total time spent by writes, queueing included.",
    raw: (c) => c.writeMs,
    scale: MS,
    u32: true,
  },
  {
    name: "disk_io_time_seconds_total",
    help: "Time with at least one request in flight (rate = utilisation).",
    raw: (c) => c.ioMs,
    scale: MS,
    u32: true,
  },
  {
    name: "disk_io_time_weighted_seconds_total",
    help: "Sum of request time of all requests (rate = average queue depth).",
    raw: (c) => c.weightedMs,
    scale: MS,
    u32: true,
  },
  {
    name: "disk_discards_completed_total",
    help: "Discards completed.",
    raw: (c) => c.discard?.completed,
    scale: 1,
    u32: false,
  },
  {
    name: "disk_discards_merged_total",
    help: "Discards merged.",
    raw: (c) => c.discard?.merged,
    scale: 1,
    u32: false,
  },
  {
    name: "disk_discarded_bytes_total",
    help: "Bytes discarded.",
    raw: (c) => c.discard?.sectors,
    scale: SECTOR,
    u32: false,
  },
  {
    name: "disk_discard_time_seconds_total",
    help: "Total time spent by discards.",
    raw: (c) => c.discard?.ms,
    scale: MS,
    u32: true,
  },
  {
    name: "disk_flush_requests_total",
    help: "Flush requests completed by the device (not tracked for partitions).",
    raw: (c) => c.flush?.completed,
    scale: 1,
    u32: false,
  },
  {
    name: "disk_flush_requests_time_seconds_total",
    help: "Total time spent by flush requests: the device-level cost of fsync.",
    raw: (c) => c.flush?.ms,
    scale: MS,
    u32: true,
  },
];

/** History series recorded per device every interval, and where each value comes from. */
const HISTORY_SERIES: ReadonlyArray<readonly [string, (f: Iostat) => number | null]> = [
  ["disk_r_await_seconds", (f) => (f.r_await_ms === null ? null : f.r_await_ms / 1000)],
  ["disk_w_await_seconds", (f) => (f.w_await_ms === null ? null : f.w_await_ms / 1000)],
  ["disk_f_await_seconds", (f) => (f.f_await_ms === null ? null : f.f_await_ms / 1000)],
  ["disk_utilization_ratio", (f) => f.util_pct / 100],
  ["disk_queue_depth", (f) => f.aqu_sz],
  ["disk_reads_per_second", (f) => f.r_s],
  ["disk_writes_per_second", (f) => f.w_s],
  ["disk_read_bytes_per_second", (f) => f.rkB_s * 1024],
  ["disk_written_bytes_per_second", (f) => f.wkB_s * 1024],
  ["disk_flushes_per_second", (f) => f.f_s],
];

interface DeviceHandles {
  readonly counters: ReadonlyArray<readonly [CounterSpec, { inc(v: number): void }]>;
  readonly inFlight: { set(v: number): void };
  readonly util: { set(v: number): void };
  readonly queue: { set(v: number): void };
  readonly await: Record<"read" | "write" | "flush", { observe(v: number): void }>;
  /** One object per device while it lives: history recorders are bound to it. */
  readonly labels: Labels;
}

export function diskstatsSinks(
  registry: Registry,
  log: Logger,
  file: string,
): Sinks<DiskstatsObservation> {
  const s = new DiskstatsSink(registry, log, file);
  return { observation: { metrics: (o) => s.metrics(o), history: (o) => s.rows(o) } };
}

class DiskstatsSink {
  private readonly handles = new Map<string, DeviceHandles>();
  private readonly counters: ReadonlyArray<readonly [CounterSpec, Counter<"device">]>;
  private readonly inFlight: Gauge<"device">;
  private readonly util: Gauge<"device">;
  private readonly queue: Gauge<"device">;
  private readonly awaitHist: Histogram<"device" | "op">;
  private readonly parseProblems: Counter;
  private readonly roleInfo: Gauge<"device" | "role">;
  private readonly diskInfo: Gauge<"device" | "rotational" | "write_cache">;
  /** Devices whose series exist, so a vanished device's series can be removed. */
  private readonly exported = new Set<string>();
  private lastProblemLog = 0;
  private publishedRoles: readonly RoleMapping[] | undefined;

  constructor(
    registry: Registry,
    private readonly log: Logger,
    private readonly file: string,
  ) {
    const r = registry;
    this.counters = COUNTERS.map(
      (spec) =>
        [
          spec,
          counter(r, { name: NS + spec.name, help: spec.help, labelNames: ["device"] }),
        ] as const,
    );
    this.inFlight = gauge(r, {
      name: `${NS}disk_io_now`,
      help: "Requests in flight right now.",
      labelNames: ["device"],
    });
    this.util = gauge(r, {
      name: `${NS}disk_utilization_ratio`,
      help: "Share of the last interval with a request in flight (iostat %util / 100).",
      labelNames: ["device"],
    });
    this.queue = gauge(r, {
      name: `${NS}disk_queue_depth`,
      help: "Average requests in flight over the last interval (iostat aqu-sz).",
      labelNames: ["device"],
    });
    this.awaitHist = histogram(r, {
      name: `${NS}disk_await_seconds`,
      help:
        "Average request latency of each interval (iostat r_await/w_await/f_await)," +
        " one observation per interval in which such requests completed.",
      labelNames: ["device", "op"],
      buckets: AWAIT_BUCKETS,
    });
    this.roleInfo = gauge(r, {
      name: `${NS}disk_role`,
      help:
        "1 for each device the WAL or data directory's I/O lands on" +
        " (filesystem device, its disk, lower and backing devices).",
      labelNames: ["device", "role"],
    });
    this.diskInfo = gauge(r, {
      name: `${NS}disk_info`,
      help: "Write cache mode and rotational flag (sysfs) of the devices holding the WAL or data directory; always 1.",
      labelNames: ["device", "rotational", "write_cache"],
    });
    this.parseProblems = counter(r, {
      name: `${NS}disk_parse_problems_total`,
      help: "Lines of the diskstats file that could not be parsed and were skipped.",
    });
  }

  /** The iostat figures of the interval, per device (after metrics(), which binds the labels). */
  *rows(o: DiskstatsObservation): Iterable<HistoryRow> {
    const ts = Date.now();
    for (const d of o.devices) {
      const f = d.iostat;
      if (!f) continue;
      const labels = this.bound(d.device).labels;
      for (const [series, value] of HISTORY_SERIES) {
        const v = value(f);
        if (v !== null) yield { series, labels, value: v, ts };
      }
    }
  }

  private publishRoles(roles: readonly RoleMapping[]): void {
    this.roleInfo.reset();
    this.diskInfo.reset();
    for (const r of roles) {
      for (const d of r.chain) {
        this.roleInfo.set({ device: d.name, role: r.role }, 1);
        if (d.rotational !== null || d.writeCache !== null) {
          this.diskInfo.set(
            {
              device: d.name,
              rotational: d.rotational === null ? "unknown" : d.rotational ? "1" : "0",
              write_cache: d.writeCache ?? "unknown",
            },
            1,
          );
        }
      }
    }
  }

  metrics(o: DiskstatsObservation): void {
    if (o.roles !== this.publishedRoles) {
      this.publishedRoles = o.roles;
      this.publishRoles(o.roles);
    }
    if (o.problems.length > 0) {
      this.parseProblems.inc(o.problems.length);
      const now = Date.now();
      if (now - this.lastProblemLog > 600_000) {
        this.lastProblemLog = now;
        this.log.warn(
          { file: this.file, problems: o.problems.slice(0, 5), count: o.problems.length },
          "diskstats: lines skipped",
        );
      }
    }
    const present = new Set<string>();
    for (const d of o.devices) {
      present.add(d.device);
      this.exportCounters(d);
      const b = this.bound(d.device); // after: a counter reset forgets the device's old children
      b.inFlight.set(d.counters.inFlight);
      const f = d.iostat;
      if (!f) continue;
      b.util.set(f.util_pct / 100);
      b.queue.set(f.aqu_sz);
      for (const [op, ms] of [
        ["read", f.r_await_ms],
        ["write", f.w_await_ms],
        ["flush", f.f_await_ms],
      ] as const) {
        if (ms !== null) b.await[op].observe(ms / 1000);
      }
    }
    for (const dev of this.exported) {
      if (!present.has(dev)) this.forget(dev);
    }
  }

  /**
   * Counters move by the wrap-corrected delta, so they equal the kernel's values until a
   * 32-bit time field wraps and stay monotonic after it. A device re-created (counters went
   * back) restarts its series, which Prometheus reads as a counter reset.
   */
  private lastExported = new Map<string, DiskCounters>();
  /**
   * A device's metric children and history labels, bound once: labels() hashes its labels and
   * a history key is built by sorting and serialising them (the router binds a recorder to the
   * labels object), ~30 times per device every second.
   */
  private bound(device: string): DeviceHandles {
    let b = this.handles.get(device);
    if (!b) {
      b = {
        counters: this.counters.map(([spec, metric]) => [spec, metric.labels(device)] as const),
        inFlight: this.inFlight.labels(device),
        util: this.util.labels(device),
        queue: this.queue.labels(device),
        await: {
          read: this.awaitHist.labels(device, "read"),
          write: this.awaitHist.labels(device, "write"),
          flush: this.awaitHist.labels(device, "flush"),
        },
        labels: { device },
      };
      this.handles.set(device, b);
    }
    return b;
  }

  private exportCounters(d: DiskObservation): void {
    const before = this.lastExported.get(d.device);
    const reset = before !== undefined && diskDelta(before, d.counters) === null;
    if (reset) this.forget(d.device);
    const b = this.bound(d.device);
    const base = reset ? undefined : before;
    this.exported.add(d.device);
    this.lastExported.set(d.device, d.counters);
    for (const [spec, child] of b.counters) {
      const cur = spec.raw(d.counters);
      if (cur === undefined) continue;
      const prev = base ? spec.raw(base) : undefined;
      const step = prev === undefined ? cur : spec.u32 ? deltaU32(prev, cur) : cur - prev;
      child.inc(step * spec.scale);
    }
  }

  private forget(device: string): void {
    this.handles.delete(device);
    for (const [, m] of this.counters) m.remove(device);
    this.inFlight.remove(device);
    this.util.remove(device);
    this.queue.remove(device);
    for (const op of ["read", "write", "flush"]) this.awaitHist.remove(device, op);
    this.exported.delete(device);
    this.lastExported.delete(device);
  }
}
