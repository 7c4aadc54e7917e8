// Idle footprint at defaults: runs the real agent for a while (default 300 s) on its embedded
// defaults (loopback port, temporary state dir) and prints CPU and RSS from /proc/<pid>/stat.
// Usage: node dist/bench/idle.js [seconds]
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const seconds = Number(process.argv[2] ?? 300);
const bin = fileURLToPath(new URL("../agent/main.js", import.meta.url));
const state = mkdtempSync(join(tmpdir(), "bench-idle-"));
const TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux

function sample(pid: number): { cpu: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpu = (Number(f[11]) + Number(f[12])) / TICKS; // utime + stime
  const rssMiB = (Number(f[21]) * 4096) / 1024 / 1024;
  return { cpu, rssMiB };
}

const child = spawn(process.execPath, [bin], {
  env: { ...process.env, STEMEDB_AGENT_LISTEN: "127.0.0.1:0", STEMEDB_AGENT_STATE_DIR: state },
  stdio: ["ignore", "ignore", "inherit"],
});
const pid = child.pid ?? 0;
await new Promise((r) => setTimeout(r, 15_000)); // warm-up: first samples, JIT, history file
const warm = sample(pid);
const rss: number[] = [];
const t0 = performance.now();
while (performance.now() - t0 < seconds * 1000) {
  await new Promise((r) => setTimeout(r, 5000));
  rss.push(sample(pid).rssMiB);
}
const end = sample(pid);
const wall = (performance.now() - t0) / 1000;
const cpuPct = ((end.cpu - warm.cpu) / wall) * 100;
child.kill("SIGTERM");
await new Promise((r) => child.once("close", r));
rmSync(state, { recursive: true, force: true });
const result = {
  bench: "idle",
  date: new Date().toISOString(),
  seconds: Math.round(wall),
  cpu_percent_of_one_core: Number(cpuPct.toFixed(3)),
  cpu_seconds_per_hour: Number((((end.cpu - warm.cpu) / wall) * 3600).toFixed(1)),
  rss_mib_after_warmup: Number(warm.rssMiB.toFixed(1)),
  rss_mib_end: Number(end.rssMiB.toFixed(1)),
  rss_mib_max: Number(Math.max(...rss).toFixed(1)),
};
console.log(`idle agent at defaults over ${result.seconds} s: CPU ${result.cpu_percent_of_one_core}% of one core (${result.cpu_seconds_per_hour} s/h), RSS ${result.rss_mib_after_warmup} MiB after warm-up, ${result.rss_mib_end} MiB at the end (max ${result.rss_mib_max})`);
console.log(JSON.stringify(result));
