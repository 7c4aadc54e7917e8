// What taking the emergency ballast costs the WAL: an fsync probe's p99 (4 KiB pwrite + fdatasync
// every 20 ms, in a worker thread, as the agent's own probe but 250 times as often) on ext4 and on
// xfs loop filesystems, while idle, while the ballast is taken the agent's way (fallocate in 64 MiB
// steps a second apart at idle priority, remediators/ballast/file.ts), during one fallocate of the
// whole size, and during a dd of zeros of the same size (what a ballast written rather than
// reserved would cost). Rounds alternate nothing: each round runs the four phases in order, with
// the page cache dropped and the filesystem synced between them; medians of the rounds' p99s.
// Usage (root): node dist/bench/ballast.js [MiB, default 1024] [rounds, default 3] [dir for the
// loop images, default /var/tmp]
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { fdatasyncSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { DirHandle } from "../core/safefs.js";
import { createBallast, release, reserve } from "../remediators/ballast/file.js";
import { STEP_BYTES, STEP_PAUSE_MS } from "../remediators/ballast/plan.js";
import { percentile, round, sleep } from "./lib.js";

const PROBE_EVERY_MS = 20;
/** Each phase is measured from its start to its end plus this (a journal commit comes after). */
const TAIL_MS = 2000;
const MIN_WINDOW_MS = 5000;

// ---------------------------------------------------------------- the probe (worker thread)

interface ProbeMsg {
  readonly t: number;
  readonly ms: number;
}

if (!isMainThread) {
  const fd = openSync(workerData as string, "w");
  const block = Buffer.alloc(4096, 7);
  const batch: ProbeMsg[] = [];
  let last = performance.now();
  for (;;) {
    const t0 = performance.now();
    writeSync(fd, block, 0, block.length, 0);
    fdatasyncSync(fd);
    const t1 = performance.now();
    batch.push({ t: performance.timeOrigin + t0, ms: t1 - t0 });
    if (t1 - last > 200) {
      parentPort?.postMessage(batch.splice(0));
      last = t1;
    }
    const wait = PROBE_EVERY_MS - (performance.now() - t0);
    if (wait > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, wait);
  }
}

// ---------------------------------------------------------------- the phases

function loopFs(root: string, fs: "ext4" | "xfs", mib: number): { mnt: string; cleanup(): void } {
  const image = join(root, `${fs}.img`);
  const mnt = join(root, `${fs}-mnt`);
  mkdirSync(mnt);
  execFileSync("truncate", ["-s", `${mib}M`, image]);
  const dev = execFileSync("losetup", ["--find", "--show", image], { encoding: "utf8" }).trim();
  const args =
    fs === "ext4"
      ? ["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", dev]
      : ["-q", "-f", dev];
  execFileSync(`mkfs.${fs}`, args, { stdio: "ignore" });
  execFileSync("mount", [dev, mnt]);
  return {
    mnt,
    cleanup() {
      spawnSync("umount", [mnt]);
      spawnSync("losetup", ["-d", dev]);
    },
  };
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: "ignore" });
    c.on("error", reject);
    c.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(" ")}: exit ${code}`)),
    );
  });
}

/** The agent's way: the file created, then reserved in steps a second apart at idle priority. */
async function agentWay(dir: string, bytes: number): Promise<void> {
  const d = DirHandle.open(dir);
  const f = createBallast(d);
  try {
    for (let off = 0; off < bytes; off += STEP_BYTES) {
      if (off > 0) await sleep(STEP_PAUSE_MS);
      await reserve(f, off, Math.min(STEP_BYTES, bytes - off));
    }
  } finally {
    await release(d, f);
    d.close();
  }
}

async function settle(mnt: string): Promise<void> {
  spawnSync("sync", ["-f", mnt]);
  spawnSync("sh", ["-c", "echo 1 > /proc/sys/vm/drop_caches"]);
  await sleep(1000);
}

const samples: ProbeMsg[] = [];

/** The probe's p99 (ms) from `from` to the op's end plus TAIL_MS (at least MIN_WINDOW_MS). */
async function measure(op: () => Promise<void>): Promise<{ p99: number; n: number; s: number }> {
  const from = Date.now();
  await op();
  const opMs = Date.now() - from;
  await sleep(Math.max(TAIL_MS, MIN_WINDOW_MS - opMs) + 300);
  const to = from + Math.max(opMs + TAIL_MS, MIN_WINDOW_MS);
  const xs = samples.filter((x) => x.t >= from && x.t <= to).map((x) => x.ms);
  return { p99: percentile(xs, 99), n: xs.length, s: opMs / 1000 };
}

if (isMainThread) {
  const mib = Number(process.argv[2] ?? 1024);
  const rounds = Number(process.argv[3] ?? 3);
  const root = mkdtempSync(join(process.argv[4] ?? "/var/tmp", "bench-ballast-"));
  const bytes = mib * 1024 * 1024;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const out: Record<string, unknown> = {};
  try {
    for (const fs of ["ext4", "xfs"] as const) {
      const lfs = loopFs(root, fs, mib * 3 + 1024);
      const probe = new Worker(new URL(import.meta.url), { workerData: join(lfs.mnt, "probe") });
      probe.on("message", (b: ProbeMsg[]) => samples.push(...b));
      const place = join(lfs.mnt, "ballast");
      mkdirSync(place, { mode: 0o700 });
      const phases: Record<string, number[]> = { idle: [], agent: [], fallocate: [], dd: [] };
      const seconds: Record<string, number[]> = { agent: [], fallocate: [], dd: [] };
      try {
        await sleep(1000);
        for (let r = 0; r < rounds; r++) {
          await settle(lfs.mnt);
          phases["idle"]?.push((await measure(() => sleep(MIN_WINDOW_MS))).p99);
          await settle(lfs.mnt);
          const a = await measure(() => agentWay(place, bytes));
          phases["agent"]?.push(a.p99);
          seconds["agent"]?.push(a.s);
          await settle(lfs.mnt);
          const file = join(lfs.mnt, "one-shot");
          const f = await measure(() => run("fallocate", ["-l", String(bytes), file]));
          phases["fallocate"]?.push(f.p99);
          seconds["fallocate"]?.push(f.s);
          rmSync(file);
          await settle(lfs.mnt);
          const zeros = join(lfs.mnt, "zeros");
          const z = await measure(() =>
            run("dd", ["if=/dev/zero", `of=${zeros}`, "bs=1M", `count=${mib}`, "conv=fsync"]),
          );
          phases["dd"]?.push(z.p99);
          seconds["dd"]?.push(z.s);
          rmSync(zeros);
          process.stdout.write(
            `${fs} round ${r + 1}: fsync p99 idle ${round(phases["idle"]?.at(-1) ?? 0, 2)} ms, ` +
              `agent's way ${round(a.p99, 2)} ms (${round(a.s, 1)} s), one fallocate ` +
              `${round(f.p99, 2)} ms, dd zeros ${round(z.p99, 2)} ms (${round(z.s, 1)} s)\n`,
          );
        }
      } finally {
        await probe.terminate();
        lfs.cleanup();
        samples.length = 0;
      }
      out[fs] = {
        fsync_p99_ms_median: Object.fromEntries(
          Object.entries(phases).map(([k, v]) => [k, round(median(v), 2)]),
        ),
        fsync_p99_ms: Object.fromEntries(
          Object.entries(phases).map(([k, v]) => [k, v.map((x) => round(x, 2))]),
        ),
        seconds_median: Object.fromEntries(
          Object.entries(seconds).map(([k, v]) => [k, round(median(v), 1)]),
        ),
      };
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  console.log(JSON.stringify({ bench: "ballast", mib, rounds, ...out }));
}
