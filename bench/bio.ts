// The eBPF bio tier, measured. Accuracy: fio with a known mix of request sizes (4 KiB, 64 KiB
// and 1 MiB, random, O_DIRECT) on a loop device backed by a file on this machine's disk: the
// agent's histogram p50/p99/p99.9 (interpolated in its buckets, as histogram_quantile does)
// against fio's own completion-latency percentiles of the same run, with the p99 of one-second
// diskstats averages beside them (what the diskstats tier can say). Overhead: fio at a fixed
// 10k and 100k IOPS on a loop device over tmpfs, the whole machine's CPU with nothing tracing,
// with the agent's tier on, with it off, and with a standalone bpftrace biolatency; CPU per
// I/O is the difference from nothing tracing, divided by the I/Os done (noisy on a VM: a
// microsecond per I/O is inside it), and, exactly, the kernel time of the tracer's BPF programs
// (kernel.bpf_stats_enabled) and its processes' CPU per I/O. Idle: the agent's own
// CPU (with its bpftrace child) with the tier on and off.
// Overhead is the median of --rounds interleaved rounds after a warm-up run.
// Usage: node dist/bench/bio.js [--accuracy-seconds 30] [--load-seconds 15] [--idle-seconds 60]
//        [--rounds 3]
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { numberArg, procSample, round, sleep, startAgent, type RunningAgent } from "./lib.js";

const ACCURACY_S = numberArg("accuracy-seconds", 30);
const LOAD_S = numberArg("load-seconds", 15);
const IDLE_S = numberArg("idle-seconds", 60);
/** Overhead rounds per rate (medians are quoted), after one warm-up run. */
const ROUNDS = numberArg("rounds", 3);
/**
 * The reference: biolatency as a standalone bpftrace program, in the tracepoint form bpftrace
 * upstream uses on kernels from 6.4 (block_io_start to block_io_done, keyed by device and
 * sector, one log2 histogram). Debian's /usr/sbin/biolatency.bt (0.17) attaches kprobes to
 * blk_account_io_start/done, which 6.4 inlined away: on this kernel it attaches nothing and
 * measures nothing, so it cannot be the comparison.
 */
const REFERENCE = [
  "tracepoint:block:block_io_start { @start[args->dev, args->sector] = nsecs; }",
  "tracepoint:block:block_io_done /@start[args->dev, args->sector]/ {",
  "  @usecs = hist((nsecs - @start[args->dev, args->sector]) / 1000);",
  "  delete(@start[args->dev, args->sector]);",
  "}",
  // Not printed at exit: 0.17 can hang printing a map whose keys are deleted under it.
  "END { clear(@start); }",
].join("\n");
const REFERENCE_NAME = "bpftrace biolatency";
const BPFTRACE = "/usr/bin/bpftrace";
const TICKS = 100;

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr || r.error}`);
  return r.stdout.trim();
}

const skip = (why: string): never => {
  console.log(`bio bench skipped: ${why}`);
  console.log(JSON.stringify({ bench: "bio", skipped: why }));
  process.exit(0);
};
if (process.getuid?.() !== 0) skip("needs root (loop devices, bpftrace)");
for (const bin of [BPFTRACE, "/usr/bin/fio"]) if (!existsSync(bin)) skip(`${bin} is missing`);
if (!existsSync("/sys/kernel/tracing/events/block"))
  spawnSync("mount", ["-t", "tracefs", "nodev", "/sys/kernel/tracing"]);
if (!existsSync("/sys/kernel/tracing/events/block")) skip("no tracefs block events");

// --- devices ------------------------------------------------------------------------------------
const cleanups: Array<() => void> = [];
function loop(backing: string, sizeMiB: number, directIo: boolean): string {
  sh("truncate", ["-s", `${sizeMiB}M`, backing]);
  const dev = sh("losetup", ["--find", "--show", ...(directIo ? ["--direct-io=on"] : []), backing]);
  cleanups.unshift(() => {
    spawnSync("losetup", ["-d", dev]);
    rmSync(backing, { force: true });
  });
  return dev;
}
process.on("exit", () => {
  for (const c of cleanups) c();
});
for (const s of ["SIGINT", "SIGTERM"] as const) process.on(s, () => process.exit(130));

// --- fio ----------------------------------------------------------------------------------------
interface FioOp {
  readonly ios: number;
  /** Completion latency percentiles in seconds, by fio's own percentile label ("99.900000"). */
  readonly clat: Record<string, number>;
}
/** fio in a child, asynchronously: the diskstats sampler's timer must keep firing meanwhile. */
async function fio(args: string[]): Promise<{ read: FioOp; write: FioOp }> {
  const child = spawn(
    "fio",
    [
      "--output-format=json",
      "--percentile_list=50:99:99.9",
      "--direct=1",
      "--time_based",
      "--group_reporting",
      ...args,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.once("close", r));
  if (code !== 0) throw new Error(`fio ${args.join(" ")}: exit ${code}`);
  const job = (JSON.parse(out.slice(out.indexOf("{"))) as { jobs: Array<Record<string, FioRaw>> })
    .jobs[0];
  const op = (o: FioRaw | undefined): FioOp => ({
    ios: o?.total_ios ?? 0,
    clat: Object.fromEntries(
      Object.entries(o?.clat_ns?.percentile ?? {}).map(([k, v]) => [k, v / 1e9]),
    ),
  });
  return { read: op(job?.["read"]), write: op(job?.["write"]) };
}
interface FioRaw {
  total_ios: number;
  clat_ns?: { percentile?: Record<string, number> };
}

// --- the agent's histogram ----------------------------------------------------------------------
async function scrape(port: number): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  return r.text();
}
/** Cumulative bucket counts by upper bound for one device and op, summed over sync labels. */
function buckets(text: string, device: string, op: string): Map<number, number> {
  const out = new Map<number, number>();
  const re = /^stemedb_agent_bio_latency_seconds_bucket\{([^}]*)\} (\S+)$/gm;
  for (const m of text.matchAll(re)) {
    const labels = new Map(
      [...(m[1] as string).matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]] as const),
    );
    if (labels.get("device") !== device || labels.get("op") !== op) continue;
    const le = labels.get("le") === "+Inf" ? Infinity : Number(labels.get("le"));
    out.set(le, (out.get(le) ?? 0) + Number(m[2]));
  }
  return out;
}
/** histogram_quantile's interpolation over the difference of two scrapes. */
function quantile(q: number, before: Map<number, number>, after: Map<number, number>): number {
  const les = [...after.keys()].sort((a, b) => a - b);
  const counts = les.map((le) => (after.get(le) ?? 0) - (before.get(le) ?? 0));
  const total = counts.at(-1) ?? 0;
  if (total === 0) return NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (let i = 0; i < les.length; i++) {
    const le = les[i] as number;
    const c = counts[i] as number;
    if (c >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(1e-12, c - prevCount);
    }
    prevLe = le;
    prevCount = c;
  }
  return NaN;
}

// --- diskstats one-second averages --------------------------------------------------------------
function diskstats(name: string): { r: number; rms: number; w: number; wms: number } | null {
  for (const line of readFileSync("/proc/diskstats", "utf8").split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[2] === name)
      return { r: Number(f[3]), rms: Number(f[6]), w: Number(f[7]), wms: Number(f[10]) };
  }
  return null;
}
function sampleAverages(name: string): { stop(): { read: number[]; write: number[] } } {
  const read: number[] = [];
  const write: number[] = [];
  let last = diskstats(name);
  const t = setInterval(() => {
    const now = diskstats(name);
    if (now && last) {
      if (now.r > last.r) read.push((now.rms - last.rms) / (now.r - last.r) / 1000);
      if (now.w > last.w) write.push((now.wms - last.wms) / (now.w - last.w) / 1000);
    }
    last = now;
  }, 1000);
  return {
    stop() {
      clearInterval(t);
      return { read, write };
    },
  };
}
const p99 = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)] ?? NaN);
};

// --- CPU ----------------------------------------------------------------------------------------
/** Busy seconds of the whole machine (all CPUs; idle and iowait excluded). */
function machineBusy(): number {
  const f = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").split(/\s+/).slice(1);
  const v = f.map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - (v[3] ?? 0) - (v[4] ?? 0)) / TICKS;
}
/** A process and every descendant still alive (the agent's bpftrace), parents first. */
function tree(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    if (out.includes(p)) return;
    out.push(p);
    try {
      for (const t of readdirSync(`/proc/${p}/task`))
        for (const c of readFileSync(`/proc/${p}/task/${t}/children`, "utf8").split(/\s+/))
          if (c) walk(Number(c));
    } catch {
      // exited
    }
  };
  walk(pid);
  return out;
}

/** utime+stime of a process and every descendant still alive. */
function treeCpu(pid: number): number {
  let cpu = 0;
  for (const p of tree(pid)) {
    try {
      cpu += procSample(p).cpu;
    } catch {
      // exited
    }
  }
  return cpu;
}

/** The processes under `pid` (itself included) whose name is `comm`. */
function descendants(pid: number, comm: string): number[] {
  return tree(pid).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, "utf8").trim() === comm;
    } catch {
      return false; // exited
    }
  });
}

/**
 * Kernel time spent in the BPF programs `pids` hold open, and how often they ran
 * (run_time_ns and run_cnt in each program descriptor's fdinfo, counted while
 * kernel.bpf_stats_enabled is 1): the tracer's in-kernel cost, which the whole machine's
 * CPU is too noisy to show at a microsecond per I/O.
 */
function bpfProgTime(pids: readonly number[]): { ns: number; runs: number } {
  let ns = 0;
  let runs = 0;
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== "anon_inode:bpf-prog") continue;
        const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
        ns += Number(/^run_time_ns:\s+(\d+)/m.exec(info)?.[1] ?? 0);
        runs += Number(/^run_cnt:\s+(\d+)/m.exec(info)?.[1] ?? 0);
      } catch {
        // closed meanwhile
      }
    }
  }
  return { ns, runs };
}

const BPF_STATS = "/proc/sys/kernel/bpf_stats_enabled";
const bpfStatsWas = existsSync(BPF_STATS) ? readFileSync(BPF_STATS, "utf8").trim() : null;
if (bpfStatsWas !== null) {
  writeFileSync(BPF_STATS, "1");
  process.on("exit", () => writeFileSync(BPF_STATS, bpfStatsWas));
}

async function agentWith(bio: boolean): Promise<RunningAgent> {
  // Only what the comparison needs: the tier (or not), and diskstats for the loop devices.
  const a = await startAgent(
    "bench-bio-",
    `[collectors.bio]\nenabled = ${bio}\n[collectors.diskstats]\nexclude = "^(ram|zram)\\\\d+$"\n`,
  );
  if (bio) {
    const t0 = Date.now();
    while (Date.now() - t0 < 30_000) {
      if (/^stemedb_agent_bio_ebpf_active 1$/m.test(await scrape(a.port))) return a;
      await sleep(500);
    }
    await a.stop();
    throw new Error("the agent's bio tier did not become active within 30 s");
  }
  return a;
}

function standalone(): ChildProcess {
  return spawn(BPFTRACE, ["-e", REFERENCE], { stdio: ["ignore", "ignore", "ignore"] });
}
async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null) return;
  const done = new Promise((r) => c.once("exit", r));
  c.kill("SIGINT");
  const t = setTimeout(() => c.kill("SIGKILL"), 5_000);
  await done;
  clearTimeout(t);
}

// --- accuracy -----------------------------------------------------------------------------------
async function accuracy() {
  const dir = "/var/tmp";
  const dev = loop(join(dir, `bench-bio-acc-${process.pid}.img`), 2048, true);
  const name = dev.replace("/dev/", "");
  spawnSync("dd", [`if=/dev/zero`, `of=${dev}`, "bs=1M", "count=2048", "oflag=direct"]);
  const a = await agentWith(true);
  try {
    await sleep(2000);
    const before = await scrape(a.port);
    const avg = sampleAverages(name);
    const f = await fio([
      "--name=mix",
      `--filename=${dev}`,
      "--rw=randrw",
      "--rwmixread=70",
      "--bssplit=4k/80:64k/15:1m/5",
      "--ioengine=psync",
      `--runtime=${ACCURACY_S}`,
    ]);
    const averages = avg.stop();
    await sleep(2500); // two of the agent's reads
    const after = await scrape(a.port);
    const rows = (["read", "write"] as const).map((op) => {
      const b0 = buckets(before, name, op);
      const b1 = buckets(after, name, op);
      const counted = (b1.get(Infinity) ?? 0) - (b0.get(Infinity) ?? 0);
      const fo = f[op];
      const ms = (s: number | undefined) => round((s ?? NaN) * 1000, 3);
      return {
        op,
        fio_ios: fo.ios,
        agent_ios: counted,
        fio_p50_ms: ms(fo.clat["50.000000"]),
        agent_p50_ms: ms(quantile(0.5, b0, b1)),
        fio_p99_ms: ms(fo.clat["99.000000"]),
        agent_p99_ms: ms(quantile(0.99, b0, b1)),
        fio_p999_ms: ms(fo.clat["99.900000"]),
        agent_p999_ms: ms(quantile(0.999, b0, b1)),
        diskstats_1s_avg_p99_ms: ms(p99(averages[op])),
      };
    });
    // Series cost: the tier's families for this busy disk (reads and writes, sync and not), and
    // those that do not grow with disks (units, counters of the tier itself).
    const series = after.split("\n").filter((l) => l.startsWith("stemedb_agent_bio_"));
    const perDisk = series.filter((l) => l.includes(`device="${name}"`)).length;
    const perNode = series.filter((l) => !l.includes("device=")).length;
    return {
      device: "loop (direct I/O) on this machine's disk",
      rows,
      series: { perDisk, perNode },
    };
  } finally {
    await a.stop();
  }
}

// --- overhead -----------------------------------------------------------------------------------
type Tracer = "none" | "agent tier off" | "agent tier on" | typeof REFERENCE_NAME;
async function overheadAt(dev: string, iops: number, tracer: Tracer) {
  let agent: RunningAgent | null = null;
  let child: ChildProcess | null = null;
  if (tracer === "agent tier on" || tracer === "agent tier off")
    agent = await agentWith(tracer === "agent tier on");
  if (tracer === REFERENCE_NAME) {
    child = standalone();
    await sleep(3000); // attached
  }
  await sleep(1000);
  const tracerPid = agent?.pid ?? child?.pid;
  const bpftraces = tracerPid ? descendants(tracerPid, "bpftrace") : [];
  const bpf0 = bpfProgTime(bpftraces);
  const busy0 = machineBusy();
  const own0 = tracerPid ? treeCpu(tracerPid) : 0;
  const f = await fio([
    "--name=load",
    `--filename=${dev}`,
    "--rw=randread",
    "--bs=4k",
    "--ioengine=libaio",
    "--iodepth=32",
    `--rate_iops=${iops}`,
    `--runtime=${LOAD_S}`,
  ]);
  const busy = machineBusy() - busy0;
  const own = (tracerPid ? treeCpu(tracerPid) : 0) - own0;
  const bpf1 = bpfProgTime(bpftraces);
  const bpf = { ns: bpf1.ns - bpf0.ns, runs: bpf1.runs - bpf0.runs };
  if (agent) await agent.stop();
  if (child) await stopChild(child);
  return { tracer, ios: f.read.ios, busy, own, bpf };
}
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

async function overhead() {
  const dev = loop(`/dev/shm/bench-bio-load-${process.pid}.img`, 1024, false);
  spawnSync("dd", [`if=/dev/zero`, `of=${dev}`, "bs=1M", "count=1024"]);
  const out = [];
  const tracers: Tracer[] = ["none", "agent tier off", "agent tier on", REFERENCE_NAME];
  for (const iops of [10_000, 100_000]) {
    await overheadAt(dev, iops, "none"); // warm-up: page cache, fio, the loop worker
    // Interleaved rounds, so a drift of the machine's load falls on every tracer alike.
    const runs = new Map<Tracer, Array<Awaited<ReturnType<typeof overheadAt>> & { extra: number }>>(
      tracers.map((t) => [t, []]),
    );
    for (let r = 0; r < ROUNDS; r++) {
      const inRound = [];
      for (const t of tracers) inRound.push(await overheadAt(dev, iops, t));
      const none = inRound[0] as (typeof inRound)[number];
      for (const x of inRound)
        runs.get(x.tracer)?.push({ ...x, extra: x === none ? 0 : (x.busy - none.busy) / x.ios });
    }
    for (const t of tracers) {
      const rs = runs.get(t) ?? [];
      out.push({
        target_iops: iops,
        tracer: t,
        achieved_iops: round(median(rs.map((x) => x.ios)) / LOAD_S, 0),
        machine_cpu_s: round(median(rs.map((x) => x.busy)), 2),
        extra_cpu_us_per_io: round(median(rs.map((x) => x.extra)) * 1e6, 2),
        extra_min_max_us: rs
          .map((x) => round(x.extra * 1e6, 2))
          .sort((a, b) => a - b)
          .join(" "),
        tracer_process_cpu_s: round(median(rs.map((x) => x.own)), 2),
        // The tracer's own cost per I/O: its BPF programs in the kernel, its processes in user
        // space (bpftrace, and the agent reading it).
        bpf_ns_per_io: round(median(rs.map((x) => x.bpf.ns / x.ios)), 0),
        bpf_runs_per_io: round(median(rs.map((x) => x.bpf.runs / x.ios)), 2),
        user_ns_per_io: round(median(rs.map((x) => (x.own / x.ios) * 1e9)), 0),
      });
    }
  }
  return out;
}

// --- idle ---------------------------------------------------------------------------------------
async function idle() {
  const out: Record<string, number> = {};
  for (const bio of [false, true]) {
    const a = await agentWith(bio);
    await sleep(5000);
    const c0 = treeCpu(a.pid);
    await sleep(IDLE_S * 1000);
    out[bio ? "tier_on_cpu_s_per_h" : "tier_off_cpu_s_per_h"] = round(
      ((treeCpu(a.pid) - c0) / IDLE_S) * 3600,
      1,
    );
    await a.stop();
  }
  return out;
}

const acc = await accuracy();
console.log(`accuracy (${ACCURACY_S} s of fio, ${acc.device}); latencies in ms:`);
console.table(acc.rows);
console.log(
  `series with the tier on: ${acc.series.perDisk} for this disk (read and write), ` +
    `${acc.series.perNode} not per disk`,
);
const load = await overhead();
console.log(
  `overhead (${LOAD_S} s per run, 4 KiB random reads, loop device over tmpfs; medians of ` +
    `${ROUNDS} rounds, extra CPU per I/O against no tracer in the same round):`,
);
console.table(load);
const idl = await idle();
console.log(`idle agent, CPU s/h with its bpftrace: ${JSON.stringify(idl)}`);
console.log(JSON.stringify({ bench: "bio", accuracy: acc, overhead: load, idle: idl }));
