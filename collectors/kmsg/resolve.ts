// Turning a device as the kernel printed it into the whole disk it belongs to, through sysfs.
// Results are cached: a failing device often vanishes from sysfs moments after its errors.
import { existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { basename, dirname } from "node:path";
import type { Classified } from "./classify.js";
import { normaliseBlockName } from "./classify.js";

export interface ResolvedDevice {
  /** Whole disk (metric label), or the name as printed when it cannot be resolved. */
  readonly disk: string;
  /** The partition, dm/md or path device as printed, when it differs from the disk. */
  readonly logical: string | null;
}

export class DeviceResolver {
  private readonly cache = new Map<string, ResolvedDevice>();

  constructor(private readonly sysPath: string) {}

  resolve(c: Pick<Classified, "device" | "deviceKind">): ResolvedDevice {
    if (c.device === null) return { disk: "unknown", logical: null };
    const key = `${c.deviceKind}:${c.device}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const r = this.lookup(c.device, c.deviceKind);
    if (this.cache.size > 4096) this.cache.clear();
    this.cache.set(key, r);
    return r;
  }

  /** The whole disk of a block device by its kernel name (sda1 -> sda), as resolve() says it. */
  diskOf(name: string): string {
    return this.resolve({ device: name, deviceKind: "block" }).disk;
  }

  private lookup(dev: string, kind: Classified["deviceKind"]): ResolvedDevice {
    switch (kind) {
      case "block": {
        // btrfs names members by path: /dev/mapper/NAME is the dm-N whose dm/name is NAME,
        // the name diskstats and every other label use.
        if (dev.startsWith("mapper/"))
          return { disk: this.dmByName(dev.slice(7)) ?? dev, logical: dev };
        // The kernel's "cciss/c0d0" is sysfs's (and diskstats' label) "cciss!c0d0".
        const name = dev.replace(/\//g, "!");
        const byName = normaliseBlockName(name);
        // sysfs knows partitions the name rules do not (e.g. dm partitions).
        try {
          const node = realpathSync(`${this.sysPath}/class/block/${name}`);
          if (existsSync(`${node}/partition`))
            return { disk: basename(dirname(node)), logical: dev };
        } catch {
          // not in sysfs (gone, or another host's name)
        }
        return {
          disk: byName.disk,
          logical: byName.partition ?? (byName.disk !== name ? name : null),
        };
      }
      case "scsi": {
        try {
          const [name] = readdirSync(`${this.sysPath}/class/scsi_device/${dev}/device/block`);
          if (name) return { disk: name, logical: `scsi ${dev}` };
        } catch {
          // gone
        }
        return { disk: `scsi-${dev}`, logical: null };
      }
      case "ata": {
        const port = dev.split(".")[0] ?? dev;
        try {
          for (const b of readdirSync(`${this.sysPath}/block`)) {
            if (realpathSync(`${this.sysPath}/block/${b}`).includes(`/${port}/`))
              return { disk: b, logical: dev };
          }
        } catch {
          // no sysfs
        }
        return { disk: port, logical: dev === port ? null : dev };
      }
      case "devt": {
        try {
          const node = realpathSync(`${this.sysPath}/dev/block/${dev}`);
          // A partition's dev_t (metadata "b8:1"): the metric names its disk.
          if (existsSync(`${node}/partition`))
            return { disk: basename(dirname(node)), logical: basename(node) };
          return { disk: basename(node), logical: dev };
        } catch {
          return { disk: dev, logical: null };
        }
      }
      case "chardev": {
        try {
          return { disk: basename(realpathSync(`${this.sysPath}/dev/char/${dev}`)), logical: null };
        } catch {
          return { disk: `char-${dev}`, logical: null };
        }
      }
      case "raw":
      case "nvme_ctrl":
        return { disk: dev, logical: null };
      case "none":
        return { disk: "unknown", logical: null };
    }
  }

  private dmByName(name: string): string | null {
    try {
      for (const b of readdirSync(`${this.sysPath}/block`)) {
        if (!b.startsWith("dm-")) continue;
        try {
          if (readFileSync(`${this.sysPath}/block/${b}/dm/name`, "utf8").trim() === name) return b;
        } catch {
          // being removed
        }
      }
    } catch {
      // no sysfs
    }
    return null;
  }
}
