import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import test from "ava";
import { decodeDev, resolveDevice, resolvePath } from "../collectors/blockdev/resolve.js";
import { parseMountinfo } from "../core/host/mountinfo.js";
import { hasCommand, isRoot, tempDir } from "./helpers/agent-process.js";
import { makeLoopFs } from "./helpers/loop.js";

const hostMounts = () => parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8")).mounts;

test("dev_t decodes like glibc's major()/minor()", (t) => {
  t.deepEqual(decodeDev(1793n), { major: 7, minor: 1 });
  t.deepEqual(decodeDev(65024n), { major: 254, minor: 0 });
  // Large minors use the high bits: 259:65536 (nvme namespaces can get there).
  const dev = (259n << 8n) | ((65536n & ~0xffn) << 12n) | (65536n & 0xffn);
  t.deepEqual(decodeDev(dev), { major: 259, minor: 65536 });
});

test(
  "a directory on a loop-device filesystem maps to the loop device, " +
    "then to the disk under its backing file",
  async (t) => {
    if (!isRoot || !hasCommand("losetup")) return t.pass("skipped: needs root for a loop device");
    const { dir } = tempDir();
    const lfs = makeLoopFs(dir, { sizeMiB: 64 });
    t.teardown(() => lfs.cleanup());
    const wal = join(lfs.mnt, "wal");
    mkdirSync(wal);
    const r = await resolvePath(wal, { sysPath: "/sys", mounts: hostMounts() });
    t.is(r.mountPoint, lfs.mnt);
    t.is(r.fsType, "ext4");
    t.is(r.chain[0]?.name, lfs.device);
    t.is(r.chain[0]?.via, "filesystem");
    const imageDisk = await resolvePath(lfs.image, { sysPath: "/sys", mounts: hostMounts() });
    t.is(r.chain[1]?.name, imageDisk.chain[0]?.name, "then the device holding disk.img");
    t.is(r.chain[1]?.via, "backing-of");
    t.true(r.chain[0]?.writeCache === "write back" || r.chain[0]?.writeCache === "write through");
  },
);

test("tmpfs has no block device, and a missing path resolves through its nearest existing parent", async (t) => {
  const shm = await resolvePath("/dev/shm", { sysPath: "/sys", mounts: hostMounts() });
  t.deepEqual(shm.chain, []);
  t.regex(shm.note ?? "", /tmpfs has no block device/);
  const { dir } = tempDir();
  const missing = await resolvePath(join(dir, "no", "such", "wal"), {
    sysPath: "/sys",
    mounts: hostMounts(),
  });
  const parent = await resolvePath(dir, { sysPath: "/sys", mounts: hostMounts() });
  t.deepEqual(missing.chain, parent.chain);
});

/** A sysfs tree shaped like the kernel's: /sys/dev/block/M:m -> /sys/devices/.../block/<disk>[/<part>]. */
function fakeSysfs(root: string) {
  const disk = (
    path: string,
    devno: string,
    attrs: {
      rotational?: string;
      writeCache?: string;
      partition?: boolean;
      slaves?: Record<string, string>;
    } = {},
  ) => {
    const node = join(root, "devices", path);
    mkdirSync(join(node, "queue"), { recursive: true });
    writeFileSync(join(node, "dev"), `${devno}\n`);
    if (attrs.rotational) writeFileSync(join(node, "queue", "rotational"), `${attrs.rotational}\n`);
    if (attrs.writeCache)
      writeFileSync(join(node, "queue", "write_cache"), `${attrs.writeCache}\n`);
    if (attrs.partition) writeFileSync(join(node, "partition"), "2\n");
    for (const [name, dev] of Object.entries(attrs.slaves ?? {})) {
      mkdirSync(join(node, "slaves", name), { recursive: true });
      writeFileSync(join(node, "slaves", name, "dev"), `${dev}\n`);
    }
    mkdirSync(join(root, "dev", "block"), { recursive: true });
    symlinkSync(node, join(root, "dev", "block", devno));
  };
  disk("pci0/block/sda", "8:0", { rotational: "0", writeCache: "write through" });
  disk("pci0/block/sda/sda2", "8:2", { partition: true });
  disk("pci0/block/nvme0n1", "259:0", { rotational: "0", writeCache: "write back" });
  disk("pci0/block/nvme1n1", "259:1", { rotational: "0", writeCache: "write back" });
  disk("virtual/block/md0", "9:0", {
    rotational: "0",
    slaves: { nvme0n1: "259:0", nvme1n1: "259:1" },
  });
  disk("virtual/block/dm-0", "253:0", { slaves: { md0: "9:0" } });
  disk("pci0/block/cciss!c0d0", "104:0", { rotational: "1", writeCache: "write back" });
  return dirname(join(root, "x"));
}

test("partition -> whole disk, with the disk's queue attributes (prepared sysfs tree)", async (t) => {
  const { dir } = tempDir();
  const sys = fakeSysfs(dir);
  const chain = await resolveDevice({ major: 8, minor: 2 }, { sysPath: sys, mounts: [] });
  t.deepEqual(
    chain.map((d) => [d.name, d.via, d.rotational, d.writeCache]),
    [
      ["sda2", "filesystem", null, null],
      ["sda", "partition-of", false, "write through"],
    ],
  );
});

test("dm -> md -> two NVMe disks, and '!' in sysfs names becomes '/' (prepared sysfs tree)", async (t) => {
  const { dir } = tempDir();
  const sys = fakeSysfs(dir);
  const chain = await resolveDevice({ major: 253, minor: 0 }, { sysPath: sys, mounts: [] });
  t.deepEqual(
    chain.map((d) => `${d.name}:${d.via}`),
    ["dm-0:filesystem", "md0:lower-of", "nvme0n1:lower-of", "nvme1n1:lower-of"],
  );
  const cciss = await resolveDevice({ major: 104, minor: 0 }, { sysPath: sys, mounts: [] });
  t.is(cciss[0]?.name, "cciss/c0d0");
  t.deepEqual(
    await resolveDevice({ major: 1, minor: 99 }, { sysPath: sys, mounts: [] }),
    [],
    "unknown device: empty chain, no throw",
  );
});
