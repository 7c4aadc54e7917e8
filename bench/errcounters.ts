// Cost of one errcounters sample (collect and the sinks' metrics and events), in µs of wall time
// and CPU: on this host's own sysfs, and on a synthetic tree at the caps (64 SCSI disks, 32 ext4
// filesystems with their full error record). There is no reference tool: node_exporter has no
// such collector (its issues #2231 and #3005 are open); a sample reads ~3 files per disk and
// ~13 per ext4 filesystem, which the figure divides into. Usage: node dist/bench/errcounters.js [n]
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Registry } from "prom-client";
import {
  ErrcountersCollector,
  MAX_DISKS,
  MAX_FILESYSTEMS,
} from "../collectors/errcounters/collector.js";
import { errcountersSinks } from "../collectors/errcounters/sink.js";
import { COLLECTOR_JUDGE } from "../judge/index.js";

const n = Number(process.argv[2] ?? 500);
const signal = new AbortController().signal;
const work = mkdtempSync(join(tmpdir(), "bench-errc-"));

function write(p: string, text: string): void {
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
}

/** 64 SCSI disks, each with one partition holding ext4 (the first 32 mounted). */
function synthetic(): { sys: string; proc: string } {
  const sys = join(work, "sys");
  const proc = join(work, "proc");
  const mounts: string[] = [];
  for (let i = 0; i < MAX_DISKS; i++) {
    const name = `sd${String.fromCharCode(97 + (i % 26))}${Math.floor(i / 26) || ""}`;
    const node = join(sys, "devices/scsi", `${i}:0:0:0`, "block", name);
    for (const [f, v] of [
      ["iodone_cnt", "0x1b3e"],
      ["ioerr_cnt", "0x3"],
      ["iotmo_cnt", "0x0"],
    ] as const)
      write(join(node, "..", "..", f), `${v}\n`);
    symlinkSync(join(node, "..", ".."), join(mkdirp(node), "device"));
    mkdirp(join(sys, "block"));
    mkdirp(join(sys, "class/block"));
    mkdirp(join(sys, "dev/block"));
    symlinkSync(node, join(sys, "block", name));
    write(join(node, `${name}1`, "partition"), "1\n");
    symlinkSync(join(node, `${name}1`), join(sys, "class/block", `${name}1`));
    symlinkSync(join(node, `${name}1`), join(sys, "dev/block", `8:${i * 16 + 1}`));
    if (i >= MAX_FILESYSTEMS) continue;
    const fs = join(sys, "fs/ext4", `${name}1`);
    write(join(fs, "errors_count"), "2\n");
    for (const w of ["first", "last"]) {
      write(join(fs, `${w}_error_time`), "1700000000\n");
      write(join(fs, `${w}_error_func`), "ext4_lookup\n");
      for (const f of ["line", "ino", "block", "errcode"])
        write(join(fs, `${w}_error_${f}`), "12\n");
    }
    mounts.push(`${100 + i} 1 8:${i * 16 + 1} / /m${i} rw - ext4 /dev/${name}1 rw`);
  }
  write(join(proc, "self/mountinfo"), `${mounts.join("\n")}\n`);
  return { sys, proc };
}
function mkdirp(p: string): string {
  mkdirSync(p, { recursive: true });
  return p;
}

async function cost(name: string, sysPath: string, procPath: string) {
  const sinks = errcountersSinks(new Registry(), COLLECTOR_JUDGE);
  const c = new ErrcountersCollector({
    procPath,
    sysPath,
    devPath: "/dev",
    firstPaths: [],
    logWindowMs: 30_000,
    settleMs: 10_000,
    crossCheckOff: "bench",
    kernelLog: null,
  });
  const once = async () => {
    const o = await c.collect({ signal });
    sinks.observation.metrics?.(o);
    Array.from(sinks.observation.events?.(o) ?? []);
    return o;
  };
  const o = await once();
  for (let i = 0; i < 20; i++) await once();
  let wall = 0;
  let cpu = 0;
  for (let i = 0; i < n; i++) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await once();
    wall += performance.now() - t0;
    const d = process.cpuUsage(cpu0);
    cpu += d.user + d.system;
  }
  return {
    name,
    scsi_disks: o.scsi.length,
    ext4: o.ext4.length,
    btrfs_members: o.btrfs.length,
    xfs: o.xfs.length,
    iterations: n,
    wall_us: Math.round((wall / n) * 1000),
    cpu_us: Math.round(cpu / n),
  };
}

try {
  const host = await cost("this host's /sys", "/sys", "/proc");
  const t = synthetic();
  const caps = await cost("synthetic tree at the caps", t.sys, t.proc);
  for (const r of [host, caps])
    process.stderr.write(
      `errcounters: ${r.name}: ${r.scsi_disks} SCSI disks, ${r.ext4} ext4, ${r.btrfs_members} btrfs ` +
        `members, ${r.xfs} xfs: ${r.wall_us} µs wall, ${r.cpu_us} µs CPU per sample (${r.iterations} samples)\n`,
    );
  process.stdout.write(`${JSON.stringify({ bench: "errcounters", results: [host, caps] })}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
