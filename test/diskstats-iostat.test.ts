// The agent's iostat figures against sysstat's iostat for the same interval, on a real loop
// device under a real fio load. Needs root, fio and sysstat (npm test installs them).
import { spawn, spawnSync } from "node:child_process";
import test from "ava";
import { DiskstatsCollector } from "../collectors/diskstats/collector.js";
import type { DiskstatsObservation } from "../collectors/diskstats/observation.js";
import { hasCommand, isRoot, tempDir } from "./helpers/agent-process.js";
import { makeLoopFs } from "./helpers/loop.js";
import { sleep } from "./helpers/quiet.js";

interface SysstatDisk {
  disk_device: string;
  "r/s": number;
  "w/s": number;
  "f/s": number;
  "rkB/s": number;
  "wkB/s": number;
  r_await: number;
  w_await: number;
  f_await: number;
  "aqu-sz": number;
  util: number;
  "wareq-sz": number;
}

test("await, IOPS, throughput, aqu-sz and %util match iostat -x for the same interval under fio", async (t) => {
  if (!isRoot) return t.pass("skipped: needs root for a loop device");
  for (const cmd of ["iostat", "fio", "losetup"])
    if (!hasCommand(cmd))
      return t.pass(`skipped: ${cmd} not installed (npm test installs it as root)`);
  const { dir } = tempDir();
  const lfs = makeLoopFs(dir, { sizeMiB: 256 });
  t.teardown(() => lfs.cleanup());
  const col = new DiskstatsCollector({
    procPath: "/proc",
    sysPath: "/sys",
    roles: [{ role: "wal", path: lfs.mnt }],
    include: `^${lfs.device}$`,
    exclude: "",
  });
  const signal = new AbortController().signal;
  spawnSync("sync");
  await sleep(500);

  // Snapshot A, then iostat's own 6 s interval with fio inside it (idle at both edges), then B.
  await col.collect({ signal });
  const iostat = spawn("iostat", ["-y", "-x", "-d", "-o", "JSON", lfs.device, "6", "1"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let json = "";
  iostat.stdout.on("data", (b: Buffer) => (json += b.toString()));
  const iostatDone = new Promise<void>((resolve) => iostat.once("close", () => resolve()));
  await sleep(1000);
  const fio = spawnSync(
    "fio",
    [
      "--name=walsim",
      `--directory=${lfs.mnt}`,
      "--rw=randrw",
      "--rwmixread=30",
      "--bs=8k",
      "--size=48M",
      "--direct=1",
      "--ioengine=psync",
      "--fsync=4",
      "--runtime=3",
      "--time_based",
      "--output-format=terse",
    ],
    { encoding: "utf8", timeout: 30_000 },
  );
  t.is(fio.status, 0, fio.stderr);
  await iostatDone;
  const B: DiskstatsObservation = await col.collect({ signal });

  const sys = (
    JSON.parse(json) as {
      sysstat: { hosts: Array<{ statistics: Array<{ disk: SysstatDisk[] }> }> };
    }
  ).sysstat.hosts[0]?.statistics[0]?.disk.find((d) => d.disk_device === lfs.device);
  const ours = B.devices.find((d) => d.device === lfs.device)?.iostat;
  if (!sys || !ours) return t.fail(`no figures: iostat ${json.slice(0, 200)}`);

  const rows: Array<[string, number, number, number]> = [
    // name, ours, iostat, absolute tolerance for tiny values
    ["r/s", ours.r_s, sys["r/s"], 1],
    ["w/s", ours.w_s, sys["w/s"], 1],
    ["f/s", ours.f_s, sys["f/s"], 1],
    ["rkB/s", ours.rkB_s, sys["rkB/s"], 8],
    ["wkB/s", ours.wkB_s, sys["wkB/s"], 8],
    ["r_await", ours.r_await_ms ?? 0, sys.r_await, 0.1],
    ["w_await", ours.w_await_ms ?? 0, sys.w_await, 0.1],
    ["f_await", ours.f_await_ms ?? 0, sys.f_await, 0.1],
    ["wareq-sz", ours.wareq_sz_kB ?? 0, sys["wareq-sz"], 0.1],
    ["aqu-sz", ours.aqu_sz, sys["aqu-sz"], 0.02],
    ["%util", ours.util_pct, sys.util, 0.5],
  ];
  t.log(`interval: ours ${B.interval_seconds?.toFixed(3)} s, iostat 6 s`);
  for (const [name, a, b, abs] of rows) {
    const ok = Math.abs(a - b) <= Math.max(abs, 0.05 * Math.abs(b));
    t.log(
      `${name.padEnd(9)} agent ${a.toFixed(2).padStart(10)}  iostat ${b.toFixed(2).padStart(10)}  ` +
        `${ok ? "ok" : "MISMATCH"}`,
    );
    t.true(ok, `${name}: agent ${a} vs iostat ${b}`);
  }
  t.true(sys["w/s"] > 50, "fio really loaded the device");
  t.true(sys["r/s"] > 10, "reads happened too");
});
