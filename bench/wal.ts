// WAL inventory at scale: 100,000 segment files (default), full rescan time and memory,
// and the cheap tick between rescans. Usage: node dist/bench/wal.js [segments]
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { WalCollector } from "../collectors/wal/collector.js";
import { COLLECTOR_JUDGE } from "../judge/index.js";
import { usedHistory } from "../collectors/mounts/sink.js";

const n = Number(process.argv[2] ?? 100_000);
const root = mkdtempSync(join(tmpdir(), "bench-wal-"));
const dir = join(root, "wal");
mkdirSync(dir);
const c0 = performance.now();
for (let i = 1; i <= n; i++)
  closeSync(openSync(join(dir, `segment.${String(i).padStart(6, "0")}.wal`), "w"));
const createSecs = (performance.now() - c0) / 1000;
const col = new WalCollector({
  dir,
  pattern: "segment.*.wal",
  rescanMs: 0,
  stallAfterMs: 3_600_000,
  expectedSegmentSize: 0,
  verifyCommand: "",
  checkCompressed: false,
  dbMetricsUrl: "",
  service: "stemedb-api.service",
  procPath: "/proc",
  usedHistory: usedHistory(null),
  log: pino({ level: "silent" }),
  judge: COLLECTOR_JUDGE,
});
const signal = new AbortController().signal;
const heap0 = process.memoryUsage().heapUsed;
const rss0 = process.memoryUsage().rss;
const scans: number[] = [];
for (let i = 0; i < 5; i++) {
  const t0 = performance.now();
  const o = await col.collect({ signal });
  scans.push(performance.now() - t0);
  if (o.segments.sealed.count + o.segments.active.count !== n)
    throw new Error(`inventoried ${o.segments.sealed.count + 1} of ${n}`);
}
// Between rescans a tick only re-reads the active segment.
const slow = new WalCollector({
  dir,
  pattern: "segment.*.wal",
  rescanMs: 3_600_000,
  stallAfterMs: 3_600_000,
  expectedSegmentSize: 0,
  verifyCommand: "",
  checkCompressed: false,
  dbMetricsUrl: "",
  service: "x",
  procPath: "/proc",
  usedHistory: usedHistory(null),
  log: pino({ level: "silent" }),
  judge: COLLECTOR_JUDGE,
});
await slow.collect({ signal });
const t1 = performance.now();
for (let i = 0; i < 200; i++) await slow.collect({ signal });
const tickMs = (performance.now() - t1) / 200;
// What the inventory really retains (run with --expose-gc, as `npm run bench` does), not garbage awaiting collection.
const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
const heapMiB = (process.memoryUsage().heapUsed - heap0) / 1048576;
const rssMiB = process.memoryUsage().rss / 1048576;
scans.sort((a, b) => a - b);
const result = {
  bench: "wal",
  segments: n,
  create_seconds: Number(createSecs.toFixed(1)),
  rescan_ms_median: Math.round(scans[2] ?? 0),
  rescan_ms_max: Math.round(scans[4] ?? 0),
  tick_ms: Number(tickMs.toFixed(3)),
  heap_mib_held: Number(heapMiB.toFixed(1)),
  rss_mib: Number(rssMiB.toFixed(1)),
  rss_mib_before: Number((rss0 / 1048576).toFixed(1)),
};
console.log(
  `WAL inventory of ${n.toLocaleString("en")} segments: full rescan ${result.rescan_ms_median} ms ` +
    `(max ${result.rescan_ms_max}), tick between rescans ${result.tick_ms} ms, ` +
    `heap held ${result.heap_mib_held} MiB, RSS ${result.rss_mib} MiB`,
);
console.log(JSON.stringify(result));
rmSync(root, { recursive: true, force: true });
