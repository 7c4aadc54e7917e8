// Which collectors exist, and how each is built from the configuration.
import type { Registry } from "prom-client";
import type { Config } from "../core/config/schema.js";
import type { HistoryReader, Sinks } from "../core/collector.js";
import type { Latest, LatestView } from "../core/latest.js";
import { type HistoryWriter, type Routed, Router } from "../core/router.js";
import type { Logger } from "../core/log.js";
import type { ScheduleSpec } from "../core/scheduler.js";
import { ms } from "../core/config/units.js";
import { fingerprint } from "../core/fingerprint.js";
import { DiskstatsCollector, type DiskstatsOptions } from "./diskstats/collector.js";
import { FsyncProbeCollector, type FsyncProbeOptions } from "./fsync_probe/collector.js";
import { KmsgCollector, type KmsgOptions } from "./kmsg/collector.js";
import { MountsCollector, type MountsOptions } from "./mounts/collector.js";
import { WalCollector, type WalOptions } from "./wal/collector.js";
import type { CollectorJudge } from "./judge.js";
import { ProcioCollector, type ProcioOptions } from "./procio/collector.js";
import { ProcessCollector, type ProcessOptions } from "./process/collector.js";
import { NetstatCollector, type NetstatOptions } from "./netstat/collector.js";
import { StallsCollector, type StallsOptions } from "./stalls/collector.js";
import { stallsSinks } from "./stalls/sink.js";
import { type StallLimits, stallLimits } from "../core/stalls.js";
import { BioCollector, type BioOptions } from "./bio/collector.js";
import { bioSinks } from "./bio/sink.js";
import { SmartCollector } from "./smart/collector.js";
import type { Collector } from "../core/collector.js";
import { diskstatsSinks } from "./diskstats/sink.js";
import { fsyncProbeSinks } from "./fsync_probe/sink.js";
import { kernelLogSeen, kmsgSinks } from "./kmsg/sink.js";
import { mountsSinks, usedHistory } from "./mounts/sink.js";
import { procioSinks } from "./procio/sink.js";
import { processSinks } from "./process/sink.js";
import { netstatSinks } from "./netstat/sink.js";
import { smartSinks } from "./smart/sink.js";
import { ErrcountersCollector, type ErrcountersOptions } from "./errcounters/collector.js";
import { errcountersSinks } from "./errcounters/sink.js";
import { walSinks } from "./wal/sink.js";
import type { CollectorName, Observations } from "./observations.js";
import { shouldIsolate } from "./smart/isolate.js";

export interface CollectorDeps {
  readonly config: Config;
  readonly log: Logger;
  /** Where the collectors' sinks register their metrics (a throwaway one for --once). */
  readonly registry: Registry;
  /** Null for --once, which must not change the node's history. */
  readonly history: (HistoryReader & HistoryWriter) | null;
  /** True for --once: collectors that work in the background wait for their results. */
  readonly once: boolean;
  /** The judge's answers collectors need; judge/ is above collectors/, so the app passes them. */
  readonly judge: CollectorJudge;
  /** Where each fresh observation is kept after its sinks (the app's latest map; none for --once). */
  readonly latest?: Latest<Observations>;
}

export interface CollectorEntry extends Routed {
  readonly spec: ScheduleSpec;
  /** The options this instance was built from; a reload that changes them rebuilds the collector. */
  readonly fingerprint: string;
}

/** What a collector is built with besides its options: never the configuration, never a writer. */
interface CreateDeps<U> {
  readonly log: Logger;
  readonly once: boolean;
  /** History to read from (the collector's own state, typed queries); null for --once. */
  readonly history: HistoryReader | null;
  /** The core's route for results of background work. */
  readonly emit: (update: U) => void;
  /** The judge's answers (judge/ sits above collectors/, so the app hands them down). */
  readonly judge: CollectorJudge;
  /** Other collectors' latest observations, read-only (none for --once). */
  readonly latest: LatestView<Observations> | null;
}

/**
 * How one collector is built. `create` sees only `options(c)`, and the fingerprint is computed
 * from those options: an option a collector uses cannot be missing from its fingerprint. The
 * sinks (metrics, history, events) are built beside it; the core routes to them.
 */
interface Factory<N extends CollectorName, Opts, U> {
  readonly name: N;
  enabled(c: Config): boolean;
  spec(c: Config): ScheduleSpec;
  /** The narrow options this collector is built from (plain data, compared as JSON). */
  options(c: Config): Opts;
  sinks(o: Opts, registry: Registry, log: Logger, judge: CollectorJudge): Sinks<Observations[N], U>;
  create(o: Opts, deps: CreateDeps<U>): Collector<Observations[N]>;
}

interface AnyFactory {
  readonly name: CollectorName;
  enabled(c: Config): boolean;
  spec(c: Config): ScheduleSpec;
  options(c: Config): unknown;
  build(deps: CollectorDeps): Routed;
}

function factory<N extends CollectorName, Opts, U = never>(f: Factory<N, Opts, U>): AnyFactory {
  return {
    name: f.name,
    enabled: (c) => f.enabled(c),
    spec: (c) => f.spec(c),
    options: (c) => f.options(c),
    build: ({ config, log, registry, history, once, judge, latest }) => {
      const o = f.options(config);
      const route = new Router(f.name, f.sinks(o, registry, log, judge), history, log);
      const collector = f.create(o, {
        log,
        once,
        history,
        emit: route.update,
        judge,
        latest: latest ?? null,
      });
      const publish = (obs: Observations[N]) => {
        route.observation(obs);
        latest?.set(f.name, obs);
      };
      return { collector, route, schedule: (s, spec) => s.add(collector, spec, publish) };
    },
  };
}

/**
 * The eBPF tier's oldest request per device, when it runs and its last round is fresh: at most
 * three of its intervals old, and at least 5 s (older, its collector is stuck or turned off).
 */
export function bioInflight(
  latest: LatestView<Observations> | null,
  now: number,
  bioIntervalMs: number,
) {
  const b = latest?.get("bio");
  const freshMs = Math.max(5_000, 3 * bioIntervalMs);
  if (!b || b.observation.tier !== "ebpf" || now - b.at > freshMs) return [];
  return b.observation.inflight;
}

/** A collector's options as the configuration gives them (what the core hands it is added in create). */
type Built<O, K extends keyof O = never> = Omit<O, K>;

const FACTORIES: readonly AnyFactory[] = [
  factory({
    name: "diskstats",
    enabled: (c) => c.collectors.diskstats.enabled,
    spec: (c) => c.collectors.diskstats,
    options: (c): DiskstatsOptions => ({
      procPath: c.host.proc_path,
      sysPath: c.host.sys_path,
      roles: [
        { role: "wal", path: c.wal.dir },
        { role: "data", path: c.stemedb.data_dir },
      ],
      include: c.collectors.diskstats.include,
      exclude: c.collectors.diskstats.exclude,
    }),
    sinks: (o, registry, log) => diskstatsSinks(registry, log, `${o.procPath}/diskstats`),
    create: (o) => new DiskstatsCollector(o),
  }),
  factory({
    name: "fsync_probe",
    enabled: (c) => c.collectors.fsync_probe.enabled,
    spec: (c) => c.collectors.fsync_probe,
    options: (c): Built<FsyncProbeOptions, "emit"> & { limits: StallLimits } => ({
      dirs: probeDirs(c),
      blockSize: c.collectors.fsync_probe.block_size,
      // Report a stalled probe a little before the scheduler's own timeout would fire.
      deadlineMs: Math.max(100, c.collectors.fsync_probe.timeout * 0.8),
      procPath: c.host.proc_path,
      limits: stallLimits(c),
    }),
    sinks: (o, registry, log) => fsyncProbeSinks(registry, log, o.limits),
    create: ({ limits: _limits, ...o }, { emit }) => new FsyncProbeCollector({ ...o, emit }),
  }),
  factory({
    name: "procio",
    enabled: (c) => c.collectors.procio.enabled,
    spec: (c) => c.collectors.procio,
    options: (c): ProcioOptions => ({
      procPath: c.host.proc_path,
      units: c.collectors.procio.units,
      topK: c.collectors.procio.top_k,
    }),
    sinks: (o, registry) => procioSinks(registry, o.units),
    create: (o) => new ProcioCollector(o),
  }),
  factory({
    name: "process",
    enabled: (c) => c.collectors.process.enabled,
    spec: (c) => c.collectors.process,
    options: (c): ProcessOptions => ({ procPath: c.host.proc_path }),
    sinks: (_o, registry) => processSinks(registry),
    create: (o, { judge }) =>
      new ProcessCollector({ ...o, isDatabase: (comm) => judge.isStemedbDatabase(comm) }),
  }),
  factory({
    name: "netstat",
    enabled: (c) => c.collectors.netstat.enabled,
    spec: (c) => c.collectors.netstat,
    options: (c): NetstatOptions => ({ procPath: c.host.proc_path }),
    sinks: (_o, registry) => netstatSinks(registry),
    create: (o) => new NetstatCollector(o),
  }),
  factory({
    name: "stalls",
    enabled: (c) => c.collectors.stalls.enabled,
    spec: (c) => c.collectors.stalls,
    options: (c): StallsOptions & { limits: StallLimits; bioIntervalMs: number } => ({
      procPath: c.host.proc_path,
      sysPath: c.host.sys_path,
      walDir: c.wal.dir,
      limits: stallLimits(c),
      bioIntervalMs: c.collectors.bio.interval,
    }),
    sinks: (o, registry, log) => stallsSinks(registry, log, o.walDir, o.limits),
    create: ({ limits: _limits, bioIntervalMs, ...o }, { judge, latest }) =>
      new StallsCollector({
        ...o,
        isDatabase: (comm) => judge.isStemedbDatabase(comm),
        exactAges: () => bioInflight(latest, Date.now(), bioIntervalMs),
      }),
  }),
  factory({
    name: "bio",
    // Off, or built: "auto" decides in the collector (it says why the tier is not running).
    enabled: (c) => c.collectors.bio.enabled !== false,
    spec: (c) => c.collectors.bio,
    options: (c): BioOptions => ({
      mode: c.collectors.bio.enabled === "auto" ? "auto" : "on",
      bpftrace: c.collectors.bio.bpftrace,
      queueTime: c.collectors.bio.queue_time,
      intervalMs: c.collectors.bio.interval,
      topK: c.collectors.bio.top_k,
      mapKeysMax: c.collectors.bio.map_keys_max,
      procPath: c.host.proc_path,
      sysPath: c.host.sys_path,
      tracefsPath: `${c.host.sys_path}/kernel/tracing`,
    }),
    sinks: (_o, registry, log) => bioSinks(registry, log),
    create: (o, { log }) => new BioCollector(o, { log }),
  }),
  factory({
    name: "smart",
    enabled: (c) => c.collectors.smart.enabled,
    // The tick only starts due device polls and returns the latest results; each device is
    // polled every `interval`. --once waits for discovery and every poll, hence the budget.
    spec: (c) => ({
      interval: ms(SMART_TICK_MS),
      timeout: ms(2 * c.collectors.smart.timeout + 10_000),
      jitter: c.collectors.smart.jitter,
    }),
    options: (c) => ({
      smartctl: c.collectors.smart.smartctl,
      // Whether to isolate is decided when the collector is built (it reads <proc>/self/status).
      isolate: c.collectors.smart.isolate,
      systemdRun: c.collectors.smart.systemd_run,
      procPath: c.host.proc_path,
      interval: c.collectors.smart.interval,
      timeout: c.collectors.smart.timeout,
      devices: c.collectors.smart.devices,
      growthWindow: c.collectors.smart.growth_window,
      sysPath: c.host.sys_path,
      devPath: c.host.dev_path,
    }),
    sinks: (_o, registry, log) => smartSinks(registry, log),
    create: ({ isolate, systemdRun, procPath, ...o }, { log, once, history, emit }) =>
      new SmartCollector({
        ...o,
        isolateWith: shouldIsolate(isolate, procPath) ? systemdRun : null,
        waitForRuns: once,
        state: history,
        emit,
        log,
      }),
  }),
  factory({
    name: "kmsg",
    enabled: (c) => c.collectors.kmsg.enabled,
    spec: (c) => c.collectors.kmsg,
    options: (c): Built<KmsgOptions, "once" | "state" | "log"> => ({
      kmsgPath: c.host.kmsg_path,
      procPath: c.host.proc_path,
      sysPath: c.host.sys_path,
      facilities: c.collectors.kmsg.facilities,
    }),
    sinks: (_o, registry) => kmsgSinks(registry),
    create: (o, { log, once, history }) => new KmsgCollector({ ...o, state: history, log, once }),
  }),
  factory({
    name: "mounts",
    enabled: (c) => c.collectors.mounts.enabled,
    spec: (c) => c.collectors.mounts,
    options: (c): Built<MountsOptions, "usedHistory"> => ({
      paths: mountPaths(c),
      procPath: c.host.proc_path,
      fillWindowMs: c.collectors.mounts.fill_window,
      fillMinSpanMs: c.collectors.mounts.fill_min_span,
    }),
    sinks: (_o, registry, log) => mountsSinks(registry, log),
    create: (o, { history }) => new MountsCollector({ ...o, usedHistory: usedHistory(history) }),
  }),
  factory({
    name: "wal",
    enabled: (c) => c.collectors.wal.enabled,
    // A cheap tick stats the directory and the active segment; `interval` is the full rescan
    // (sooner when a name changed).
    spec: (c) => ({
      interval: ms(WAL_TICK_MS),
      timeout: c.collectors.wal.timeout,
      jitter: c.collectors.wal.jitter,
    }),
    options: (c): Built<WalOptions, "usedHistory" | "log" | "judge"> => ({
      dir: c.wal.dir,
      pattern: c.wal.segment_pattern,
      rescanMs: c.collectors.wal.interval,
      stallAfterMs: c.wal.stall_after,
      expectedSegmentSize: c.wal.expected_segment_size,
      verifyCommand: c.wal.verify_command,
      checkCompressed: c.wal.check_compressed,
      dbMetricsUrl: c.stemedb.metrics_url,
      service: c.stemedb.service,
      procPath: c.host.proc_path,
    }),
    sinks: (o, registry, log, judge) => walSinks(registry, log, o.dir, judge),
    // The mounts collector's used-bytes history of the WAL's mount, typed (no series name here).
    create: (o, { history, log, judge }) =>
      new WalCollector({ ...o, usedHistory: usedHistory(history), log, judge }),
  }),
  factory({
    name: "errcounters",
    enabled: (c) => c.collectors.errcounters.enabled,
    spec: (c) => c.collectors.errcounters,
    options: (c): Built<ErrcountersOptions, "kernelLog"> => ({
      procPath: c.host.proc_path,
      sysPath: c.host.sys_path,
      devPath: c.host.dev_path,
      firstPaths: [c.wal.dir, c.stemedb.data_dir],
      logWindowMs: c.collectors.errcounters.log_window,
      // A line is in history once flushed: judged only after that.
      settleMs: c.history.flush_interval,
      crossCheckOff: c.collectors.kmsg.enabled ? null : "the kmsg collector is disabled",
    }),
    sinks: (_o, registry, _log, judge) => errcountersSinks(registry, judge),
    // The kernel-log collector's record, through its typed query (null for --once).
    create: (o, { history }) =>
      new ErrcountersCollector({ ...o, kernelLog: kernelLogSeen(history) }),
  }),
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
  const c = deps.config;
  return FACTORIES.filter((f) => f.enabled(c) && (only?.(f.name) ?? true)).map((f) => ({
    ...f.build(deps),
    spec: f.spec(c),
    fingerprint: fingerprint(f.options(c)),
  }));
}

export function collectorFingerprints(c: Config): Map<string, string> {
  return new Map(
    FACTORIES.filter((f) => f.enabled(c)).map((f) => [f.name, fingerprint(f.options(c))]),
  );
}

/** The options each enabled collector would be built with (what its fingerprint is made of). */
export function collectorOptions(c: Config): Map<string, unknown> {
  return new Map(FACTORIES.filter((f) => f.enabled(c)).map((f) => [f.name, f.options(c)]));
}

/** The schedule (interval, timeout, jitter) of each enabled collector: a reload applies it without a rebuild. */
export function collectorSpecs(c: Config): Map<string, ScheduleSpec> {
  return new Map(FACTORIES.filter((f) => f.enabled(c)).map((f) => [f.name, f.spec(c)]));
}
