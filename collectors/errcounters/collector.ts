// errcounters: the kernel's own error counters, read from sysfs (node_exporter #2231, #3005):
// SCSI's io*_cnt per disk, ext4's error record per filesystem, btrfs's error stats per member
// device; XFS has none in sysfs (xfs_sysfs.c: error/ holds retry policy, stats/ performance
// counters, log/ positions), so an XFS filesystem is listed and nothing is invented for it.
// Every mounted ext4, btrfs and XFS filesystem counts (a root filesystem turning read-only takes
// the node down with it), the WAL's and data's first; both lists are capped. Reads are small,
// bounded and never follow a symlink at the last step; the parsing is pure (parse.ts), and so is
// the cross-check of rises against the kernel log (crosscheck.ts).
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readdirSync,
  readSync,
  realpathSync,
} from "node:fs";
import { basename, join } from "node:path";
import type { CollectContext, Collector } from "../../core/collector.js";
import { errorCode, errorMessage } from "../../core/errors.js";
import { Host } from "../../core/host/host.js";
import { type MountInfo, mountFor } from "../../core/host/mountinfo.js";
import { DeviceResolver } from "../kmsg/resolve.js";
import {
  type CounterSample,
  type KernelLogQuery,
  PendingRises,
  risesBetween,
} from "./crosscheck.js";
import type {
  BtrfsDevice,
  CrossCheck,
  ErrcountersObservation,
  Ext4Fs,
  ScsiDisk,
  XfsFs,
} from "./observation.js";
import {
  BTRFS_STATS,
  btrfsMemberName,
  MAX_ATTR_BYTES,
  parseBtrfsErrorStats,
  parseCounter,
  parseExt4Record,
  show,
} from "./parse.js";

/** SCSI disks read at most (by name), and filesystems (WAL's and data's first, then by mountpoint). */
export const MAX_DISKS = 64;
export const MAX_FILESYSTEMS = 32;
/** Members of one btrfs filesystem read at most. */
const MAX_BTRFS_MEMBERS = 64;

export interface ErrcountersOptions {
  readonly procPath: string;
  readonly sysPath: string;
  readonly devPath: string;
  /** Paths whose filesystems come first under the cap (the WAL and data directories). */
  readonly firstPaths: readonly string[];
  /** How long after a rise a kernel-log line still accounts for it. */
  readonly logWindowMs: number;
  /** How long history may hold a recorded line before it can be read (its flush interval). */
  readonly settleMs: number;
  /** Why the cross-check is off (the kernel-log collector disabled), or null when it runs. */
  readonly crossCheckOff: string | null;
  /** The kernel-log collector's record; null without history (--once). */
  readonly kernelLog: KernelLogQuery | null;
}

type Attr = { text: string } | { missing: true } | { error: string };

/** One sysfs attribute: a regular file, not through a symlink, at most MAX_ATTR_BYTES. */
export function readAttr(path: string): Attr {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    return errorCode(e) === "ENOENT" ? { missing: true } : { error: `${path}: ${errorMessage(e)}` };
  }
  try {
    if (!fstatSync(fd).isFile()) return { error: `${path}: not a regular file` };
    const buf = Buffer.alloc(MAX_ATTR_BYTES);
    const n = readSync(fd, buf, 0, MAX_ATTR_BYTES, 0);
    return { text: buf.subarray(0, n).toString("latin1") };
  } catch (e) {
    // A device removed mid-read answers ENODEV or ENXIO: gone, like a missing file.
    return { error: `${path}: ${errorMessage(e)}` };
  } finally {
    closeSync(fd);
  }
}

const list = (dir: string): string[] => {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
};

export class ErrcountersCollector implements Collector<ErrcountersObservation> {
  readonly name = "errcounters";
  private readonly host: Host;
  /** kmsg's: a rise's disk must be named as the kernel log's lines are, for the cross-check. */
  private readonly disks: DeviceResolver;
  private readonly pending: PendingRises;
  private last: { at: number; values: Map<string, number> } | null = null;
  /** btrfs member devid by "<fsid>/<name>": read once from the member's superblock. */
  private readonly devids = new Map<string, number | null>();
  /** Each ext4 filesystem as last read, by device and mountpoint. */
  private readonly ext4Seen = new Map<string, Ext4Fs>();

  constructor(private readonly o: ErrcountersOptions) {
    this.host = new Host({ procPath: o.procPath, sysPath: o.sysPath });
    this.disks = new DeviceResolver(o.sysPath);
    this.pending = new PendingRises(o.logWindowMs, o.settleMs);
  }

  async collect(ctx: CollectContext): Promise<ErrcountersObservation> {
    const { mounts } = await this.host.mountinfo("self", ctx.signal);
    const notes: string[] = [];
    const at = Date.now();
    const scsiAll = this.scsi(notes);
    const scsi = scsiAll.slice(0, MAX_DISKS);
    const fs = this.filesystems(mounts);
    const kept = fs.slice(0, MAX_FILESYSTEMS);
    const ext4: Ext4Fs[] = [];
    const btrfs: BtrfsDevice[] = [];
    const xfs: XfsFs[] = [];
    for (const f of kept) {
      if (f.type === "ext4") {
        const e = this.ext4(f.name, f.mountpoint, notes);
        if (e) ext4.push(e);
      } else if (f.type === "xfs") xfs.push({ device: f.name, mountpoint: f.mountpoint });
      else btrfs.push(...this.btrfs(f.name, f.mountpoint, notes));
    }
    const { rises, values } = risesBetween(
      this.last?.values ?? null,
      samples(scsi, ext4, btrfs),
      this.last?.at ?? at,
      at,
    );
    this.last = { at, values };
    const crossCheck: CrossCheck =
      this.o.crossCheckOff !== null
        ? { state: "off", reason: this.o.crossCheckOff }
        : this.o.kernelLog === null
          ? { state: "off", reason: "no history (--once)" }
          : { state: "on", windowMs: this.o.logWindowMs };
    let checks: ErrcountersObservation["checks"] = [];
    if (crossCheck.state === "on" && this.o.kernelLog) {
      const dropped = this.pending.add(rises);
      if (dropped > 0) notes.push(`${dropped} rises left unchecked: more than 256 waiting`);
      checks = this.pending.judge(at, this.o.kernelLog);
    }
    return {
      scsi,
      ext4,
      btrfs,
      xfs,
      omitted: { scsi: scsiAll.length - scsi.length, filesystems: fs.length - kept.length },
      notes: notes.slice(0, 20),
      rises,
      checks,
      pending: this.pending.size,
      crossCheck,
    };
  }

  /** Disks with SCSI counters: sd*, sr*, st* alike (/sys/block/<name>/device/io*_cnt). */
  private scsi(notes: string[]): ScsiDisk[] {
    const out: ScsiDisk[] = [];
    for (const name of list(join(this.o.sysPath, "block"))) {
      const dir = join(this.o.sysPath, "block", name, "device");
      const done = readAttr(join(dir, "iodone_cnt"));
      if ("missing" in done) continue; // not a SCSI device (nvme, loop, virtio)
      const errors = readAttr(join(dir, "ioerr_cnt"));
      const timeouts = readAttr(join(dir, "iotmo_cnt"));
      const v = [done, errors, timeouts].map((a) => ("text" in a ? parseCounter(a.text) : null));
      const [d, e, t] = v;
      if (
        d === null ||
        d === undefined ||
        e === null ||
        e === undefined ||
        t === null ||
        t === undefined
      ) {
        const bad = [done, errors, timeouts].map((a) =>
          "error" in a ? a.error : "text" in a ? show(a.text) : "missing",
        );
        notes.push(`${name}: SCSI counters unreadable (${bad.join("; ")})`);
        continue;
      }
      out.push({ device: name, done: d, errors: e, timeouts: t });
    }
    return out;
  }

  /** Mounted ext4, btrfs and XFS filesystems, one per device, the WAL's and data's first. */
  private filesystems(
    mounts: readonly MountInfo[],
  ): Array<{ type: "ext4" | "xfs" | "btrfs"; name: string; mountpoint: string }> {
    const first = new Set(
      this.o.firstPaths.map((p) => mountFor(p, mounts)?.mountId).filter((id) => id !== undefined),
    );
    const seen = new Map<
      string,
      { type: "ext4" | "xfs" | "btrfs"; name: string; mountpoint: string; first: boolean }
    >();
    for (const m of mounts) {
      if (m.fsType !== "ext4" && m.fsType !== "xfs" && m.fsType !== "btrfs") continue;
      // btrfs has an anonymous device number: its mount source names a member device.
      const name =
        m.fsType === "btrfs" ? this.sourceName(m.source) : this.blockName(m.major, m.minor);
      if (name === null) continue;
      const key = `${m.fsType}:${name}`;
      const had = seen.get(key);
      const isFirst = first.has(m.mountId);
      // Bind mounts and subvolumes: the shortest mountpoint names the filesystem.
      if (!had || isFirst || (!had.first && m.mountPoint.length < had.mountpoint.length))
        seen.set(key, {
          type: m.fsType,
          name,
          mountpoint: m.mountPoint,
          first: isFirst || (had?.first ?? false),
        });
    }
    return [...seen.values()]
      .sort((a, b) => Number(b.first) - Number(a.first) || a.mountpoint.localeCompare(b.mountpoint))
      .map(({ type, name, mountpoint }) => ({ type, name, mountpoint }));
  }

  private blockName(major: number, minor: number): string | null {
    try {
      return basename(realpathSync(join(this.o.sysPath, "dev", "block", `${major}:${minor}`)));
    } catch {
      return null;
    }
  }

  private sourceName(source: string): string | null {
    if (!source.startsWith("/dev/")) return null;
    try {
      // /dev/mapper/x -> dm-3: sysfs names members by the kernel's name.
      return basename(realpathSync(join(this.o.devPath, source.slice(5))));
    } catch {
      return basename(source);
    }
  }

  private ext4(name: string, mountpoint: string, notes: string[]): Ext4Fs | null {
    const dir = join(this.o.sysPath, "fs", "ext4", name);
    const read = (f: string): string | undefined => {
      const a = readAttr(join(dir, f));
      return "text" in a ? a.text : undefined;
    };
    const count = readAttr(join(dir, "errors_count"));
    const errors = "text" in count ? parseCounter(count.text) : null;
    if (errors === null) {
      notes.push(
        `ext4 ${name}: errors_count ` +
          ("missing" in count
            ? "missing (unmounted meanwhile)"
            : "error" in count
              ? count.error
              : `unreadable: ${show(count.text)}`),
      );
      return null;
    }
    const record = (w: "first" | "last") =>
      parseExt4Record({
        time: read(`${w}_error_time`),
        func: read(`${w}_error_func`),
        line: read(`${w}_error_line`),
        ino: read(`${w}_error_ino`),
        block: read(`${w}_error_block`),
        errcode: read(`${w}_error_errcode`),
      });
    // The record changes only with the count (save_error_info sets both): read it when it moves.
    const key = `${name}\u0000${mountpoint}`;
    const had = this.ext4Seen.get(key);
    if (had && had.errors === errors) return had;
    const fs: Ext4Fs = {
      device: name,
      disk: this.disks.diskOf(name),
      mountpoint,
      errors,
      first: record("first"),
      last: record("last"),
    };
    if (this.ext4Seen.size >= MAX_FILESYSTEMS * 2) this.ext4Seen.clear();
    this.ext4Seen.set(key, fs);
    return fs;
  }

  private btrfs(member: string, mountpoint: string, notes: string[]): BtrfsDevice[] {
    const root = join(this.o.sysPath, "fs", "btrfs");
    const fsid = list(root).find(
      (f) => f !== "features" && list(join(root, f, "devices")).includes(member),
    );
    if (!fsid) {
      notes.push(`btrfs ${mountpoint}: no ${root}/<fsid>/devices/${member}`);
      return [];
    }
    const devices = list(join(root, fsid, "devices")).slice(0, MAX_BTRFS_MEMBERS);
    const devinfo = join(root, fsid, "devinfo");
    const devids = list(devinfo)
      .filter((d) => /^[0-9]{1,10}$/.test(d))
      .slice(0, MAX_BTRFS_MEMBERS);
    if (devids.length === 0)
      return [
        {
          fsid,
          devid: null,
          device: null,
          disk: null,
          mountpoint,
          counters: { unavailable: `no ${devinfo} (kernel before 5.9)` },
        },
      ];
    return devids.map((id): BtrfsDevice => {
      const devid = Number(id);
      const device =
        devices.length === 1 && devids.length === 1
          ? (devices[0] ?? null)
          : this.memberName(fsid, devid, devices);
      const a = readAttr(join(devinfo, id, "error_stats"));
      const parsed = "text" in a ? parseBtrfsErrorStats(a.text) : null;
      const counters: BtrfsDevice["counters"] =
        parsed !== null && !("error" in parsed)
          ? { stats: parsed }
          : {
              unavailable:
                "missing" in a
                  ? "no error_stats (kernel before 5.14)"
                  : "error" in a
                    ? a.error
                    : `error_stats unreadable: ${parsed && "error" in parsed ? parsed.error : "?"}`,
            };
      if ("unavailable" in counters && !("missing" in a))
        notes.push(`btrfs ${mountpoint} devid ${devid}: ${counters.unavailable}`);
      return {
        fsid,
        devid,
        device,
        disk: device === null ? null : this.disks.diskOf(device),
        mountpoint,
        counters,
      };
    });
  }

  /** Which member holds `devid`: sysfs does not say, each member's superblock does. */
  private memberName(fsid: string, devid: number, devices: readonly string[]): string | null {
    for (const name of devices) {
      const key = `${fsid}/${name}`;
      if (!this.devids.has(key)) {
        if (this.devids.size > 4 * MAX_BTRFS_MEMBERS) this.devids.clear();
        this.devids.set(key, superblockDevid(join(this.o.devPath, name), fsid));
      }
      if (this.devids.get(key) === devid) return name;
    }
    return null;
  }
}

/**
 * A btrfs member's devid from its primary superblock (64 KiB in; fs/btrfs/ctree.h's
 * btrfs_super_block: fsid at 32, magic "_BHRfS_M" at 64, dev_item.devid at 201), or null when
 * the node is not a block device, or the superblock not btrfs's or not this filesystem's.
 */
export function superblockDevid(path: string, fsid: string): number | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    if (!fstatSync(fd).isBlockDevice()) return null;
    const sb = Buffer.alloc(4096);
    if (readSync(fd, sb, 0, sb.length, 65536) < 209) return null;
    return devidFromSuperblock(sb, fsid);
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/** Pure half of superblockDevid. */
export function devidFromSuperblock(sb: Buffer, fsid: string): number | null {
  if (sb.length < 209 || sb.toString("latin1", 64, 72) !== "_BHRfS_M") return null;
  if (sb.subarray(32, 48).toString("hex") !== fsid.replace(/-/g, "").toLowerCase()) return null;
  const devid = sb.readBigUInt64LE(201);
  return devid <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(devid) : null;
}

/** Every counter of one sample, named for the rise that would follow. */
function samples(
  scsi: readonly ScsiDisk[],
  ext4: readonly Ext4Fs[],
  btrfs: readonly BtrfsDevice[],
): CounterSample[] {
  const out: CounterSample[] = [];
  for (const d of scsi) {
    // SCSI counts every nonzero result, check conditions a caller expects included: no line is owed.
    const base = { device: d.device, disk: d.device, mountpoint: null, logged: false };
    out.push({ ...base, counter: "scsi_ioerr", value: d.errors });
    out.push({ ...base, counter: "scsi_iotmo", value: d.timeouts });
  }
  for (const f of ext4)
    // __ext4_error prints (behind s_err_ratelimit_state) before it counts.
    out.push({
      counter: "ext4_errors",
      device: f.device,
      disk: f.disk,
      mountpoint: f.mountpoint,
      value: f.errors,
      logged: true,
    });
  for (const b of btrfs) {
    if (!("stats" in b.counters)) continue;
    // btrfs_dev_stat_inc_and_print: counted, then "bdev ... errs: wr, rd, flush, corrupt, gen" (rate-limited).
    for (const s of BTRFS_STATS)
      out.push({
        counter: `btrfs_${s}`,
        device: btrfsMemberName(b),
        disk: b.disk,
        mountpoint: b.mountpoint,
        value: b.counters.stats[s],
        logged: true,
      });
  }
  return out;
}
