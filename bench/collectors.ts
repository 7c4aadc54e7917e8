// Cost of one sample of each disk-side collector, in µs of wall time and CPU, and the fsync
// probe's cost; node_exporter's diskstats collector on the same synthetic 64-device tree is the
// reference (CPU per scrape, its own process). Usage: node dist/bench/collectors.js [scale]
// (scale multiplies the iteration counts; `npm run bench -- --quick` uses 0.2)
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { Registry } from "prom-client";
import { DiskstatsCollector } from "../collectors/diskstats/collector.js";
import { FsyncProbeCollector } from "../collectors/fsync_probe/collector.js";
import { ProcioCollector } from "../collectors/procio/collector.js";
import type { Collector, Sinks } from "../core/collector.js";
import { Router } from "../core/router.js";
import { diskstatsSinks } from "../collectors/diskstats/sink.js";
import { fsyncProbeSinks } from "../collectors/fsync_probe/sink.js";
import { procioSinks } from "../collectors/procio/sink.js";
import { StallsCollector } from "../collectors/stalls/collector.js";
import { stallsSinks } from "../collectors/stalls/sink.js";
import { DEFAULT_STALL_LIMITS } from "../core/stalls.js";
import { isStemedbDatabase } from "../judge/index.js";

const log = pino({ level: "silent" });
const scale = Number(process.argv[2] ?? 1);
const times = (n: number) => Math.max(20, Math.round(n * scale));
const signal = new AbortController().signal;
const work = mkdtempSync(join(tmpdir(), "bench-col-"));

/** A /proc with a diskstats of `n` devices whose counters advance by `step` each rewrite. */
function syntheticProc(n: number, step: number): string {
  const proc = join(work, "proc");
  mkdirSync(join(proc, "self"), { recursive: true });
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const b = 1000 + step * (i + 1);
    lines.push(
      `   8 ${i * 16} sd${String.fromCharCode(97 + (i % 26))}${Math.floor(i / 26) || ""} ${b} ${b} ` +
        `${b * 8} ${b} ${b * 2} ${b} ${b * 16} ${b * 2} 1 ${b} ${b * 3} ${b} 0 ${b} ${b} ${b} ${b}`,
    );
  }
  writeFileSync(join(proc, "diskstats"), `${lines.join("\n")}\n`);
  writeFileSync(join(proc, "self", "mountinfo"), readFileSync("/proc/self/mountinfo"));
  return proc;
}

/** A route to the collector's sinks, as the core builds it (no history: metrics only). */
function route<O, U>(name: string, sinks: Sinks<O, U>): Router<O, U> {
  return new Router(name, sinks, null, log);
}

/** Mean wall and CPU time of collect()+publish(); `between` (e.g. rewriting a synthetic file) is not counted. */
async function cost<O>(
  name: string,
  c: Collector<O>,
  iterations: number,
  between?: (i: number) => void,
  publish?: { observation(o: O): void },
) {
  // Not `publish?.observation(await c.collect())`: an optional call skips its arguments when absent.
  const sampleOnce = async () => {
    const o = await c.collect({ signal });
    publish?.observation(o);
  };
  for (let i = 0; i < 50; i++) await sampleOnce(); // warm-up
  let wall = 0;
  let cpu = 0;
  for (let i = 0; i < iterations; i++) {
    between?.(i);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await sampleOnce();
    wall += performance.now() - t0;
    const d = process.cpuUsage(cpu0);
    cpu += d.user + d.system;
  }
  return {
    name,
    iterations,
    wall_us: Math.round((wall / iterations) * 1000),
    cpu_us: Math.round(cpu / iterations),
  };
}

function pidCpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function nodeExporterScrape(proc: string, scrapes: number) {
  const bin = "/usr/bin/prometheus-node-exporter";
  if (spawnSync("test", ["-x", bin]).status !== 0) return null;
  const port = 19000 + Math.floor(Math.random() * 1000);
  const ne = spawn(
    bin,
    [
      `--web.listen-address=127.0.0.1:${port}`,
      `--path.procfs=${proc}`,
      "--collector.disable-defaults",
      "--collector.diskstats",
      "--collector.diskstats.device-exclude=^$",
    ],
    { stdio: "ignore" },
  );
  try {
    for (let i = 0; i < 50; i++) {
      try {
        await fetch(`http://127.0.0.1:${port}/metrics`);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const cpu0 = pidCpuSeconds(ne.pid ?? 0);
    const t0 = performance.now();
    for (let i = 0; i < scrapes; i++)
      await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const wall = ((performance.now() - t0) / scrapes) * 1000;
    const cpu = ((pidCpuSeconds(ne.pid ?? 0) - cpu0) / scrapes) * 1e6;
    return {
      name: "node_exporter 1.5 diskstats, 64 devices (per scrape)",
      iterations: scrapes,
      wall_us: Math.round(wall),
      cpu_us: Math.round(cpu),
    };
  } finally {
    ne.kill("SIGTERM");
  }
}

const rows = [];
const proc64 = syntheticProc(64, 1);
let step = 1;
const disk64 = new DiskstatsCollector({
  procPath: proc64,
  sysPath: "/sys",
  roles: [],
  include: "",
  exclude: "",
});
rows.push(
  await cost(
    "diskstats, 64 devices (synthetic proc)",
    disk64,
    times(2000),
    () => syntheticProc(64, ++step),
    route("diskstats", diskstatsSinks(new Registry(), log, `${proc64}/diskstats`)),
  ),
);
// Like for like with node_exporter's per-scrape figure: sample, publish and render the exposition.
const reg64 = new Registry();
const disk64r = new DiskstatsCollector({
  procPath: proc64,
  sysPath: "/sys",
  roles: [],
  include: "",
  exclude: "",
});
const disk64rRoute = route("diskstats", diskstatsSinks(reg64, log, `${proc64}/diskstats`));
const rendering: Collector<unknown> = {
  name: "r",
  collect: async (ctx) => {
    const o = await disk64r.collect(ctx);
    disk64rRoute.observation(o);
    await reg64.metrics();
    return o;
  },
};
rows.push(
  await cost("diskstats, 64 devices + render /metrics text", rendering, times(500), () =>
    syntheticProc(64, ++step),
  ),
);
const diskHere = new DiskstatsCollector({
  procPath: "/proc",
  sysPath: "/sys",
  roles: [{ role: "wal", path: work }],
  include: "",
  exclude: "^(ram|zram)\\d+$",
});
rows.push(
  await cost(
    "diskstats, this machine",
    diskHere,
    times(2000),
    undefined,
    route("diskstats", diskstatsSinks(new Registry(), log, "/proc/diskstats")),
  ),
);
const procio = new ProcioCollector({ procPath: "/proc", units: [], topK: 10 });
const nproc = (await procio.collect({ signal })).processes;
rows.push(
  await cost(
    `procio, this machine (${nproc} processes)`,
    procio,
    times(300),
    undefined,
    route("procio", procioSinks(new Registry(), [])),
  ),
);
const probeDir = join(work, "probe");
mkdirSync(probeDir);
const probeRoute = route("fsync_probe", fsyncProbeSinks(new Registry(), log));
const probe = new FsyncProbeCollector({
  dirs: [probeDir],
  blockSize: 4096,
  deadlineMs: 5000,
  procPath: "/proc",
  emit: probeRoute.update,
});
rows.push(
  await cost(
    "fsync probe, 4 KiB + fdatasync (ext4 on vda)",
    probe,
    times(300),
    undefined,
    probeRoute,
  ),
);
await probe.close();
// The stalls collector each second on this host: the database pids (a full /proc walk every 5 s,
// included in the mean), their threads' states, and every whole device's in-flight age.
const pids = readdirSync("/proc").filter((n) => /^\d+$/.test(n)).length;
const stallsRoute = route(
  "stalls",
  stallsSinks(new Registry(), log, "/var/lib/stemedb/wal", DEFAULT_STALL_LIMITS),
);
const stalls = new StallsCollector({
  procPath: "/proc",
  sysPath: "/sys",
  walDir: "/var/lib/stemedb/wal",
  isDatabase: isStemedbDatabase,
});
rows.push(
  await cost(
    `stalls, this machine (${pids} processes)`,
    stalls,
    times(300),
    undefined,
    stallsRoute,
  ),
);
const ref = await nodeExporterScrape(proc64, times(500));
if (ref) rows.push(ref);

console.log(`collector cost per sample (${new Date().toISOString()}, node ${process.version})`);
console.log(`${"collector".padEnd(56)} ${"wall µs".padStart(9)} ${"CPU µs".padStart(9)}`);
for (const r of rows)
  console.log(
    `${r.name.padEnd(56)} ${String(r.wall_us).padStart(9)} ${String(r.cpu_us).padStart(9)}`,
  );
if (!ref)
  console.log(
    "(node_exporter not installed: reference skipped; bash bench/deps.sh installs it as root)",
  );
console.log(JSON.stringify({ bench: "collectors", rows }));
rmSync(work, { recursive: true, force: true });
