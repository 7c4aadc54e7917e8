// diskstats: per-device counters from <proc>/diskstats, and the iostat -x figures of each
// interval (default 1 s). Each second's awaits also go into histograms, so Prometheus can take
// the p99 of one-second windows between its scrapes: the tail node_exporter cannot show.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import type { CollectContext, Collector } from "../../core/collector.js";
import { diskDelta, type Iostat, iostat } from "./iostat.js";
import { resolvePath } from "../blockdev/resolve.js";
import { Host } from "../../core/host/host.js";
import type { MountInfo } from "../../core/host/mountinfo.js";
import { type DiskCounters, parseDiskstats } from "./parse.js";
import type { DiskObservation, Role, RoleMapping, DiskstatsObservation } from "./observation.js";

/** Mounts and device stacks change rarely; sysfs is re-read this often. */
const ROLE_REFRESH_MS = 60_000;

export interface DiskstatsOptions {
  readonly procPath: string;
  readonly sysPath: string;
  /** Directories whose devices get a role label (the WAL dir, the data dir). */
  readonly roles: ReadonlyArray<{ readonly role: Role; readonly path: string }>;
  readonly include: string;
  readonly exclude: string;
}

interface DeviceState {
  counters: DiskCounters;
  at: number;
}

export class DiskstatsCollector implements Collector<DiskstatsObservation> {
  readonly name = "diskstats";
  /** --once needs two samples for rates. */
  readonly onceWarmupMs = 1000;
  private readonly file: string;
  private readonly include: RegExp | null;
  private readonly exclude: RegExp | null;
  private readonly prev = new Map<string, DeviceState>();
  private roles: RoleMapping[] = [];
  private rolesAt = -Infinity;

  constructor(private readonly opts: DiskstatsOptions) {
    this.file = `${opts.procPath}/diskstats`;
    this.include = opts.include ? new RegExp(opts.include) : null;
    this.exclude = opts.exclude ? new RegExp(opts.exclude) : null;
  }

  private wanted(device: string): boolean {
    if (this.include && !this.include.test(device)) return false;
    return !(this.exclude?.test(device) ?? false);
  }

  async collect({ signal }: CollectContext): Promise<DiskstatsObservation> {
    // Synchronous on purpose: procfs is generated in memory (~20 µs here), and the async form
    // costs five thread-pool round trips per read, every second.
    const text = readFileSync(this.file, "utf8");
    const at = performance.now();
    const { disks, problems } = parseDiskstats(text);
    const devices: DiskObservation[] = [];
    let interval: number | null = null;
    const seen = new Set<string>();
    for (const c of disks) {
      if (!this.wanted(c.device)) continue;
      seen.add(c.device);
      const before = this.prev.get(c.device);
      let figures: Iostat | null = null;
      if (before) {
        const seconds = (at - before.at) / 1000;
        const d = seconds > 0 ? diskDelta(before.counters, c) : null;
        if (d) {
          figures = iostat(d, seconds);
          interval = seconds;
        }
      }
      this.prev.set(c.device, { counters: c, at });
      devices.push({
        device: c.device,
        major: c.major,
        minor: c.minor,
        counters: c,
        iostat: figures,
      });
    }
    for (const name of this.prev.keys()) if (!seen.has(name)) this.prev.delete(name);
    if (at - this.rolesAt >= ROLE_REFRESH_MS) {
      this.rolesAt = at;
      this.roles = await this.resolveRoles(signal);
    }
    return { interval_seconds: interval, devices, roles: this.roles, problems };
  }

  private async resolveRoles(signal: AbortSignal): Promise<RoleMapping[]> {
    let mounts: readonly MountInfo[] = [];
    try {
      ({ mounts } = await new Host({ procPath: this.opts.procPath }).mountinfo("self", signal));
    } catch {
      // without mountinfo, anonymous devices (btrfs) stay unresolved
    }
    return Promise.all(
      this.opts.roles.map(async ({ role, path }) => ({
        role,
        ...(await resolvePath(path, { sysPath: this.opts.sysPath, mounts })),
      })),
    );
  }
}
