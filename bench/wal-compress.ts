// WAL compression throughput next to gzip at the same level on the same files, and the
// agent's event-loop lag while it runs (compression happens in a worker thread, as in the
// agent). Usage: node dist/bench/wal-compress.js [files] [MiB each]
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { resolveDir } from "../core/safefs.js";
import type { CompressJob } from "../remediators/wal_compress/worker.js";

const files = Number(process.argv[2] ?? 12);
const mib = Number(process.argv[3] ?? 8);
const level = 6;
const root = mkdtempSync(join(tmpdir(), "bench-walc-"));
const a = join(root, "agent");
const g = join(root, "gzip");
mkdirSync(a);
mkdirSync(g);
let total = 0;
for (let i = 1; i <= files; i++) {
  // A WAL-like mix: one third incompressible, one third repetitive, one third text.
  const third = Math.floor((mib * 1024 * 1024) / 3);
  const text = Buffer.from(
    `INSERT INTO t VALUES (${i}, 'row payload ${"y".repeat(48)}');\n`.repeat(Math.ceil(third / 60)),
  ).subarray(0, third);
  const buf = Buffer.concat([randomBytes(third), Buffer.alloc(third, i % 11), text]);
  writeFileSync(join(a, `segment.${i}.wal`), buf);
  copyFileSync(join(a, `segment.${i}.wal`), join(g, `segment.${i}.wal`));
  total += buf.length;
}
execFileSync("sync");

// As the agent runs it: through the directory resolved once, every safety check included
// (descriptor-relative names, fstat comparison, the holder scan of /proc before each unlink).
const dir = resolveDir(a);
const lag = monitorEventLoopDelay({ resolution: 5 });
const worker = new Worker(new URL("../remediators/wal_compress/worker.js", import.meta.url));
lag.enable();
const t0 = performance.now();
for (let i = 1; i <= files; i++) {
  await new Promise<void>((resolve, reject) => {
    const onMsg = (m: { step?: string; result?: unknown; error?: string }) => {
      if (m.step) return;
      worker.off("message", onMsg);
      if (m.error) reject(new Error(m.error));
      else resolve();
    };
    worker.on("message", onMsg);
    const st = statSync(join(a, `segment.${i}.wal`));
    const job: CompressJob = {
      dir,
      name: `segment.${i}.wal`,
      listed: st,
      options: { level, bytesPerSecond: 0, maxRatio: 1, reserve: 0 },
    };
    worker.postMessage(job);
  });
}
const agentSecs = (performance.now() - t0) / 1000;
lag.disable();
await worker.terminate();
const g0 = performance.now();
for (let i = 1; i <= files; i++)
  execFileSync("sh", ["-c", `gzip -${level} '${join(g, `segment.${i}.wal`)}' && sync -f '${g}'`]);
const gzipSecs = (performance.now() - g0) / 1000;
const size = (d: string) =>
  Array.from({ length: files }, (_, i) => statSync(join(d, `segment.${i + 1}.wal.gz`)).size).reduce(
    (x, y) => x + y,
    0,
  );
const late = (ns: number) => Number(Math.max(0, ns / 1e6 - 5).toFixed(2));
const result = {
  bench: "wal-compress",
  files,
  mib_each: mib,
  level,
  agent_mb_per_second: Number((total / 1e6 / agentSecs).toFixed(1)),
  gzip_mb_per_second: Number((total / 1e6 / gzipSecs).toFixed(1)),
  ratio_to_gzip: Number((gzipSecs / agentSecs).toFixed(2)),
  agent_output_ratio: Number((size(a) / total).toFixed(3)),
  gzip_output_ratio: Number((size(g) / total).toFixed(3)),
  // Node records the whole interval between its 5 ms timer runs: the lag is what exceeds it.
  event_loop_lag_ms: {
    p50: late(lag.percentile(50)),
    p99: late(lag.percentile(99)),
    max: late(lag.max),
  },
};
console.log(
  `WAL compression, ${files} x ${mib} MiB, level ${level}: agent ${result.agent_mb_per_second} MB/s ` +
    `(every file fsynced, verified by decompression and sha256, renamed, ` +
    `dir fsynced) vs gzip -${level} ${result.gzip_mb_per_second} MB/s (with sync) = ` +
    `${result.ratio_to_gzip}x; output ${result.agent_output_ratio} vs ${result.gzip_output_ratio} of ` +
    `input; event-loop lag during compression p50 ${result.event_loop_lag_ms.p50} ms, ` +
    `p99 ${result.event_loop_lag_ms.p99} ms, max ${result.event_loop_lag_ms.max} ms`,
);
console.log(JSON.stringify(result));
rmSync(root, { recursive: true, force: true });
