// agentctl bundle against a node with a full history (12 disks x 10 series: 1 h of 1 s raw
// samples, `days` of minute summaries): how long a bundle takes, and what it costs the agent's
// collection, measured as the agent's own event-loop delay (stemedb_agent_event_loop_delay_seconds,
// 10 s windows) while idle, while bundles are taken back to back, and while the reference tool,
// the sqlite3 CLI, exports the same rows from the same file piped into gzip (what an operator
// would do by hand, from outside the agent).
// Usage: node dist/bench/bundle.js [seconds-per-phase] [days]
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { migrate } from "../core/history/migrations.js";
import {
  agentNodeArgs,
  loopDelay,
  metricsPort,
  percentile,
  round,
  unitEnvironment,
} from "./lib.js";

const phase = Number(process.argv[2] ?? 40) * 1000;
const days = Number(process.argv[3] ?? 2);
const disks = 12;
const root = mkdtempSync(join(tmpdir(), "bench-bundle-"));
const state = join(root, "state");
mkdirSync(state);
const dbPath = join(state, "history.db");
const db = new Database(dbPath);
db.pragma("journal_mode = WAL");
migrate(db);
const insSeries = db.prepare("INSERT INTO series (metric, labels) VALUES (?, ?)");
const insRoll = db.prepare(
  "INSERT INTO rollups (series_id, resolution, ts, count, sum, min, max, p50, p99) " +
    "VALUES (?, 60, ?, 60, ?, ?, ?, ?, ?)",
);
const insRaw = db.prepare("INSERT INTO samples (series_id, ts, value) VALUES (?, ?, ?)");
const now = Date.now();
db.transaction(() => {
  for (let d = 0; d < disks; d++)
    for (let m = 0; m < 10; m++) {
      const id = Number(
        insSeries.run(
          `disk_metric_${m}`,
          JSON.stringify({ device: `sd${String.fromCharCode(97 + d)}` }),
        ).lastInsertRowid,
      );
      for (let t = now - days * 86_400_000; t < now - 3_600_000; t += 60_000) {
        const v = Math.random() * 0.01;
        insRoll.run(id, t - (t % 60_000), v * 60, v / 2, v * 2, v, v * 1.5);
      }
      for (let t = now - 3_600_000; t < now; t += 1000) insRaw.run(id, t, Math.random() * 0.01);
    }
})();
db.close();
const historyMiB = statSync(dbPath).size / 1048576;

const cfg = join(root, "agent.toml");
const sock = join(root, "ctl.sock");
writeFileSync(
  cfg,
  `[agent]\nlisten = "127.0.0.1:0"\nstate_dir = "${state}"\ncontrol_socket = "${sock}"\n` +
    `[history]\nminute_retention = "${days + 1}d"\nhour_retention = "${days + 1}d"\n` +
    `[collectors.smart]\nenabled = false\n`,
);
const agent = spawn(
  process.execPath,
  [
    ...agentNodeArgs(),
    fileURLToPath(new URL("../agent/main.js", import.meta.url)),
    "--config",
    cfg,
  ],
  {
    env: unitEnvironment(),
    stdio: ["ignore", "pipe", "inherit"],
  },
);
const port = await metricsPort(agent);
agent.stdout.resume();
const ctl = fileURLToPath(new URL("../agentctl.cjs", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
await sleep(12_000); // past the first 10 s window, which holds the start

/** The agent's last closed 10 s window, in ms. */
const lag = () => loopDelay(port);

/** Runs `work` again and again for one phase; the windows closed meanwhile. */
async function measure(work: (() => Promise<number>) | null) {
  const windows: Array<{ p99: number; max: number }> = [];
  const runs: number[] = [];
  let stop = false;
  const loop = (async () => {
    while (!stop && work) runs.push(await work());
  })();
  const end = performance.now() + phase;
  while (performance.now() < end) {
    await sleep(10_000);
    windows.push(await lag());
  }
  stop = true;
  await loop;
  await sleep(10_500); // a window with no work in it, so phases do not overlap
  return {
    windows: windows.length,
    lag_p99_ms_worst: round(Math.max(...windows.map((w) => w.p99)), 2),
    lag_max_ms_worst: round(Math.max(...windows.map((w) => w.max)), 2),
    lag_p99_ms_median: round(
      percentile(
        windows.map((w) => w.p99),
        50,
      ),
      2,
    ),
    runs: runs.length,
    run_seconds_median: runs.length ? round(percentile(runs, 50), 2) : null,
  };
}

const timed =
  (cmd: string, args: string[], opts: { shell?: boolean } = {}) =>
  () =>
    new Promise<number>((resolve) => {
      const t0 = performance.now();
      const p = spawn(cmd, args, { stdio: ["ignore", "ignore", "inherit"], ...opts });
      p.on("close", () => resolve((performance.now() - t0) / 1000));
    });

let n = 0;
const out = join(root, "out");
mkdirSync(out);
const idle = await measure(null);
const bundle = await measure(() =>
  timed(ctl, [
    "--socket",
    sock,
    "bundle",
    "--since",
    "3h",
    "--output",
    join(out, `b${n++}.tar.gz`),
  ])(),
);
const bundleBytes = statSync(join(out, "b0.tar.gz")).size;
const sql =
  "SELECT s.metric, s.labels, p.ts, p.value FROM samples p JOIN series s ON s.id = p.series_id " +
  `WHERE p.ts >= ${now - 3 * 3_600_000} UNION ALL SELECT s.metric, s.labels, r.ts, r.sum / r.count ` +
  `FROM rollups r JOIN series s ON s.id = r.series_id WHERE r.resolution = 60 AND r.ts >= ${now - 3 * 3_600_000}`;
const reference = await measure(
  timed("sh", [
    "-c",
    `sqlite3 -readonly -csv '${dbPath}' "${sql}" | gzip > '${join(out, "ref.csv.gz")}'`,
  ]),
);
const refRows = Number(
  spawnSync("sh", ["-c", `gzip -dc '${join(out, "ref.csv.gz")}' | wc -l`], {
    encoding: "utf8",
  }).stdout.trim(),
);
agent.kill("SIGTERM");
await new Promise((r) => agent.once("close", r));
rmSync(root, { recursive: true, force: true });

const result = {
  bench: "bundle",
  history_mib: round(historyMiB, 0),
  rows_exported: refRows,
  bundle_bytes: bundleBytes,
  idle,
  bundle,
  reference_sqlite3_gzip: reference,
};
console.log(
  `agentctl bundle --since 3h on ${round(historyMiB, 0)} MiB of history (${refRows} points): ` +
    `${bundle.run_seconds_median} s each, ${(bundleBytes / 1048576).toFixed(1)} MiB; sqlite3 | gzip of the same rows ` +
    `${reference.run_seconds_median} s. Agent event-loop delay p99, median 10 s window (idle / during ` +
    `bundles / during sqlite3): ${idle.lag_p99_ms_median} / ${bundle.lag_p99_ms_median} / ` +
    `${reference.lag_p99_ms_median} ms; worst window ${idle.lag_p99_ms_worst} / ` +
    `${bundle.lag_p99_ms_worst} / ${reference.lag_p99_ms_worst} ms`,
);
console.log(JSON.stringify(result));
