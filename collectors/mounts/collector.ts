// mounts: for the WAL and data directories (or configured paths): which mount they are on,
// its options judged by the runbooks' policy, statfs space and inodes, and time-to-full from a
// robust fit of used bytes over `fill_window`. A change of options (remounted ro at 03:12) is
// an event, and so is each finding appearing or clearing.
import { open } from "node:fs/promises";
import type { CollectContext, Collector } from "../../core/collector.js";
import { estimateFill, type UsedSample } from "./fill.js";
import { Host } from "../../core/host/host.js";
import { mountFor, type MountInfo } from "../../core/host/mountinfo.js";
import { spaceOf } from "../../core/host/statfs.js";
import { nearestExisting } from "./paths.js";
import { type Ext4ErrorsDefault, mountFindings } from "./policy.js";
import { errorMessage } from "../../core/errors.js";
import type { UsedHistory } from "./sink.js";
import type { FilesystemSpace, MountState, MountsObservation } from "./observation.js";

/** s_errors of an ext2/3/4 superblock (offset 1024 + 0x3C), after checking its magic (0xEF53 at +0x38). */
async function ext4ErrorsDefault(device: string): Promise<Ext4ErrorsDefault | null> {
  if (!device.startsWith("/dev/")) return null;
  let fh;
  try {
    fh = await open(device, "r");
    const b = Buffer.alloc(8);
    await fh.read(b, 0, 8, 1024 + 0x38);
    if (b.readUInt16LE(0) !== 0xef53) return null;
    return (
      ({ 1: "continue", 2: "remount-ro", 3: "panic" } as const)[b.readUInt16LE(4) as 1 | 2 | 3] ??
      null
    );
  } catch {
    return null; // not readable here (no CAP_DAC_OVERRIDE, device gone)
  } finally {
    await fh?.close();
  }
}

export interface MountsOptions {
  readonly paths: ReadonlyArray<{ readonly path: string; readonly role: string }>;
  readonly procPath: string;
  readonly fillWindowMs: number;
  readonly fillMinSpanMs: number;
  /** This collector's used-bytes history (sink.ts): a restart keeps the time-to-full trend. */
  readonly usedHistory: UsedHistory;
}

export class MountsCollector implements Collector<MountsObservation> {
  readonly name = "mounts";
  private readonly used = new Map<string, UsedSample[]>();
  private readonly host: Host;

  constructor(private readonly opts: MountsOptions) {
    this.host = new Host({ procPath: opts.procPath });
  }

  /** PID 1's mount table, when the agent may read it and lives in another mount namespace; else null. */
  private async pid1Mounts(signal: AbortSignal): Promise<MountInfo[] | null> {
    // Same namespace: nothing to learn. A link we may not read (seen in sandboxes) is no answer.
    const [own, init] = await Promise.all([
      this.host.mountNamespace("self").then((ns) => ns ?? "?self"),
      this.host.mountNamespace(1).then((ns) => ns ?? "?init"),
    ]);
    if (own === init) return null;
    try {
      return (await this.host.mountinfo(1, signal)).mounts;
    } catch {
      return null; // not permitted, or a prepared tree without it: our own view is all there is
    }
  }

  async collect({ signal }: CollectContext): Promise<MountsObservation> {
    const { mounts } = await this.host.mountinfo("self", signal);
    const hostView = await this.pid1Mounts(signal);
    const byMount = new Map<
      string,
      { mount: ReturnType<typeof mountFor>; paths: MountState["paths"][number][] }
    >();
    for (const { path, role } of this.opts.paths) {
      const { real, exists } = await nearestExisting(path);
      const m = mountFor(real, mounts);
      const key = m?.mountPoint ?? "/";
      const entry = byMount.get(key) ?? { mount: m, paths: [] };
      entry.paths.push({ path, role, exists });
      byMount.set(key, entry);
    }
    const now = Date.now();
    const out: MountState[] = [];
    for (const [mountpoint, { mount, paths }] of byMount) {
      // Per-mount flags as the system sees them: under ProtectSystem=strict the agent's own view of
      // / and the data dir is a read-only remount that the database never sees.
      const seen =
        (mount &&
          hostView?.find(
            (h) =>
              h.mountPoint === mount.mountPoint &&
              h.major === mount.major &&
              h.minor === mount.minor &&
              h.root === mount.root,
          )) ??
        mount;
      const options = [...new Set([...(seen?.mountOptions ?? []), ...(mount?.superOptions ?? [])])];
      const fsType = mount?.fsType ?? "unknown";
      let space: FilesystemSpace | null = null;
      let error: string | null = null;
      try {
        space = spaceOf(await this.host.statfs(mountpoint));
      } catch (e) {
        error = `statfs ${mountpoint}: ${errorMessage(e)}`;
      }
      const fill = space
        ? estimateFill(
            this.samples(mountpoint, now, space.used_bytes),
            space.avail_bytes,
            this.opts.fillMinSpanMs,
          )
        : { bytesPerSecond: null, fullInSeconds: Infinity };
      out.push({
        mountpoint,
        paths,
        source: mount?.source ?? "",
        fs_type: fsType,
        options,
        findings: mountFindings(
          fsType,
          options,
          /^ext[234]$/.test(fsType) ? await ext4ErrorsDefault(mount?.source ?? "") : null,
        ),
        read_only: options.includes("ro"),
        space,
        fill_bytes_per_second: fill.bytesPerSecond,
        full_in_seconds: fill.fullInSeconds,
        error,
      });
    }
    return { mounts: out };
  }

  /** The used-bytes samples of the fit window, seeded from history the first time (a restart keeps the trend). */
  private samples(mountpoint: string, now: number, used: number): UsedSample[] {
    let s = this.used.get(mountpoint);
    if (!s) {
      s = this.opts.usedHistory(mountpoint, now - this.opts.fillWindowMs);
      this.used.set(mountpoint, s);
    }
    s.push({ ts: now, used });
    while (s.length > 0 && (s[0] as UsedSample).ts < now - this.opts.fillWindowMs) s.shift();
    if (s.length > 5000) s.splice(0, s.length - 5000);
    return s;
  }
}
