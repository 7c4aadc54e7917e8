// mounts: for the WAL and data directories (or configured paths): which mount they are on,
// its options judged by the runbooks' policy, statfs space and inodes, and time-to-full from a
// robust fit of used bytes over `fill_window`. A change of options (remounted ro at 03:12) is
// an event, and so is each finding appearing or clearing.
import { open, readFile, readlink, statfs } from "node:fs/promises";
import type { Gauge, Registry } from "prom-client";
import type { HistoryStore } from "../../core/history/store.js";
import type { Logger } from "../../core/log.js";
import { gauge } from "../../core/metrics/define.js";
import { NS } from "../../core/metrics/registry.js";
import type { CollectContext, Collector } from "../../core/collector.js";
import { estimateFill, type UsedSample } from "./fill.js";
import { mountFor, type MountInfo, parseMountinfo } from "./mountinfo.js";
import { nearestExisting } from "./paths.js";
import { type Ext4ErrorsDefault, mountFindings } from "./policy.js";
import { errorMessage } from "../../core/errors.js";
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
  readonly registry: Registry;
  readonly history: HistoryStore | null;
  readonly log: Logger;
}

export class MountsCollector implements Collector<MountsObservation> {
  readonly name = "mounts";
  private readonly used = new Map<string, UsedSample[]>();
  private readonly lastOptions = new Map<string, string>();
  private readonly lastFindings = new Map<string, Set<string>>();
  private readonly gFinding: Gauge<"mountpoint" | "option" | "severity">;
  private readonly gRo: Gauge<"mountpoint">;
  private readonly gSize: Gauge<"mountpoint">;
  private readonly gFree: Gauge<"mountpoint">;
  private readonly gAvail: Gauge<"mountpoint">;
  private readonly gFiles: Gauge<"mountpoint">;
  private readonly gFilesFree: Gauge<"mountpoint">;
  private readonly gFull: Gauge<"mountpoint">;

  constructor(private readonly opts: MountsOptions) {
    const r = opts.registry;
    const g = (name: string, help: string) =>
      gauge(r, { name: `${NS}${name}`, help, labelNames: ["mountpoint"] });
    this.gFinding = gauge(r, {
      name: `${NS}mount_finding`,
      help: "1 for each mount option the policy flags on a WAL or data mount (ro, nobarrier, errors=continue, data=journal, sync, atime).",
      labelNames: ["mountpoint", "option", "severity"],
    });
    this.gRo = g("mount_read_only", "1 while the WAL or data filesystem is mounted read-only.");
    this.gSize = g("filesystem_size_bytes", "Filesystem size (statfs).");
    this.gFree = g(
      "filesystem_free_bytes",
      "Free bytes, including those reserved for root (statfs).",
    );
    this.gAvail = g("filesystem_avail_bytes", "Bytes available to unprivileged users (statfs).");
    this.gFiles = g("filesystem_files", "Inodes (statfs).");
    this.gFilesFree = g("filesystem_files_free", "Free inodes (statfs).");
    this.gFull = g(
      "filesystem_full_in_seconds",
      "Estimated seconds until available space runs out at the recent fill rate (robust fit); +Inf when not filling.",
    );
  }

  /** PID 1's mount table, when the agent may read it and lives in another mount namespace; else null. */
  private async pid1Mounts(signal: AbortSignal): Promise<MountInfo[] | null> {
    const proc = this.opts.procPath;
    // Same namespace: nothing to learn. A link we may not read (seen in sandboxes) is no answer.
    const [own, init] = await Promise.all([
      readlink(`${proc}/self/ns/mnt`).catch(() => "?self"),
      readlink(`${proc}/1/ns/mnt`).catch(() => "?init"),
    ]);
    if (own === init) return null;
    try {
      return parseMountinfo(await readFile(`${proc}/1/mountinfo`, { encoding: "utf8", signal }))
        .mounts;
    } catch {
      return null; // not permitted, or a prepared tree without it: our own view is all there is
    }
  }

  async collect({ signal }: CollectContext): Promise<MountsObservation> {
    const { mounts } = parseMountinfo(
      await readFile(`${this.opts.procPath}/self/mountinfo`, { encoding: "utf8", signal }),
    );
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
        const st = await statfs(mountpoint, { bigint: false });
        const size = st.blocks * st.bsize;
        const free = st.bfree * st.bsize;
        const avail = st.bavail * st.bsize;
        space = {
          size_bytes: size,
          free_bytes: free,
          avail_bytes: avail,
          used_bytes: size - free,
          used_ratio: size > 0 ? (size - avail) / size : 0,
          files: st.files,
          files_free: st.ffree,
        };
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

  publish(o: MountsObservation): void {
    this.gFinding.reset();
    const h = this.opts.history;
    const ts = Date.now();
    for (const m of o.mounts) {
      const mp = { mountpoint: m.mountpoint };
      for (const f of m.findings)
        this.gFinding.set({ ...mp, option: f.option, severity: f.severity }, 1);
      this.gRo.set(mp, m.read_only ? 1 : 0);
      this.gFull.set(mp, m.full_in_seconds);
      if (m.space) {
        this.gSize.set(mp, m.space.size_bytes);
        this.gFree.set(mp, m.space.free_bytes);
        this.gAvail.set(mp, m.space.avail_bytes);
        this.gFiles.set(mp, m.space.files);
        this.gFilesFree.set(mp, m.space.files_free);
        h?.record("filesystem_used_bytes", mp, m.space.used_bytes, ts);
        h?.record("filesystem_used_ratio", mp, m.space.used_ratio, ts);
      }
      this.noteChanges(m);
    }
  }

  /** The used-bytes samples of the fit window, seeded from history the first time (a restart keeps the trend). */
  private samples(mountpoint: string, now: number, used: number): UsedSample[] {
    let s = this.used.get(mountpoint);
    if (!s) {
      s = (
        this.opts.history?.series(
          "filesystem_used_bytes",
          { mountpoint },
          now - this.opts.fillWindowMs,
        ) ?? []
      ).map((p) => ({ ts: p.ts, used: p.value }));
      this.used.set(mountpoint, s);
    }
    s.push({ ts: now, used });
    while (s.length > 0 && (s[0] as UsedSample).ts < now - this.opts.fillWindowMs) s.shift();
    if (s.length > 5000) s.splice(0, s.length - 5000);
    return s;
  }

  private noteChanges(m: MountState): void {
    const h = this.opts.history;
    const opts = m.options.join(",");
    const before = this.lastOptions.get(m.mountpoint);
    this.lastOptions.set(m.mountpoint, opts);
    if (before !== undefined && before !== opts) {
      const ro = m.read_only && !before.split(",").includes("ro");
      h?.event({
        class: "mount",
        kind: ro ? "mount.remounted_ro" : "mount.options_changed",
        severity: ro ? "crit" : "warn",
        subject: m.mountpoint,
        message: `${m.mountpoint} ${ro ? "was remounted read-only" : "mount options changed"}: ${before} -> ${opts}`,
        data: { before, after: opts },
      });
      this.opts.log.warn(
        { mountpoint: m.mountpoint, before, after: opts },
        "mount options changed",
      );
    }
    const now = new Set(m.findings.filter((f) => f.severity !== "info").map((f) => f.option));
    const prev = this.lastFindings.get(m.mountpoint);
    this.lastFindings.set(m.mountpoint, now);
    for (const f of m.findings) {
      if (f.severity === "info" || prev?.has(f.option)) continue;
      h?.event({
        class: "mount",
        kind: "mount.finding",
        severity: f.severity,
        subject: m.mountpoint,
        message: `${m.mountpoint} (${m.fs_type} on ${m.source}): ${f.option}: ${f.reason}`,
      });
    }
    for (const o of prev ?? [])
      if (!now.has(o))
        h?.event({
          class: "mount",
          kind: "mount.finding_cleared",
          severity: "info",
          subject: m.mountpoint,
          message: `${m.mountpoint}: ${o} no longer set`,
        });
  }
}
