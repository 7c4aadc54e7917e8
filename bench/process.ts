// Cost of one run of the process collector on a host with many processes, against
// `ps -eo pid,comm,rss,pcpu` on the same process table in the same run. N idle processes are
// forked by a small C program (one fork each, no exec: cheap to create and to hold), plus three
// processes named like the database. Wall time and CPU per run (the collector's in this process,
// ps's from the children's CPU the kernel adds to ours when reaped).
// Usage: node dist/bench/process.js [N=20000] [runs=15]
// N is capped below kernel.pid_max; raise that (sysctl kernel.pid_max=131072) for 50 000.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProcessCollector } from "../collectors/process/collector.js";
import { isStemedbDatabase } from "../judge/index.js";
import { percentile, round } from "./lib.js";

const want = Number(process.argv[2] ?? 20_000);
const runs = Math.max(5, Number(process.argv[3] ?? 15));
const work = mkdtempSync(join(tmpdir(), "bench-proc-"));
const children: ChildProcess[] = [];
const cleanup = () => {
  for (const c of children) {
    try {
      process.kill(-(c.pid as number), "SIGKILL");
    } catch {
      c.kill("SIGKILL");
    }
  }
  rmSync(work, { recursive: true, force: true });
};
process.on("exit", cleanup);

/** Processes /proc lists now. */
const listed = () => readdirSync("/proc").filter((n) => /^\d+$/.test(n)).length;

const pidMax = Number(readFileSync("/proc/sys/kernel/pid_max", "utf8"));
const before = listed();
const n = Math.max(0, Math.min(want, pidMax - before - 2000));
if (n < want)
  process.stderr.write(`kernel.pid_max is ${pidMax}: forking ${n} processes, not ${want}\n`);

const FORKER = String.raw`
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
  long n = atol(argv[1]);
  setpgid(0, 0);
  for (long i = 0; i < n; i++) {
    pid_t p = fork();
    if (p == 0) { for (;;) pause(); }
    if (p < 0) { perror("fork"); break; }
  }
  printf("ready\n");
  fflush(stdout);
  for (;;) pause();
}
`;
writeFileSync(join(work, "forker.c"), FORKER);
const cc = spawnSync("gcc", ["-O1", "-o", join(work, "forker"), join(work, "forker.c")], {
  encoding: "utf8",
});
if (cc.status !== 0) throw new Error(`gcc: ${cc.stderr}`);

const forker = spawn(join(work, "forker"), [String(n)], {
  stdio: ["ignore", "pipe", "inherit"],
  detached: true,
});
children.push(forker);
await new Promise<void>((resolve, reject) => {
  forker.stdout?.once("data", () => resolve());
  forker.once("exit", (c) => reject(new Error(`forker exited ${c}`)));
});
copyFileSync("/bin/sleep", join(work, "stemedb-fake"));
for (let i = 0; i < 3; i++)
  children.push(spawn(join(work, "stemedb-fake"), ["3600"], { stdio: "ignore", detached: true }));
const total = listed();

/** CPU seconds of this process's reaped children (cutime + cstime), in ticks of 100 Hz. */
function childCpu(): number {
  const f = readFileSync("/proc/self/stat", "utf8");
  const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[13]) + Number(rest[14])) / 100;
}

const col = new ProcessCollector({ procPath: "/proc", isDatabase: isStemedbDatabase });
const signal = new AbortController().signal;
await col.collect({ signal }); // the first run also reads each database process's cgroup
const agentMs: number[] = [];
const agentCpuMs: number[] = [];
const psMs: number[] = [];
let found = 0;
for (let i = 0; i < runs; i++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const o = await col.collect({ signal });
  agentMs.push(performance.now() - t0);
  const c = process.cpuUsage(c0);
  agentCpuMs.push((c.user + c.system) / 1000);
  found = o.group.count;
  const t1 = performance.now();
  const ps = spawnSync("ps", ["-eo", "pid,comm,rss,pcpu"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  psMs.push(performance.now() - t1);
  if (ps.status !== 0) throw new Error(`ps exited ${ps.status}`);
}
// ps's CPU: the kernel adds a reaped child's CPU to cutime/cstime, in 10 ms ticks: over all runs.
const cpu0 = childCpu();
for (let i = 0; i < runs; i++) spawnSync("ps", ["-eo", "pid,comm,rss,pcpu"], { stdio: "ignore" });
const psCpuMs = ((childCpu() - cpu0) / runs) * 1000;

const result = {
  bench: "process",
  processes: total,
  database_processes: found,
  runs,
  agent_ms: { p50: round(percentile(agentMs, 50), 1), p90: round(percentile(agentMs, 90), 1) },
  agent_cpu_ms_p50: round(percentile(agentCpuMs, 50), 1),
  ps_ms: { p50: round(percentile(psMs, 50), 1), p90: round(percentile(psMs, 90), 1) },
  ps_cpu_ms_mean: round(psCpuMs, 1),
};
process.stdout.write(
  `process collector on ${total} processes (${found} database): ` +
    `${result.agent_ms.p50} ms p50 (${result.agent_cpu_ms_p50} ms CPU), ` +
    `ps -eo pid,comm,rss,pcpu ${result.ps_ms.p50} ms p50 (${result.ps_cpu_ms_mean} ms CPU)\n`,
);
process.stdout.write(`${JSON.stringify(result)}\n`);
cleanup();
process.removeListener("exit", cleanup);
process.exit(0);
