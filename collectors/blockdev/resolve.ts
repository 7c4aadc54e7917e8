// Which block devices a path's I/O lands on: the filesystem's device, partition -> whole disk,
// dm/md -> their lower devices, loop -> the device of its backing file; plus write cache and
// rotational from sysfs. Reads sysfs under a configurable root, so tests can point it at a
// prepared tree (partitions, dm and md cannot be created on every test machine).
import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { mountFor, type MountInfo } from "../../core/host/mountinfo.js";
import { nearestExisting } from "../mounts/paths.js";
import { errorMessage } from "../../core/errors.js";

export interface DeviceNode {
  readonly name: string;
  readonly major: number;
  readonly minor: number;
  /** How this device relates to the one before it in the chain. */
  readonly via: "filesystem" | "partition-of" | "lower-of" | "backing-of";
  /** From /sys/block/<disk>/queue; null where sysfs has no answer (partitions use their disk's). */
  readonly rotational: boolean | null;
  readonly writeCache: "write back" | "write through" | null;
}

export interface PathDevices {
  readonly path: string;
  readonly mountPoint: string | null;
  readonly fsType: string | null;
  /** Devices from the filesystem's own down to the physical ones; empty for tmpfs, NFS, ... */
  readonly chain: DeviceNode[];
  /** Why the chain is empty or incomplete, for people. */
  readonly note: string | null;
}

/** glibc's encoding of dev_t (sys/sysmacros.h). */
export function decodeDev(dev: bigint): { major: number; minor: number } {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return { major, minor };
}

async function readText(p: string): Promise<string | null> {
  try {
    return (await readFile(p, "utf8")).trim();
  } catch {
    return null;
  }
}

export interface ResolveOptions {
  readonly sysPath: string;
  readonly mounts: readonly MountInfo[];
  /** Guards against loops of loop devices. */
  readonly maxDepth?: number;
}

export async function resolvePath(path: string, opts: ResolveOptions): Promise<PathDevices> {
  const { real } = await nearestExisting(path);
  const mount = mountFor(real, opts.mounts) ?? null;
  const chain: DeviceNode[] = [];
  let note: string | null = null;
  let devno: { major: number; minor: number } | null = null;
  try {
    devno = decodeDev((await stat(real, { bigint: true })).dev);
  } catch (e) {
    note = `cannot stat ${real}: ${errorMessage(e)}`;
  }
  // Anonymous device (btrfs subvolume, overlay, tmpfs): the mount's source may still be a block device.
  if (devno && devno.major === 0) {
    devno = null;
    if (mount?.source.startsWith("/dev/")) {
      try {
        devno = decodeDev((await stat(mount.source, { bigint: true })).rdev);
      } catch {
        // source not present in this namespace
      }
    }
    if (!devno) note = `${mount?.fsType ?? "this filesystem"} has no block device`;
  }
  if (devno) chain.push(...(await resolveDevice(devno, opts)));
  if (devno && chain.length === 0)
    note = `device ${devno.major}:${devno.minor} is not in ${opts.sysPath}/dev/block`;
  return {
    path,
    mountPoint: mount?.mountPoint ?? null,
    fsType: mount?.fsType ?? null,
    chain,
    note,
  };
}

/** The chain below one device number: itself, its disk (partition), lower (dm/md) and backing (loop) devices. */
export async function resolveDevice(
  devno: { major: number; minor: number },
  opts: ResolveOptions,
): Promise<DeviceNode[]> {
  const chain: DeviceNode[] = [];
  await walk(devno, "filesystem", chain, opts, 0);
  return chain;
}

async function walk(
  devno: { major: number; minor: number },
  via: DeviceNode["via"],
  chain: DeviceNode[],
  opts: ResolveOptions,
  depth: number,
): Promise<void> {
  if (depth > (opts.maxDepth ?? 8)) return;
  let node: string;
  try {
    node = await realpath(join(opts.sysPath, "dev", "block", `${devno.major}:${devno.minor}`));
  } catch {
    return;
  }
  const name = basename(node).replace(/!/g, "/");
  if (chain.some((d) => d.name === name)) return;
  const isPartition = (await readText(join(node, "partition"))) !== null;
  const queue = isPartition ? null : await queueAttrs(node);
  chain.push({
    name,
    ...devno,
    via,
    rotational: queue?.rotational ?? null,
    writeCache: queue?.writeCache ?? null,
  });
  if (isPartition) {
    const parent = dirname(node);
    const dev = await readText(join(parent, "dev"));
    const m = dev ? /^(\d+):(\d+)$/.exec(dev) : null;
    if (m)
      await walk(
        { major: Number(m[1]), minor: Number(m[2]) },
        "partition-of",
        chain,
        opts,
        depth + 1,
      );
    return;
  }
  // dm-*, md*: the devices underneath.
  let slaves: string[] = [];
  try {
    slaves = (await readdir(join(node, "slaves"))).sort();
  } catch {
    // none
  }
  for (const s of slaves) {
    const dev = await readText(join(node, "slaves", s, "dev"));
    const m = dev ? /^(\d+):(\d+)$/.exec(dev) : null;
    if (m)
      await walk({ major: Number(m[1]), minor: Number(m[2]) }, "lower-of", chain, opts, depth + 1);
  }
  // A loop device's I/O lands on the filesystem holding its backing file.
  const backing = await readText(join(node, "loop", "backing_file"));
  if (backing && !backing.endsWith("(deleted)")) {
    try {
      await walk(
        decodeDev((await stat(backing, { bigint: true })).dev),
        "backing-of",
        chain,
        opts,
        depth + 1,
      );
    } catch {
      // backing file not visible here
    }
  }
}

async function queueAttrs(
  node: string,
): Promise<{ rotational: boolean | null; writeCache: "write back" | "write through" | null }> {
  const rot = await readText(join(node, "queue", "rotational"));
  const wc = await readText(join(node, "queue", "write_cache"));
  return {
    rotational: rot === "1" ? true : rot === "0" ? false : null,
    writeCache: wc === "write back" || wc === "write through" ? wc : null,
  };
}
