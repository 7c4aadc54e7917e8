// Which collectors exist, and how each is built from the configuration.
import type { Registry } from "prom-client";
import type { Config } from "../core/config/schema.js";
import type { HistoryStore } from "../core/history/store.js";
import type { Logger } from "../core/log.js";
import type { ScheduleSpec } from "../core/scheduler.js";
import { ms } from "../core/config/units.js";
import { DiskstatsCollector } from "./diskstats/collector.js";
import { FsyncProbeCollector } from "./fsync_probe/collector.js";
import { KmsgCollector } from "./kmsg/collector.js";
import { MountsCollector } from "./mounts/collector.js";
import { WalCollector, type WalJudge } from "./wal/collector.js";
import { ProcioCollector } from "./procio/collector.js";
import { SmartCollector } from "./smart/collector.js";
import type { Collector } from "../core/collector.js";
import { shouldIsolate } from "./smart/isolate.js";

export interface CollectorDeps {
  readonly config: Config;
  readonly log: Logger;
  /** Where the collector registers its metrics (a throwaway one for --once). */
  readonly registry: Registry;
  /** Null for --once, which must not change the node's history. */
  readonly history: HistoryStore | null;
  /** True for --once: collectors that work in the background wait for their results. */
  readonly once: boolean;
  /** The judge's answers collectors need; judge/ is above collectors/, so the app passes them. */
  readonly judge: WalJudge;
}

export interface CollectorEntry {
  readonly collector: Collector;
  readonly spec: ScheduleSpec;
  /** The config this instance was built from; a reload that changes it rebuilds the collector. */
  readonly fingerprint: string;
}

interface Factory {
  readonly name: string;
  enabled(c: Config): boolean;
  spec(c: Config): ScheduleSpec;
  /** Everything in the config this collector depends on, as a string. */
  fingerprint(c: Config): string;
  create(deps: CollectorDeps): Collector;
}

const FACTORIES: readonly Factory[] = [
  {
    name: "diskstats",
    enabled: (c) => c.collectors.diskstats.enabled,
    spec: (c) => c.collectors.diskstats,
    fingerprint: (c) =>
      JSON.stringify([
        c.host.proc_path,
        c.host.sys_path,
        c.wal.dir,
        c.stemedb.data_dir,
        c.collectors.diskstats.include,
        c.collectors.diskstats.exclude,
      ]),
    create: ({ config, registry, history, log }) =>
      new DiskstatsCollector({
        procPath: config.host.proc_path,
        sysPath: config.host.sys_path,
        roles: [
          { role: "wal", path: config.wal.dir },
          { role: "data", path: config.stemedb.data_dir },
        ],
        include: config.collectors.diskstats.include,
        exclude: config.collectors.diskstats.exclude,
        registry,
        history,
        log,
      }),
  },
  {
    name: "fsync_probe",
    enabled: (c) => c.collectors.fsync_probe.enabled,
    spec: (c) => c.collectors.fsync_probe,
    fingerprint: (c) =>
      JSON.stringify([
        c.host.proc_path,
        probeDirs(c),
        c.collectors.fsync_probe.block_size,
        c.collectors.fsync_probe.timeout,
      ]),
    create: ({ config, registry, history, log }) =>
      new FsyncProbeCollector({
        dirs: probeDirs(config),
        blockSize: config.collectors.fsync_probe.block_size,
        // Report a stalled probe a little before the scheduler's own timeout would fire.
        deadlineMs: Math.max(100, config.collectors.fsync_probe.timeout * 0.8),
        procPath: config.host.proc_path,
        registry,
        history,
        log,
      }),
  },
  {
    name: "procio",
    enabled: (c) => c.collectors.procio.enabled,
    spec: (c) => c.collectors.procio,
    fingerprint: (c) =>
      JSON.stringify([c.host.proc_path, c.collectors.procio.units, c.collectors.procio.top_k]),
    create: ({ config, registry, history, log }) =>
      new ProcioCollector({
        procPath: config.host.proc_path,
        units: config.collectors.procio.units,
        topK: config.collectors.procio.top_k,
        registry,
        history,
        log,
      }),
  },
  {
    name: "smart",
    enabled: (c) => c.collectors.smart.enabled,
    // The tick only starts due device polls and returns the latest results; each device is
    // polled every `interval`. --once waits for discovery and every poll, hence the budget.
    spec: (c) => ({
      interval: ms(SMART_TICK_MS),
      timeout: ms(2 * c.collectors.smart.timeout + 10_000),
      jitter: c.collectors.smart.jitter,
    }),
    fingerprint: (c) => JSON.stringify([c.host.sys_path, c.host.dev_path, c.collectors.smart]),
    create: ({ config, registry, history, log, once }) =>
      new SmartCollector({
        smartctl: config.collectors.smart.smartctl,
        isolateWith: shouldIsolate(config.collectors.smart.isolate, config.host.proc_path)
          ? config.collectors.smart.systemd_run
          : null,
        interval: config.collectors.smart.interval,
        timeout: config.collectors.smart.timeout,
        devices: config.collectors.smart.devices,
        growthWindow: config.collectors.smart.growth_window,
        sysPath: config.host.sys_path,
        devPath: config.host.dev_path,
        waitForRuns: once,
        registry,
        history,
        log,
      }),
  },
  {
    name: "kmsg",
    enabled: (c) => c.collectors.kmsg.enabled,
    spec: (c) => c.collectors.kmsg,
    fingerprint: (c) =>
      JSON.stringify([
        c.host.kmsg_path,
        c.host.proc_path,
        c.host.sys_path,
        c.collectors.kmsg.facilities,
      ]),
    create: ({ config, registry, history, log, once }) =>
      new KmsgCollector({
        kmsgPath: config.host.kmsg_path,
        procPath: config.host.proc_path,
        sysPath: config.host.sys_path,
        facilities: config.collectors.kmsg.facilities,
        registry,
        history,
        log,
        once,
      }),
  },
  {
    name: "mounts",
    enabled: (c) => c.collectors.mounts.enabled,
    spec: (c) => c.collectors.mounts,
    fingerprint: (c) =>
      JSON.stringify([
        c.host.proc_path,
        mountPaths(c),
        c.collectors.mounts.fill_window,
        c.collectors.mounts.fill_min_span,
      ]),
    create: ({ config, registry, history, log }) =>
      new MountsCollector({
        paths: mountPaths(config),
        procPath: config.host.proc_path,
        fillWindowMs: config.collectors.mounts.fill_window,
        fillMinSpanMs: config.collectors.mounts.fill_min_span,
        registry,
        history,
        log,
      }),
  },
  {
    name: "wal",
    enabled: (c) => c.collectors.wal.enabled,
    // A cheap tick stats the directory and the active segment; `interval` is the full rescan (sooner when a name changed).
    spec: (c) => ({
      interval: ms(WAL_TICK_MS),
      timeout: c.collectors.wal.timeout,
      jitter: c.collectors.wal.jitter,
    }),
    fingerprint: (c) => JSON.stringify([c.wal, c.collectors.wal, c.stemedb, c.host.proc_path]),
    create: ({ config, registry, history, log, judge }) =>
      new WalCollector({
        dir: config.wal.dir,
        pattern: config.wal.segment_pattern,
        rescanMs: config.collectors.wal.interval,
        stallAfterMs: config.wal.stall_after,
        expectedSegmentSize: config.wal.expected_segment_size,
        verifyCommand: config.wal.verify_command,
        checkCompressed: config.wal.check_compressed,
        dbMetricsUrl: config.stemedb.metrics_url,
        service: config.stemedb.service,
        procPath: config.host.proc_path,
        registry,
        history,
        log,
        judge,
      }),
  },
];

const WAL_TICK_MS = 2_000;

/** Paths whose mounts are watched: configured, or the WAL and data directories. */
export function mountPaths(c: Config): Array<{ path: string; role: string }> {
  const p = c.collectors.mounts.paths;
  return p.length > 0
    ? p.map((path) => ({ path, role: "configured" }))
    : [
        { path: c.wal.dir, role: "wal" },
        { path: c.stemedb.data_dir, role: "data" },
      ];
}

const SMART_TICK_MS = 10_000;

/** Directories the fsync probe writes in: configured, or the WAL directory. */
export function probeDirs(c: Config): string[] {
  return c.collectors.fsync_probe.dirs.length > 0
    ? [...c.collectors.fsync_probe.dirs]
    : [c.wal.dir];
}

export function buildCollectors(
  deps: CollectorDeps,
  only?: (name: string) => boolean,
): CollectorEntry[] {
  return FACTORIES.filter((f) => f.enabled(deps.config) && (only?.(f.name) ?? true)).map((f) => ({
    collector: f.create(deps),
    spec: f.spec(deps.config),
    fingerprint: f.fingerprint(deps.config),
  }));
}

export function collectorFingerprints(c: Config): Map<string, string> {
  return new Map(FACTORIES.filter((f) => f.enabled(c)).map((f) => [f.name, f.fingerprint(c)]));
}

/** The schedule (interval, timeout, jitter) of each enabled collector: a reload applies it without a rebuild. */
export function collectorSpecs(c: Config): Map<string, ScheduleSpec> {
  return new Map(FACTORIES.filter((f) => f.enabled(c)).map((f) => [f.name, f.spec(c)]));
}
