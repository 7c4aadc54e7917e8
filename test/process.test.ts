// The process collector: its pure parsers and the arithmetic of two samples, then real processes
// named like the database (a small C program copied to `stemedb-fake`) burning a known amount of
// CPU, holding memory, threads and descriptors, a thread in D (a vfork parent), processes that
// exit mid-walk, one run as another real user; the metrics checked by promtool.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { Registry } from "prom-client";
import { ProcessCollector } from "../collectors/process/collector.js";
import type { ProcessObservation } from "../collectors/process/observation.js";
import {
  account,
  type Baseline,
  cpuRatios,
  parseAuxvClockTicks,
  parseCpuTimes,
  parseMeminfo,
  parseUptime,
  type ProcessSample,
} from "../collectors/process/parse.js";
import { processSinks } from "../collectors/process/sink.js";
import { parseProcStat, parseProcStatus } from "../core/host/proc.js";
import { isStemedbDatabase } from "../judge/index.js";
import { hasCommand, isRoot, tempDir } from "./helpers/agent-process.js";
import { compileC } from "./helpers/cc.js";
import { alive, routed } from "./helpers/quiet.js";

// ------------------------------------------------------------------ pure

test("/proc/<pid>/stat gives CPU ticks, threads and start time; garbage gives NaN, never 0", (t) => {
  const line =
    "4242 (stemedb (io)) D 1 4242 4242 0 -1 4194624 120 0 0 0 1534 272 0 0 20 0 17 0 98765 " +
    "1000000 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
  const s = parseProcStat(line);
  t.like(s, { comm: "stemedb (io)", state: "D", utime: 1534, stime: 272, threads: 17 });
  t.is(s.starttime, 98765);
  const g = parseProcStat("7 (x) S 1 7 7 0 -1 0 0 0 0 0 -3 abc");
  t.true(Number.isNaN(g.utime) && Number.isNaN(g.stime) && Number.isNaN(g.starttime));
});

test("/proc/<pid>/status: VmRSS in bytes (0 for a kernel thread) and Threads", (t) => {
  t.deepEqual(parseProcStatus("Name:\tx\nVmRSS:\t    1728 kB\nThreads:\t3\n"), {
    rssBytes: 1728 * 1024,
    threads: 3,
  });
  const k = parseProcStatus("Name:\tkworker/0:1\nThreads:\t1\n");
  t.is(k.rssBytes, 0);
  t.true(Number.isNaN(parseProcStatus("").threads));
});

test("<proc>/stat: CPUs are the cpuN lines, busy and iowait shares over an interval", (t) => {
  const a = parseCpuTimes(
    "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\n" +
      "intr 1 2 3\n",
  );
  const b = parseCpuTimes(
    "cpu  160 0 70 900 70 0 0 0 0 0\ncpu0 80 0 35 450 35 0 0 0 0 0\ncpu1 80 0 35 450 35 0 0 0 0 0\n",
  );
  if (typeof a === "string" || typeof b === "string") return t.fail(JSON.stringify([a, b]));
  t.is(a.cpus, 2);
  // 200 ticks passed: 100 idle, 20 iowait, 80 busy.
  t.deepEqual(cpuRatios(a, b), { busy_ratio: 0.4, iowait_ratio: 0.1 });
  t.deepEqual(cpuRatios(null, b), { busy_ratio: null, iowait_ratio: null });
  t.deepEqual(cpuRatios(b, b), { busy_ratio: null, iowait_ratio: null });
  // iowait stepping back (tickless kernels) is clamped: never a negative share, never above 1.
  const c = parseCpuTimes("cpu  260 0 70 900 60 0 0 0\ncpu0 1 1 1 1\n");
  if (typeof c === "string") return t.fail(c);
  t.deepEqual(cpuRatios(b, c), { busy_ratio: 1, iowait_ratio: 0 });
  t.is(typeof parseCpuTimes("intr 1\n"), "string");
  t.is(typeof parseCpuTimes("cpu  1 2 x 4\ncpu0 1 2 3 4\n"), "string");
  t.is(typeof parseCpuTimes("cpu  1 2 3 4\n"), "string");
  t.is(typeof parseCpuTimes(`cpu  ${"9".repeat(30)} 1 1 1\ncpu0 1 1 1 1\n`), "string");
});

test("meminfo: MemAvailable in bytes, MemFree on kernels without it; uptime", (t) => {
  t.deepEqual(parseMeminfo("MemTotal:  1000 kB\nMemFree:  100 kB\nMemAvailable:  600 kB\n"), {
    total_bytes: 1_024_000,
    available_bytes: 614_400,
  });
  t.is(
    (parseMeminfo("MemTotal:  1000 kB\nMemFree:  100 kB\n") as { available_bytes: number })
      .available_bytes,
    102_400,
  );
  t.is(typeof parseMeminfo("garbage"), "string");
  t.is(parseUptime("12345.67 2345.60\n"), 12345.67);
  t.is(parseUptime("x"), null);
});

test("the clock tick from this process's auxv is what getconf CLK_TCK says", (t) => {
  const auxv = execFileSync("cat", ["/proc/self/auxv"]);
  const getconf = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
  t.is(parseAuxvClockTicks(auxv), getconf);
  t.is(new ProcessCollector({ procPath: "/proc", isDatabase: () => false }).clockTicks, getconf);
  t.is(parseAuxvClockTicks(Buffer.alloc(0)), null);
  t.is(parseAuxvClockTicks(Buffer.alloc(7)), null);
});

const sample = (over: Partial<ProcessSample> & { pid: number }): ProcessSample => ({
  comm: "stemedb",
  unit: null,
  state: "S",
  utime: 0,
  stime: 0,
  starttime: 100,
  rss_bytes: 0,
  threads: 1,
  threads_in_d: 0,
  open_fds: 3,
  ...over,
});

test(
  "account: deltas per mode for processes seen twice, all of a new one's CPU, none of an old " +
    "one first seen now; a reused pid is a new process",
  (t) => {
    const hz = 100;
    const first = account(
      [sample({ pid: 1, utime: 1000, stime: 100 }), sample({ pid: 2, utime: 50 })],
      null,
      100,
      hz,
      null,
    );
    t.is(first.group.cpu_cores, null);
    t.is(first.group.cpu_seconds_interval, null);
    t.deepEqual(first.group.cpu_seconds, { user: 10.5, system: 1 });
    const base: Baseline = first.baseline;
    const second = account(
      [
        sample({ pid: 1, utime: 1300, stime: 200 }), // +3 s user, +1 s system
        sample({ pid: 2, utime: 70, starttime: 10_500 }), // pid reused: started after the last sample
        sample({ pid: 3, utime: 5_000, stime: 5_000, starttime: 50 }), // old, comm changed
      ],
      base,
      110,
      hz,
      10,
    );
    t.deepEqual(second.group.cpu_seconds_interval, { user: 3.7, system: 1 });
    t.is(second.group.cpu_cores, 4.7 / 10);
    t.is(second.processes[0]?.pid, 1);
    t.is(second.processes[0]?.cpu_cores, 0.4);
    t.is(second.processes.find((p) => p.pid === 2)?.cpu_cores, null);
    // A process gone: the group's cumulative seconds go down, the interval never negative.
    const third = account(
      [sample({ pid: 2, utime: 80, starttime: 10_500 })],
      second.baseline,
      120,
      hz,
      10,
    );
    t.deepEqual(third.group.cpu_seconds_interval, { user: 0.1, system: 0 });
    t.true(third.group.cpu_seconds.user < second.group.cpu_seconds.user);
    // Counters that step back for the same process (a captured tree, a bad read) count as 0.
    const fourth = account(
      [sample({ pid: 2, utime: 10, starttime: 10_500 })],
      third.baseline,
      130,
      hz,
      10,
    );
    t.deepEqual(fourth.group.cpu_seconds_interval, { user: 0, system: 0 });
  },
);

// ------------------------------------------------------------------ real processes

const FAKE_C = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static double cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}
static void *idle(void *a) { for (;;) pause(); return a; }
static void say(const char *s) { if (write(1, s, strlen(s)) < 0) _exit(2); }
int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  long n = argc > 2 ? atol(argv[2]) : 0;
  if (!strcmp(mode, "exit")) return 0;
  if (!strcmp(mode, "mem")) { char *p = malloc(n << 20); memset(p, 1, n << 20); }
  if (!strcmp(mode, "threads")) { pthread_t t; for (long i = 0; i < n; i++) pthread_create(&t, 0, idle, 0); }
  if (!strcmp(mode, "fds")) {
    /* Open n more, then count what is open by asking the kernel for each number (not /proc). */
    char b[32];
    int open_now = 0;
    for (long i = 0; i < n; i++) open("/dev/null", O_RDONLY);
    for (int fd = 0; fd < 4096; fd++) open_now += fcntl(fd, F_GETFD) != -1;
    snprintf(b, sizeof b, "ready %d\n", open_now);
    say(b);
    for (;;) pause();
  }
  if (!strcmp(mode, "burn")) {
    /* Burn n ms of CPU when told (a line on stdin), then idle: a known amount between two samples. */
    char c;
    say("ready\n");
    if (read(0, &c, 1) != 1) return 1;
    double end = cpu() + n / 1000.0;
    while (cpu() < end) {}
    say("burned\n");
    for (;;) pause();
  }
  if (!strcmp(mode, "vfork")) {
    /* The parent waits for a vfork child that never execs: uninterruptible (D) until it does. */
    if (vfork() == 0) {
      char b[32];
      snprintf(b, sizeof b, "ready %d\n", getpid());
      say(b);
      for (;;) pause();
    }
    for (;;) pause();
  }
  say("ready\n");
  for (;;) pause();
}
`;

let fakeBin: string | null = null;
let removeFake = () => {};
test.after.always(() => removeFake());
/** The C program above, compiled once to <dir>/stemedb-fake (comm "stemedb-fake"). */
test.before(() => {
  if (!hasCommand("gcc")) return;
  const { dir, cleanup } = tempDir("sa-proc-");
  removeFake = cleanup;
  chmodSync(dir, 0o755); // another user runs it too
  fakeBin = compileC(dir, "stemedb-fake", FAKE_C);
});
const fake = (_t: ExecutionContext): string | null => fakeBin;

/** Starts the fake in a mode; resolves with the process and its first line once it printed it. */
async function run(
  t: ExecutionContext,
  args: string[],
  wrap: string[] = [],
): Promise<{ child: ChildProcess; pid: number; line: string; next: () => Promise<string> }> {
  const bin = fake(t);
  if (!bin) throw new Error("no gcc");
  const cmd = [...wrap, bin, ...args];
  const child = spawn(cmd[0] as string, cmd.slice(1), { stdio: ["pipe", "pipe", "inherit"] });
  t.teardown(() => {
    child.kill("SIGKILL");
  });
  const lines: string[] = [];
  const waiting: Array<(l: string) => void> = [];
  let buf = "";
  child.stdout?.on("data", (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiting.shift();
      if (w) w(l);
      else lines.push(l);
    }
  });
  const next = () =>
    new Promise<string>((resolve, reject) => {
      const l = lines.shift();
      if (l !== undefined) return resolve(l);
      waiting.push(resolve);
      child.once("exit", (code) => reject(new Error(`${cmd.join(" ")} exited ${code}`)));
    });
  const line = await next();
  return { child, pid: child.pid as number, line, next };
}

function collector() {
  const registry = new Registry();
  const r = routed(
    processSinks(registry),
    null,
    () => new ProcessCollector({ procPath: "/proc", isDatabase: isStemedbDatabase }),
  );
  return { ...r, registry };
}

const mine = (o: ProcessObservation, pid: number) => o.processes.find((p) => p.pid === pid);

async function counterValue(registry: Registry, mode: string): Promise<number> {
  const m = await registry.getSingleMetric("stemedb_agent_db_process_cpu_seconds_total")?.get();
  return m?.values.find((v) => v.labels["mode"] === mode)?.value ?? NaN;
}

test.serial(
  "a real stemedb process burning 0.5 s of CPU between two samples shows 0.5 CPU seconds; " +
    "the counter keeps them after it exits",
  async (t) => {
    if (!fake(t)) return t.pass("skipped: needs gcc");
    const { once, registry } = collector();
    const p = await run(t, ["burn", "500"]);
    const a = await once();
    t.truthy(mine(a, p.pid), "the stemedb-fake process is one of the database's");
    p.child.stdin?.write("x");
    t.is(await p.next(), "burned");
    const b = await once();
    const used =
      (b.group.cpu_seconds_interval?.user ?? 0) + (b.group.cpu_seconds_interval?.system ?? 0);
    // Ticks are 10 ms; anything else the group did in the interval is at most a few ticks. The
    // figures are ticks divided (and multiplied back) in floating point: 49 ticks may come back
    // as 0.48999999999999994, so each bound allows a rounding error far below a tick.
    const EPS = 1e-9;
    t.true(used >= 0.49 - EPS && used <= 0.56 + EPS, `${used} CPU s in the interval`);
    t.is(b.group.cpu_cores, used / (b.interval_seconds ?? NaN));
    const self = mine(b, p.pid);
    t.true((self?.cpu_cores ?? 0) * (b.interval_seconds ?? 0) >= 0.49 - EPS, JSON.stringify(self));
    const before =
      (await counterValue(registry, "user")) + (await counterValue(registry, "system"));
    t.true(before >= 0.49 - EPS, `counter ${before}`);
    p.child.kill("SIGKILL");
    await new Promise((r) => p.child.once("exit", r));
    const c = await once();
    t.is(mine(c, p.pid), undefined);
    const after = (await counterValue(registry, "user")) + (await counterValue(registry, "system"));
    t.true(after >= before, `${after} >= ${before}: the counter does not go back on exit`);
  },
);

test.serial(
  "memory, threads and descriptors of real processes, summed over the group",
  async (t) => {
    if (!fake(t)) return t.pass("skipped: needs gcc");
    const mem = await run(t, ["mem", "64"]);
    const thr = await run(t, ["threads", "7"]);
    const fds = await run(t, ["fds", "20"]);
    const { once } = collector();
    const o = await once();
    const m = mine(o, mem.pid);
    t.true(
      (m?.rss_bytes ?? 0) >= 64 * 2 ** 20 && (m?.rss_bytes ?? 0) < 72 * 2 ** 20,
      `${m?.rss_bytes} bytes resident after touching 64 MiB`,
    );
    t.is(mine(o, thr.pid)?.threads, 8);
    // What the process counted itself (fcntl on every number): 20 of /dev/null and what it inherited.
    const held = Number(/^ready (\d+)$/.exec(fds.line)?.[1]);
    t.true(held >= 23, fds.line);
    t.is(mine(o, fds.pid)?.open_fds, held);
    t.is(mine(o, fds.pid)?.comm, "stemedb-fake");
    t.true(o.group.count >= 3);
    t.true(o.group.rss_bytes >= o.processes.reduce((a, p) => a + p.rss_bytes, 0));
    t.true(o.group.threads >= 10);
    t.true(o.host.cpus >= 1);
    t.true(o.host.mem_available_bytes > 0 && o.host.mem_available_bytes <= o.host.mem_total_bytes);
  },
);

test.serial("a vfork parent waiting on its child is a thread in D", async (t) => {
  if (!fake(t)) return t.pass("skipped: needs gcc");
  const p = await run(t, ["vfork"]);
  const child = Number(/^ready (\d+)$/.exec(p.line)?.[1]);
  t.teardown(() => {
    try {
      process.kill(child, "SIGKILL");
    } catch {
      // already gone
    }
  });
  const { once } = collector();
  const o = await once();
  t.is(mine(o, p.pid)?.state, "D");
  t.is(mine(o, child)?.state, "S");
  t.true(o.group.threads_in_d >= 1);
  process.kill(child, "SIGKILL");
  await new Promise((r) => p.child.once("exit", r).kill("SIGKILL"));
  t.false(alive(p.pid));
});

test.serial(
  "stemedb processes exiting while the walk runs are skipped, never an error; the agent's own " +
    "comm (stemedb-agent) is not the database",
  async (t) => {
    const bin = fake(t);
    if (!bin) return t.pass("skipped: needs gcc");
    const churn = spawn("sh", ["-c", `while :; do "${bin}" exit; "${bin}" exit & done`], {
      stdio: "ignore",
      detached: true,
    });
    t.teardown(() => process.kill(-(churn.pid as number), "SIGKILL"));
    const { once } = collector();
    let seen = 0;
    for (let i = 0; i < 40; i++) {
      const o = await once();
      seen += o.processes.filter((p) => p.comm === "stemedb-fake").length;
      for (const p of o.processes) {
        t.true(p.rss_bytes >= 0 && p.threads >= 1);
        t.not(p.comm, "stemedb-agent");
      }
    }
    t.log(`${seen} short-lived stemedb-fake processes caught mid-life in 40 walks`);
    t.false(isStemedbDatabase("stemedb-agent"));
  },
);

test.serial(
  "a prepared procfs: half-gone processes are skipped; a broken /proc/stat is a clear error",
  async (t) => {
    const { dir: proc, cleanup } = tempDir("sa-proc-tree-");
    t.teardown(cleanup);
    const write = (f: string, text: string) => {
      mkdirSync(join(proc, f, ".."), { recursive: true });
      writeFileSync(join(proc, f), text);
    };
    write("stat", "cpu  100 0 50 800 50 0 0 0\ncpu0 100 0 50 800 50 0 0 0\n");
    write("meminfo", "MemTotal: 1000 kB\nMemAvailable: 500 kB\n");
    write("uptime", "1000.00 900.00\n");
    const stat = (pid: number, state: string, threads: number) =>
      `${pid} (stemedb) ${state} 1 ${pid} ${pid} 0 -1 0 0 0 0 0 250 50 0 0 20 0 ${threads} 0 5000 0 0\n`;
    // 10: whole; 11: comm only (exited after the listing); 12: no status; 13: descriptors unlistable.
    write("10/comm", "stemedb\n");
    write("10/stat", stat(10, "S", 2));
    write("10/status", "VmRSS:\t2048 kB\nThreads:\t2\n");
    write("10/cgroup", "0::/system.slice/stemedb.service\n");
    mkdirSync(join(proc, "10/fd"));
    writeFileSync(join(proc, "10/fd/0"), "");
    write("10/task/10/stat", stat(10, "S", 2));
    write("10/task/15/stat", stat(15, "D", 2));
    write("11/comm", "stemedb\n");
    write("12/comm", "stemedb\n");
    write("12/stat", stat(12, "S", 1));
    write("13/comm", "stemedb\n");
    write("13/stat", stat(13, "R", 1));
    write("13/status", "VmRSS:\t1024 kB\nThreads:\t1\n");
    write("13/fd", ""); // not a directory: exists, but cannot be listed
    write("14/comm", "postgres\n");
    const col = new ProcessCollector({ procPath: proc, isDatabase: isStemedbDatabase });
    t.is(col.clockTicks, 100, "no auxv in a captured tree: Linux's USER_HZ");
    const o = await col.collect({ signal: new AbortController().signal });
    t.deepEqual(
      o.processes.map((p) => [p.pid, p.unit, p.open_fds, p.threads, p.rss_bytes]),
      [
        [10, "stemedb.service", 1, 2, 2048 * 1024],
        [13, null, null, 1, 1024 * 1024],
      ],
    );
    t.like(o.group, { count: 2, threads: 3, threads_in_d: 1, cpu_seconds: { user: 5, system: 1 } });
    t.like(o.host, { cpus: 1, mem_available_bytes: 512_000, busy_ratio: null });
    write("stat", "intr 1 2 3\n");
    await t.throwsAsync(col.collect({ signal: new AbortController().signal }), {
      message: /sa-proc-tree-.*\/stat: no "cpu " line/,
    });
  },
);

test.serial(
  "a pid classified as something else is not read again once old, but a young one is (it may " +
    "still exec into the database) and every pid is classified afresh each minute",
  async (t) => {
    const { dir: proc, cleanup } = tempDir("sa-proc-tree-");
    t.teardown(cleanup);
    const write = (f: string, text: string) => {
      mkdirSync(join(proc, f, ".."), { recursive: true });
      writeFileSync(join(proc, f), text);
    };
    write("stat", "cpu  100 0 50 800 50 0 0 0\ncpu0 100 0 50 800 50 0 0 0\n");
    write("meminfo", "MemTotal: 1000 kB\nMemAvailable: 500 kB\n");
    const stat = (pid: number, comm: string, started: number) =>
      `${pid} (${comm}) S 1 ${pid} ${pid} 0 -1 0 0 0 0 0 10 0 0 0 20 0 1 0 ${started * 100} 0 0\n`;
    const at = (uptime: number) => write("uptime", `${uptime}.00 0.00\n`);
    const col = new ProcessCollector({ procPath: proc, isDatabase: isStemedbDatabase });
    const pids = async () => {
      const o = await col.collect({ signal: new AbortController().signal });
      return o.processes.map((p) => p.pid);
    };
    for (const pid of [20, 21]) write(`${pid}/status`, "VmRSS:\t4 kB\nThreads:\t1\n");
    mkdirSync(join(proc, "20/fd"));
    mkdirSync(join(proc, "21/fd"));
    // 20: a shell started long ago; 21: a fork two seconds old, not yet exec'd.
    at(1000);
    write("20/stat", stat(20, "bash", 10));
    write("21/stat", stat(21, "bash", 998));
    t.deepEqual(await pids(), []);
    // Both become stemedb (exec): the young one is read again and found, the old one is not.
    write("20/stat", stat(20, "stemedb", 10));
    write("21/stat", stat(21, "stemedb", 998));
    at(1005);
    t.deepEqual(await pids(), [21]);
    at(1030);
    t.deepEqual(await pids(), [21]);
    // A minute after the last full pass every pid is classified again.
    at(1061);
    t.deepEqual((await pids()).sort(), [20, 21]);
  },
);

// ------------------------------------------------------------------ another user, promtool

const USER = "sa-proc-test";

test.serial("a stemedb process of another real user is read in full by root", async (t) => {
  if (!isRoot || !hasCommand("useradd") || !hasCommand("setpriv") || !fake(t))
    return t.pass("skipped: needs root, useradd, setpriv and gcc");
  spawnSync("userdel", [USER]);
  execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER]);
  t.teardown(() => void spawnSync("userdel", [USER]));
  const uid = execFileSync("id", ["-u", USER], { encoding: "utf8" }).trim();
  const p = await run(
    t,
    ["fds", "4"],
    ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups"],
  );
  const { once } = collector();
  const o = await once();
  const held = Number(/^ready (\d+)$/.exec(p.line)?.[1]);
  t.true(held >= 7, p.line);
  t.like(mine(o, p.pid), { comm: "stemedb-fake", open_fds: held, threads: 1 });
  t.true((mine(o, p.pid)?.rss_bytes ?? 0) > 0);
});

test.serial("the metrics pass promtool check metrics", async (t) => {
  if (!hasCommand("promtool")) return t.pass("skipped: promtool not installed");
  if (!fake(t)) return t.pass("skipped: needs gcc");
  await run(t, ["threads", "2"]);
  const { once, registry } = collector();
  await once();
  await new Promise((r) => setTimeout(r, 200));
  await once();
  const text = await registry.metrics();
  for (const name of [
    'stemedb_agent_db_process_cpu_seconds_total{mode="user"}',
    'stemedb_agent_db_process_cpu_seconds_total{mode="system"}',
    "stemedb_agent_db_process_resident_memory_bytes",
    "stemedb_agent_db_processes",
    "stemedb_agent_db_process_threads",
    "stemedb_agent_db_process_uninterruptible_threads",
    "stemedb_agent_db_process_open_fds",
    "stemedb_agent_host_cpus",
    "stemedb_agent_host_cpu_busy_ratio",
    "stemedb_agent_host_cpu_iowait_ratio",
    "stemedb_agent_host_memory_available_bytes",
  ])
    t.true(text.includes(`\n${name} `), name);
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  t.is(r.status, 0, `${r.stdout}${r.stderr}`);
  t.is(`${r.stdout}${r.stderr}`.trim(), "");
});
