// The active WAL write test (agentctl diagnose --active) next to the runbook's own command, `dd
// if=/dev/zero of=… bs=1M count=N oflag=direct`, on the same filesystem in the same run,
// alternating so neither always goes first; and the event loop's delay while the worker writes.
// Usage: node dist/bench/write-test.js [MiB] [rounds] [dir on the filesystem to measure]
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { runWriteTestWorker } from "../agent/status/write-test.js";
import { round } from "./lib.js";

const mib = Number(process.argv[2] ?? 256);
const rounds = Number(process.argv[3] ?? 3);
const root = mkdtempSync(join(process.argv[4] ?? "/var/tmp", "bench-wt-"));
const wal = join(root, "wal");
mkdirSync(wal);

function dd(): number {
  const f = join(root, "dd-test.dat");
  const r = spawnSync("dd", ["if=/dev/zero", `of=${f}`, "bs=1M", `count=${mib}`, "oflag=direct"], {
    encoding: "utf8",
  });
  rmSync(f, { force: true });
  // "268435456 bytes (268 MB, 256 MiB) copied, 0.31 s, 866 MB/s": bytes over seconds.
  const m = /^(\d+) bytes .* copied, ([\d.]+) s/m.exec(r.stderr);
  if (!m) throw new Error(`dd: ${r.stderr}`);
  return Number(m[1]) / Number(m[2]) / 1e6;
}

const agent: number[] = [];
const ref: number[] = [];
const p99: number[] = [];
let lagMax = 0;
try {
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 1) ref.push(dd());
    // A histogram per run: one kept across the rounds would count dd's blocking spawnSync too.
    const lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    const r = await runWriteTestWorker({
      walDir: wal,
      stateDir: "/nonexistent",
      dir: "",
      size: mib * 1024 * 1024,
      deadlineMs: 120_000,
    });
    lag.disable();
    lagMax = Math.max(lagMax, lag.max);
    if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
    agent.push(r.bytes / r.seconds / 1e6);
    p99.push(r.p99_seconds * 1000);
    if (i % 2 === 0) ref.push(dd());
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
console.log(
  JSON.stringify({
    bench: "write-test",
    mib,
    rounds,
    agent_mb_per_second: agent.map((v) => round(v, 0)),
    dd_mb_per_second: ref.map((v) => round(v, 0)),
    agent_median: round(median(agent), 0),
    dd_median: round(median(ref), 0),
    agent_p99_write_ms: p99.map((v) => round(v, 2)),
    event_loop_delay_max_ms: round(lagMax / 1e6, 1),
  }),
);
