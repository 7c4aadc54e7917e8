// Real loop devices with a real filesystem, for tests that need a block device of their own.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

export interface LoopFs {
  readonly device: string; // "loop3"
  readonly dev: string; // "/dev/loop3"
  readonly image: string;
  readonly mnt: string;
  cleanup(): void;
}

export function makeLoopFs(
  dir: string,
  opts: { sizeMiB?: number; fs?: "ext4" | "xfs" | "btrfs"; mountOptions?: string } = {},
): LoopFs {
  const image = join(dir, "disk.img");
  const mnt = join(dir, "mnt");
  mkdirSync(mnt, { recursive: true });
  execFileSync("truncate", ["-s", `${opts.sizeMiB ?? 256}M`, image]);
  const dev = execFileSync("losetup", ["--find", "--show", image], { encoding: "utf8" }).trim();
  const fs = opts.fs ?? "ext4";
  try {
    // No lazy init: ext4's background inode-table zeroing would write during the measurements.
    const mkfsArgs =
      fs === "ext4"
        ? ["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", dev]
        : ["-q", "-f", dev];
    execFileSync(`mkfs.${fs}`, mkfsArgs, { stdio: "ignore" });
    execFileSync("mount", [...(opts.mountOptions ? ["-o", opts.mountOptions] : []), dev, mnt]);
  } catch (e) {
    spawnSync("losetup", ["-d", dev]);
    throw e;
  }
  return {
    device: dev.replace("/dev/", ""),
    dev,
    image,
    mnt,
    cleanup() {
      // A process killed in the teardown just before (fio, the agent) may still hold a file for a
      // moment: retry, then detach lazily; losetup -d frees the device once it is released.
      for (let i = 0; i < 20 && spawnSync("umount", [mnt]).status !== 0; i++) {
        if (spawnSync("mountpoint", ["-q", mnt]).status !== 0) break;
        spawnSync("sleep", ["0.1"]);
      }
      if (spawnSync("mountpoint", ["-q", mnt]).status === 0) spawnSync("umount", ["-l", mnt]);
      spawnSync("losetup", ["-d", dev]);
    },
  };
}

/** A small tmpfs at <dir>/<name> (for full-filesystem tests); unmounted at teardown. */
/** mode: of the tmpfs root (default 1777, which a root agent refuses as its state dir). */
export function makeTmpfs(
  dir: string,
  name: string,
  size: string,
  teardown: (fn: () => void) => void,
  mode?: string,
): string {
  const mnt = join(dir, name);
  mkdirSync(mnt, { recursive: true });
  execFileSync("mount", [
    "-t",
    "tmpfs",
    "-o",
    `size=${size}${mode ? `,mode=${mode}` : ""}`,
    "tmpfs",
    mnt,
  ]);
  teardown(() => spawnSync("umount", ["-l", mnt]));
  return mnt;
}
