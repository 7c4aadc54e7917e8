// The agent on each supported Node.js line (scripts/node-runtimes.txt), side by side in one run
// so all see the same load, with node_exporter (diskstats + filesystem collectors) beside them as
// the reference: CPU seconds per hour at defaults, unscraped (the median of three windows), RSS
// at the end of that, /metrics p50/p99 over interleaved gzip keep-alive scrapes (the same client
// for every target, one request at a time), and `agentctl status` wall time, started on the
// same line (process start included; the median of N). Prints a table on stderr and one JSON
// line. The shipped line is chosen on these figures.
// Usage: node dist/bench/runtimes.js [--duration SECONDS>=60] [--scrapes N] [--status N]
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  percentile,
  procSample,
  round,
  type RunningAgent,
  ScrapeClient,
  sleep,
  startAgent,
  numberArg,
  startNodeExporter,
} from "./lib.js";

const arg = numberArg;
const duration = Math.max(60, arg("duration", 180));
const scrapes = arg("scrapes", 500);
const statusRuns = arg("status", 15);
const log = (m: string) => process.stderr.write(`runtimes: ${m}\n`);
const repo = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));

// Each pinned line's node, fetched when missing (through npm, cached).
const lines = spawnSync("bash", [repo("scripts/node-runtime.sh"), "--lines"], { encoding: "utf8" })
  .stdout.trim()
  .split("\n")
  .filter(Boolean);
const ship = spawnSync("bash", [repo("scripts/node-runtime.sh"), "--version", "ship"], {
  encoding: "utf8",
}).stdout.trim();
interface Line {
  line: string;
  version: string;
  node: string;
  agent?: RunningAgent;
}
const runtimes: Line[] = lines.map((line) => {
  const r = spawnSync("bash", [repo("scripts/node-runtime.sh"), line], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`cannot fetch Node line ${line}: ${r.stderr}`);
  const node = `${r.stdout.trim()}/bin/node`;
  const version = spawnSync(node, ["--version"], { encoding: "utf8" }).stdout.trim();
  return { line, version, node };
});

for (const r of runtimes) r.agent = await startAgent(`bench-rt${r.line}-`, "", r.node);
const ne = await startNodeExporter();
log(
  `${runtimes.map((r) => `Node ${r.version} pid ${r.agent?.pid}`).join(", ")}; node_exporter ` +
    `${ne ? `pid ${ne.pid}` : "not installed (bench/deps.sh)"}; ${duration} s unscraped after 20 s warm-up`,
);
const agents = runtimes.map((r) => r.agent as RunningAgent);
await sleep(20_000);

// CPU: three windows, unscraped; s/h per window, the median reported.
const windows = 3;
const cpuPerH: number[][] = runtimes.map(() => []);
const neCpu: number[] = [];
for (let w = 0; w < windows; w++) {
  const a0 = agents.map((a) => procSample(a.pid).cpu);
  const n0 = ne ? procSample(ne.pid).cpu : 0;
  const t0 = performance.now();
  await sleep((duration / windows) * 1000);
  const wall = (performance.now() - t0) / 1000;
  agents.forEach((a, i) =>
    cpuPerH[i]?.push(((procSample(a.pid).cpu - (a0[i] ?? 0)) / wall) * 3600),
  );
  if (ne) neCpu.push(((procSample(ne.pid).cpu - n0) / wall) * 3600);
}
const rss = agents.map((a) => procSample(a.pid).rssMB);
const neRss = ne ? procSample(ne.pid).rssMB : null;

// Scrapes: gzip, interleaved, one client per target, one request at a time.
const clients = [
  ...agents.map((a) => new ScrapeClient(a.port)),
  ...(ne ? [new ScrapeClient(ne.port)] : []),
];
const times: number[][] = clients.map(() => []);
for (const c of clients) await c.scrape(true); // connections open
for (let i = 0; i < scrapes; i++)
  for (let k = 0; k < clients.length; k++) {
    const s = await clients[k]!.scrape(true);
    times[k]?.push(s.ms);
  }
for (const c of clients) c.close();

// agentctl status, on the same line, against its own agent.
const statusMs = runtimes.map((r) => {
  const ms: number[] = [];
  for (let i = 0; i < statusRuns; i++) {
    const t0 = performance.now();
    const x = spawnSync(
      r.node,
      [repo("dist/agentctl.cjs"), "--socket", r.agent!.socket, "status"],
      {
        encoding: "utf8",
        env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" },
      },
    );
    const t = performance.now() - t0;
    if (x.status !== null && x.status <= 2) ms.push(t);
  }
  return ms;
});

for (const a of agents) await a.stop();
await ne?.stop();

const med = (v: number[]) => percentile(v, 50);
const result = {
  bench: "runtimes",
  duration_s: duration,
  shipped: ship,
  lines: runtimes.map((r, i) => ({
    line: r.line,
    node: r.version,
    cpu_s_per_h: round(med(cpuPerH[i] ?? []), 1),
    cpu_s_per_h_windows: (cpuPerH[i] ?? []).map((v) => round(v, 1)),
    rss_mb: round(rss[i] ?? NaN, 1),
    scrape_gzip_ms: {
      p50: round(med(times[i] ?? []), 2),
      p99: round(percentile(times[i] ?? [], 99), 2),
    },
    agentctl_status_ms_median: round(med(statusMs[i] ?? []), 0),
    agentctl_status_runs: statusMs[i]?.length ?? 0,
  })),
  node_exporter: ne
    ? {
        cpu_s_per_h: round(med(neCpu), 1),
        rss_mb: round(neRss ?? NaN, 1),
        scrape_gzip_ms: {
          p50: round(med(times[clients.length - 1] ?? []), 2),
          p99: round(percentile(times[clients.length - 1] ?? [], 99), 2),
        },
      }
    : null,
};
const pad = (s: string, n: number) => s.padEnd(n);
const neScrape = result.node_exporter
  ? `${result.node_exporter.scrape_gzip_ms.p50} / ${result.node_exporter.scrape_gzip_ms.p99}`
  : "n/a";
process.stderr.write(
  `\n${pad("", 34)}${result.lines.map((l) => pad(`Node ${l.node}`, 16)).join("")}node_exporter\n` +
    `${pad("CPU s/h at defaults, unscraped", 34)}${result.lines.map((l) => pad(String(l.cpu_s_per_h), 16)).join("")}` +
    `${result.node_exporter?.cpu_s_per_h ?? "n/a"}\n` +
    `${pad("RSS MB", 34)}${result.lines.map((l) => pad(String(l.rss_mb), 16)).join("")}` +
    `${result.node_exporter?.rss_mb ?? "n/a"}\n` +
    `${pad("/metrics gzip p50 / p99 ms", 34)}` +
    `${result.lines.map((l) => pad(`${l.scrape_gzip_ms.p50} / ${l.scrape_gzip_ms.p99}`, 16)).join("")}` +
    `${neScrape}\n` +
    `${pad("agentctl status ms (median)", 34)}` +
    `${result.lines.map((l) => pad(String(l.agentctl_status_ms_median), 16)).join("")}\n\n`,
);
console.log(JSON.stringify(result));
