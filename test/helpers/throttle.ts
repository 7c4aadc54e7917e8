// A slow disk for one process, without dm-delay (not in this kernel): the kernel's own block
// throttling (cgroup v1 blkio, or v2 io.max) holds a process's writes to one device to a few
// I/Os a second, so each of its fdatasync calls takes hundreds of ms whatever the machine's
// load. Only that process is slowed; other tests' I/O to the same device is not.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const V1 = "/sys/fs/cgroup/blkio";
const V2 = "/sys/fs/cgroup";

export interface SlowWrites {
  /** Moves `pid` (every thread) into the throttled group. */
  add(pid: number): void;
  /** Moves what is left back and removes the group (safe to call twice). */
  cleanup(): void;
}

/** Why the throttle cannot be used here, or null. */
export function slowWritesUnavailable(): string | null {
  if (existsSync(join(V1, "blkio.throttle.write_iops_device"))) return null;
  if (existsSync(join(V2, "cgroup.controllers"))) {
    const ctl = readFileSync(join(V2, "cgroup.controllers"), "utf8");
    if (/\bio\b/.test(ctl)) return null;
  }
  return "no block I/O throttling (cgroup v1 blkio or v2 io) on this machine";
}

/** Writes of the processes added limited to `iops` a second on `device` ("loop3"). */
export function slowWrites(name: string, device: string, iops: number): SlowWrites {
  const majmin = readFileSync(`/sys/block/${device}/dev`, "utf8").trim();
  const v1 = existsSync(join(V1, "blkio.throttle.write_iops_device"));
  const dir = v1 ? join(V1, name) : join(V2, name);
  mkdirSync(dir, { recursive: true });
  if (v1) writeFileSync(join(dir, "blkio.throttle.write_iops_device"), `${majmin} ${iops}`);
  else writeFileSync(join(dir, "io.max"), `${majmin} wiops=${iops}`);
  let done = false;
  return {
    add(pid) {
      writeFileSync(join(dir, "cgroup.procs"), String(pid));
    },
    cleanup() {
      if (done) return;
      done = true;
      const parent = v1 ? V1 : V2;
      try {
        for (const p of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean))
          writeFileSync(join(parent, "cgroup.procs"), p);
      } catch {
        // gone already
      }
      // A process just killed leaves the group a moment later.
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(dir);
          return;
        } catch {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
        }
      }
    },
  };
}
